"""What crosses between the ingest and the shards, and what one shard checkpoint writes.

The ingest sends a shard a partition's :data:`Record`\\ s; the shard folds them
(:mod:`learnflow.batch_fold`) into a :class:`CheckpointBatch`, writes it, and answers a
:class:`BatchResult` with the :class:`DeadLetter`\\ s the ingest puts on the dead-letter topic.
Neither side's implementation owns these types.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

import msgspec

from learnflow.events import AttemptGraded
from learnflow.student_state import StudentState

Record = tuple[int, bytes | None, bytes | None, int]
"""(offset, key, value, producer timestamp in ms) of one Kafka message."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record no state can be made of, and why."""

    offset: int
    key: bytes | None
    value: bytes | None
    error: str


@dataclass(frozen=True, slots=True)
class BatchResult:
    """A shard's answer to one batch."""

    partition: int
    checkpointed_offset: int
    """Everything up to this offset is saved: the host reads on from ``checkpointed_offset + 1``."""
    applied: int = 0
    skipped: int = 0
    dead_letters: tuple[DeadLetter, ...] = ()


class AppliedEvent(msgspec.Struct, frozen=True, gc=False):
    """An event a shard applied, with where it came from and what it left (a struct made in C:
    one per event, on the hot path; it refers to no container that could hold it back, so the
    cyclic collector never walks it)."""

    offset: int
    event: AttemptGraded
    model_version: int = 0
    """The parameter version it was applied with, as the history recorded it."""
    mastery: tuple[float, ...] = ()
    """P(mastered) of each of the event's components right after it, in the event's order:
    what daily mastery and the weekly aggregates are made of."""


@dataclass(frozen=True, slots=True)
class CheckpointBatch:
    """Everything one batch changed on one partition, ready to be written."""

    topic: str
    partition: int
    last_offset: int
    """The highest offset the batch covered: the partition's new watermark."""
    applied: Sequence[AppliedEvent] = ()
    states: Mapping[str, StudentState] = field(default_factory=dict)
    """The new state of every student the batch changed."""
    model_version: int = 0
    """The parameter version every event of the batch was applied with."""
    days_written: frozenset[tuple[str, date]] = frozenset()
    """(student, UTC day) pairs of the batch whose daily mastery an earlier checkpoint already
    wrote (the day of the student's latest attempt before the batch): their keys exist and
    expire already. Any other day of the batch may be a new key."""
    daily: Mapping[tuple[str, date], Mapping[str, float]] | None = None
    """Each (student, UTC day)'s last P(mastered) per component among ``applied``, as
    :func:`~learnflow.batch_fold.daily_values` makes them (``None``: not made yet; the writer
    makes them)."""
