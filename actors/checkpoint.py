"""What one shard checkpoint writes, and the protocols of the stores it writes to."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

from learnflow.events import AttemptGraded
from learnflow.student_state import StudentState


@dataclass(frozen=True, slots=True)
class AppliedEvent:
    """An event a shard applied, with where it came from."""

    offset: int
    event: AttemptGraded


@dataclass(frozen=True, slots=True)
class ComponentStep:
    """One component's P(mastered) right after one applied event."""

    student_id: str
    component: str
    offset: int
    passed: bool
    p_mastered: float
    day: date
    iso_year: int
    iso_week: int


@dataclass(frozen=True, slots=True)
class CheckpointBatch:
    """Everything one batch changed on one partition, ready to be written."""

    topic: str
    partition: int
    last_offset: int
    """The highest offset the batch covered: the partition's new watermark."""
    applied: Sequence[AppliedEvent] = ()
    steps: Sequence[ComponentStep] = ()
    states: Mapping[str, StudentState] = field(default_factory=dict)
    """The new state of every student the batch changed."""


class HistoryStore(Protocol):
    """Long-term history (PostgreSQL): attempts, weekly aggregates, the partition watermark."""

    async def record(self, batch: CheckpointBatch) -> None:
        """Write the batch in one transaction; writing it again changes nothing."""

    async def watermark(self, topic: str, partition: int) -> int:
        """The highest offset recorded for the partition (-1 if none)."""

    async def history(self, student_ids: Sequence[str]) -> dict[str, list[AppliedEvent]]:
        """Every recorded event of these students, in offset order."""

    async def students_after(self, partition: int, offset: int) -> list[str]:
        """Students with events recorded on ``partition`` above ``offset``."""

    async def close(self) -> None:
        """Release the connections."""


class StateStore(Protocol):
    """Current state (Redis): student states, daily mastery, recent attempts, the watermark."""

    async def load(self, student_ids: Sequence[str]) -> dict[str, StudentState]:
        """The saved state of each student that has one, in one round trip."""

    async def save(self, batch: CheckpointBatch) -> None:
        """Write the batch atomically; writing it again changes nothing."""

    async def watermark(self, topic: str, partition: int) -> int:
        """The highest offset whose students are all saved (-1 if none)."""

    async def publish_stats(self, topic: str, partition: int, figures: dict[str, int]) -> None:
        """Leave a shard's figures where operators' tools read them."""

    async def close(self) -> None:
        """Release the connections."""
