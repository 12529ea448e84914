"""Synthetic students drawn from known BKT parameters (seeded), for tests and benchmarks."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from learnflow.bkt import BKTParams
from learnflow.sequences import Sequences


def generate(params: Mapping[str, BKTParams], students: int, attempts: int, seed: int) -> Sequences:
    """Every student attempts every component ``attempts`` times, following the hidden model.

    The same seed gives the same data. Student ids are ``student-00000``…; a student's mastery
    starts true with ``p_init`` and then moves by ``p_learn`` / ``p_forget`` after each attempt.
    """
    rng = np.random.default_rng(seed)
    names = tuple(params)
    student_ids = tuple(f"student-{n:05d}" for n in range(students))
    n_seq = len(names) * students
    obs = np.empty((n_seq, attempts), dtype=np.int8)
    for k, name in enumerate(names):
        p = params[name]
        rows = slice(k * students, (k + 1) * students)
        mastered = rng.random(students) < p.p_init
        block = np.empty((students, attempts), dtype=np.int8)
        for t in range(attempts):
            p_correct = np.where(mastered, 1.0 - p.p_slip, p.p_guess)
            block[:, t] = rng.random(students) < p_correct
            draw = rng.random(students)
            mastered = np.where(mastered, draw >= p.p_forget, draw < p.p_learn)
        obs[rows] = block
    return Sequences(
        components=names,
        students=student_ids * len(names),
        seq_component=np.repeat(np.arange(len(names), dtype=np.int64), students),
        starts=np.arange(0, n_seq * attempts + 1, attempts, dtype=np.int64),
        obs=obs.reshape(-1),
    )
