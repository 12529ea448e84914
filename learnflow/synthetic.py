"""Synthetic students drawn from known BKT parameters (seeded), for tests and benchmarks."""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

from learnflow.bkt import BKTParams
from learnflow.events import AttemptGraded
from learnflow.sequences import Sequences, starts_of

COMPONENTS = ("variables", "conditionals", "loops", "functions", "strings", "lists")


def generate(
    params: Mapping[str, BKTParams],
    students: int,
    attempts: int,
    seed: int,
    long_students: int = 0,
    long_attempts: int = 0,
) -> Sequences:
    """Every student attempts every component ``attempts`` times, following the hidden model.

    The same seed gives the same data. Student ids are ``student-00000``…; a student's mastery
    starts true with ``p_init`` and then moves by ``p_learn`` / ``p_forget`` after each attempt.
    The last ``long_students`` of them answer ``long_attempts`` times instead, as the few very
    persistent students of real tutor logs do.
    """
    rng = np.random.default_rng(seed)
    names = tuple(params)
    student_ids = tuple(f"student-{n:05d}" for n in range(students))
    regular = students - long_students
    blocks = []
    for name in names:
        blocks.append(_answers(rng, params[name], regular, attempts).reshape(-1))
        if long_students:
            blocks.append(_answers(rng, params[name], long_students, long_attempts).reshape(-1))
    lengths = np.tile(
        np.repeat(np.array([attempts, long_attempts], dtype=np.int64), [regular, long_students]),
        len(names),
    )
    return Sequences(
        components=names,
        students=student_ids * len(names),
        seq_component=np.repeat(np.arange(len(names), dtype=np.int64), students),
        starts=starts_of(lengths),
        obs=np.concatenate(blocks) if blocks else np.empty(0, dtype=np.int8),
    )


def _answers(
    rng: np.random.Generator, p: BKTParams, students: int, attempts: int
) -> npt.NDArray[np.int8]:
    """``students`` × ``attempts`` answers drawn from the hidden model, one row per student."""
    mastered = rng.random(students) < p.p_init
    block = np.empty((students, attempts), dtype=np.int8)
    for t in range(attempts):
        p_correct = np.where(mastered, 1.0 - p.p_slip, p.p_guess)
        block[:, t] = rng.random(students) < p_correct
        draw = rng.random(students)
        mastered = np.where(mastered, draw >= p.p_forget, draw < p.p_learn)
    return block


def attempt_events(
    students: int,
    total: int,
    seed: int,
    prefix: str,
    spacing: timedelta = timedelta(minutes=7),
    start: datetime = datetime(2026, 11, 2, 9, tzinfo=UTC),
) -> list[AttemptGraded]:
    """``total`` graded attempts by students ``<prefix>-00000`` …, for pipelines and benchmarks.

    The first ``students`` events give every student one attempt, the rest fall on random
    students; attempts are ``spacing`` apart, each tagged with one or two components. Answers
    follow the seed; every ``event_id`` is fresh, so runs never collide in the history.
    """
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not secrets
    ids = [f"{prefix}-{n:05d}" for n in range(students)]
    events = []
    for n in range(total):
        student = ids[n] if n < students else rng.choice(ids)
        tests_total = rng.randint(1, 6)
        tests_passed = tests_total if rng.random() < 0.55 else rng.randint(0, tests_total - 1)
        events.append(
            AttemptGraded(
                event_id=uuid.uuid4(),
                student_id=student,
                exercise_id=f"ex-{rng.randint(1, 15)}",
                components=tuple(rng.sample(COMPONENTS, rng.randint(1, 2))),
                passed=tests_passed == tests_total,
                score=tests_passed / tests_total,
                tests_total=tests_total,
                tests_passed=tests_passed,
                duration_ms=rng.randint(5, 5000),
                submitted_at=start + spacing * n,
            )
        )
    return events
