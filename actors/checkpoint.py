"""The protocols of the stores a shard checkpoint writes to (what it writes:
:class:`learnflow.batches.CheckpointBatch`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from learnflow.batches import AppliedEvent, CheckpointBatch
from learnflow.student_state import StudentState


class HistoryStore(Protocol):
    """Long-term history (PostgreSQL): attempts, weekly aggregates, the partition watermark."""

    def rows(self, batches: Sequence[CheckpointBatch]) -> bytes | None:
        """The batches' attempt rows as :meth:`record` sends them, made ahead of it (``None``:
        :meth:`record` makes what it sends itself)."""

    async def record(self, batches: Sequence[CheckpointBatch], rows: bytes | None = None) -> None:
        """Write one checkpoint (the batches of one or more partitions of one topic) in one
        transaction, with its ``rows`` if they were made ahead; writing it again changes
        nothing."""

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

    def commands(self, batches: Sequence[CheckpointBatch]) -> list[bytes]:
        """The commands :meth:`save` sends for the batches, made ahead of it."""

    async def save(
        self, batches: Sequence[CheckpointBatch], commands: list[bytes] | None = None
    ) -> None:
        """Write one checkpoint (the batches of one or more partitions) atomically, with its
        ``commands`` if they were made ahead; writing it again changes nothing."""

    async def watermark(self, topic: str, partition: int) -> int:
        """The highest offset whose students are all saved (-1 if none)."""

    async def publish_stats(self, topic: str, partition: int, figures: dict[str, int]) -> None:
        """Leave a shard's figures where operators' tools read them."""

    async def mark_alive(self, topic: str, partitions: Sequence[int], ttl_s: float) -> None:
        """Say that the partitions' shards run, for the next ``ttl_s`` seconds."""

    async def close(self) -> None:
        """Release the connections."""
