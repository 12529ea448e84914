"""EM fitting recovers known parameters from synthetic students."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from learnflow import fitting, synthetic
from learnflow.bkt import BKTParams
from learnflow.sequences import from_rows

TRUTH = {
    "variables": BKTParams(0.30, 0.20, 0.20, 0.10),
    "conditionals": BKTParams(0.20, 0.15, 0.25, 0.08),
    "loops": BKTParams(0.10, 0.25, 0.15, 0.12),
    "functions": BKTParams(0.40, 0.10, 0.20, 0.05),
    "strings": BKTParams(0.25, 0.20, 0.22, 0.10),
}


@pytest.mark.parametrize("seed", range(5))
def test_parameters_are_recovered_within_003(seed: int) -> None:
    seqs = synthetic.generate(TRUTH, students=1500, attempts=12, seed=seed)

    fits = fitting.fit(seqs, fitting.FitConfig(seed=seed))

    assert [f.component for f in fits] == list(TRUTH)
    for result in fits:
        truth = TRUTH[result.component]
        assert not result.fallback
        assert result.params.p_guess < 0.5 and result.params.p_slip < 0.5
        # Not swapped: a student who has mastered the skill answers better than one who has not.
        assert 1 - result.params.p_slip > result.params.p_guess
        for name, fitted, true in zip(
            ("p_init", "p_learn", "p_guess", "p_slip", "p_forget"),
            result.params.as_tuple(),
            truth.as_tuple(),
            strict=True,
        ):
            assert abs(fitted - true) <= 0.03, (result.component, name, fitted, true)


def test_the_fit_beats_the_truth_on_its_own_data() -> None:
    seqs = synthetic.generate(TRUTH, students=400, attempts=10, seed=11)

    fits = fitting.fit(seqs)

    fitted_ll = sum(f.log_likelihood or 0.0 for f in fits)
    assert fitted_ll >= fitting.log_likelihood(seqs, TRUTH) - 1e-6


def test_little_data_falls_back_to_the_default() -> None:
    rows = [(f"s{n}", "rare", n % 2) for n in range(10)]
    rows += [(f"s{n % 300}", "common", (n // 300) % 2) for n in range(3000)]
    config = fitting.FitConfig(min_students=20, min_attempts=100)

    fits = {f.component: f for f in fitting.fit(from_rows(rows), config)}

    assert fits["rare"].fallback
    assert fits["rare"].params == config.default
    assert "too little data" in fits["rare"].note
    assert not fits["common"].fallback


def test_auto_forgetting_follows_held_out_likelihood() -> None:
    forgetful = {"recall": BKTParams(0.4, 0.25, 0.15, 0.08, p_forget=0.15)}
    steady = {"steady": BKTParams(0.4, 0.25, 0.15, 0.08, p_forget=0.0)}
    seqs_forgetful = synthetic.generate(forgetful, students=1500, attempts=15, seed=1)
    seqs_steady = synthetic.generate(steady, students=1500, attempts=15, seed=1)
    config = fitting.FitConfig(forgets="auto")

    (with_forget,) = fitting.fit(seqs_forgetful, config)
    (without,) = fitting.fit(seqs_steady, config)

    assert with_forget.params.p_forget == pytest.approx(0.15, abs=0.03)
    assert "forgetting on" in with_forget.note
    assert without.params.p_forget == 0.0
    assert "forgetting off" in without.note


def test_same_seed_same_fit() -> None:
    seqs = synthetic.generate(TRUTH, students=300, attempts=8, seed=4)

    first = fitting.fit(seqs, fitting.FitConfig(seed=9))
    second = fitting.fit(seqs, fitting.FitConfig(seed=9))

    assert first == second


def test_predictions_follow_the_online_update() -> None:
    seqs = synthetic.generate(TRUTH, students=50, attempts=6, seed=2)

    predicted, mastered = fitting.predict(seqs, TRUTH)

    i = 7
    params = TRUTH[seqs.components[seqs.seq_component[i]]]
    p = params.p_init
    for k in range(int(seqs.starts[i]), int(seqs.starts[i + 1])):
        assert predicted[k] == pytest.approx(params.predict_correct(p), abs=1e-12)
        p = params.update(p, bool(seqs.obs[k]))
        assert mastered[k] == pytest.approx(p, abs=1e-12)
    assert np.all((predicted > 0) & (predicted < 1))


def test_long_runs_of_equal_answers_fit_without_nan() -> None:
    # 297 students with 15 random answers and 3 with ([0] * 360 + [1] * 170) * 4: the backward
    # pass overflowed and the fit crashed with "p_init=nan is not a probability".
    rng = random.Random(7)
    rows = [(f"s{s}", "skill", int(rng.random() < 0.6)) for s in range(297) for _ in range(15)]
    rows += [(f"long{s}", "skill", c) for s in range(3) for c in ([0] * 360 + [1] * 170) * 4]
    (result,) = fitting.fit(from_rows(rows), fitting.FitConfig(restarts=2))
    values = (result.params.p_init, result.params.p_learn, result.params.p_guess,
              result.params.p_slip, result.params.p_forget)  # fmt: skip
    assert all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values), result
    assert result.log_likelihood is not None and math.isfinite(result.log_likelihood)
    assert not result.fallback
