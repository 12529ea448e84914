"""Attempt sequences per (component, student), the input of fitting and evaluation.

Built from LearnFlow's own events or from pyBKT-style CSV files (``order_id, user_id,
skill_name, correct``), so existing data sets drop in. Sequences are stored flat and grouped by
component: ``obs[starts[i]:starts[i + 1]]`` are the answers (1 correct, 0 wrong) of sequence ``i``,
in attempt order.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from learnflow.events import AttemptGraded, parse_event
from learnflow.exceptions import InvalidEventError, LearnFlowError

CSV_COLUMNS = ("order_id", "user_id", "skill_name", "correct")


class DataFormatError(LearnFlowError):
    """Input data for fitting is malformed; the message names the file and row to fix."""


@dataclass(frozen=True)
class Sequences:
    components: tuple[str, ...]
    students: tuple[str, ...]
    seq_component: npt.NDArray[np.int64]
    starts: npt.NDArray[np.int64]
    obs: npt.NDArray[np.int8]

    @property
    def n_sequences(self) -> int:
        return len(self.students)

    def component_ranges(self) -> npt.NDArray[np.int64]:
        """``r[k]..r[k + 1]`` are the sequence indices of component ``k``."""
        return np.searchsorted(
            self.seq_component, np.arange(len(self.components) + 1), side="left"
        ).astype(np.int64)

    def lengths(self) -> npt.NDArray[np.int64]:
        return np.diff(self.starts)

    def select(self, keep: npt.NDArray[np.bool_]) -> Sequences:
        """The sequences where ``keep`` is true, order preserved."""
        index = np.flatnonzero(keep)
        starts = starts_of(self.lengths()[index])
        pieces = [self.obs[self.starts[i] : self.starts[i + 1]] for i in index]
        obs = np.concatenate(pieces) if pieces else np.empty(0, dtype=np.int8)
        return Sequences(
            components=self.components,
            students=tuple(self.students[i] for i in index),
            seq_component=self.seq_component[index],
            starts=starts,
            obs=obs.astype(np.int8, copy=False),
        )

    def split_by_student(self, test_fraction: float) -> tuple[Sequences, Sequences]:
        """(train, test), each student wholly on one side, chosen by a stable hash of the id."""
        threshold = int(test_fraction * 2**32)
        in_test = {
            student: int.from_bytes(hashlib.blake2b(student.encode(), digest_size=4).digest())
            < threshold
            for student in set(self.students)
        }
        mask = np.array([in_test[s] for s in self.students], dtype=bool)
        return self.select(~mask), self.select(mask)


def starts_of(lengths: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """The ``starts`` of sequences of these lengths, laid out one after another."""
    starts = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=starts[1:])
    return starts


def from_rows(rows: Iterable[tuple[str, str, int]]) -> Sequences:
    """Build from ``(student, component, correct)`` rows given in attempt order."""
    grouped: dict[tuple[str, str], list[int]] = {}
    for student, component, correct in rows:
        grouped.setdefault((component, student), []).append(correct)
    return from_grouped(grouped)


def from_grouped(grouped: Mapping[tuple[str, str], Sequence[int]]) -> Sequences:
    """Build from each ``(component, student)``'s answers in attempt order (lists, or the
    ``bytearray``\\ s a streaming reader keeps: one byte per answer)."""
    keys = sorted(grouped)
    components = tuple(sorted({component for component, _ in keys}))
    index = {name: k for k, name in enumerate(components)}
    lengths = np.fromiter((len(grouped[key]) for key in keys), dtype=np.int64, count=len(keys))
    starts = starts_of(lengths)
    if all(isinstance(answers, bytes | bytearray) for answers in grouped.values()):
        joined = b"".join(grouped[key] for key in keys)  # type: ignore[misc]
        obs = np.frombuffer(joined, dtype=np.int8).copy()
    else:
        obs = np.fromiter(
            (c for key in keys for c in grouped[key]), dtype=np.int8, count=int(starts[-1])
        )
    return Sequences(
        components=components,
        students=tuple(student for _, student in keys),
        seq_component=np.fromiter(
            (index[component] for component, _ in keys), dtype=np.int64, count=len(keys)
        ),
        starts=starts,
        obs=obs,
    )


def from_events(events: Iterable[AttemptGraded]) -> Sequences:
    """Each event counts once for each of its components: correct when it ``passed``.

    A student's attempts are ordered by ``submitted_at`` (ties keep the given order).
    """
    ordered = sorted(enumerate(events), key=lambda item: (item[1].submitted_at, item[0]))
    return from_rows(
        (event.student_id, component, int(event.passed))
        for _, event in ordered
        for component in event.components
    )


def read_events_file(path: Path) -> Sequences:
    """Read JSON lines of ``attempt.graded`` events; a bad line raises naming its number."""
    events: list[AttemptGraded] = []
    with path.open("rb") as handle:
        for line, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                events.append(parse_event(raw.strip()))
            except InvalidEventError as err:
                raise DataFormatError(f"{path}, line {line}: {err.reason}") from err
    if not events:
        raise DataFormatError(f"{path} holds no events")
    return from_events(events)


def read_csv(path: Path) -> Sequences:
    """Read a pyBKT-style CSV; extra columns are ignored.

    Raises ``DataFormatError`` naming the file and line for an empty file, a missing column, a
    non-integer ``order_id``, an empty ``user_id``/``skill_name`` or a ``correct`` other than 0/1.
    """
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or not any(cell.strip() for cell in header):
            raise DataFormatError(
                f"{path} is empty: expected a header with {', '.join(CSV_COLUMNS)}"
            )
        names = [cell.strip() for cell in header]
        missing = [column for column in CSV_COLUMNS if column not in names]
        if missing:
            raise DataFormatError(
                f"{path}, line 1: missing column(s) {', '.join(missing)} "
                f"(header has {', '.join(names)})"
            )
        at = {column: names.index(column) for column in CSV_COLUMNS}
        records: list[tuple[int, int, str, str, int]] = []
        for line, row in enumerate(reader, start=2):
            if not row or not any(cell.strip() for cell in row):
                continue
            records.append(_parse_row(path, line, row, at, len(names)))
    if not records:
        raise DataFormatError(f"{path} has a header but no rows")
    records.sort(key=lambda record: (record[0], record[1]))
    return from_rows((user, skill, correct) for _, _, user, skill, correct in records)


def _parse_row(
    path: Path, line: int, row: list[str], at: dict[str, int], width: int
) -> tuple[int, int, str, str, int]:
    if len(row) < width:
        raise DataFormatError(
            f"{path}, line {line}: {len(row)} fields, the header has {width}: {row!r}"
        )
    raw_order = row[at["order_id"]].strip()
    user = row[at["user_id"]].strip()
    skill = row[at["skill_name"]].strip()
    raw_correct = row[at["correct"]].strip()
    try:
        order = int(float(raw_order)) if raw_order else None
    except ValueError:
        order = None
    if order is None:
        raise DataFormatError(f"{path}, line {line}: order_id {raw_order!r} is not an integer")
    if not user:
        raise DataFormatError(f"{path}, line {line}: user_id is empty")
    if not skill:
        raise DataFormatError(f"{path}, line {line}: skill_name is empty")
    if raw_correct not in ("0", "1", "0.0", "1.0"):
        raise DataFormatError(f"{path}, line {line}: correct must be 0 or 1, got {raw_correct!r}")
    return order, line, user, skill, int(float(raw_correct))
