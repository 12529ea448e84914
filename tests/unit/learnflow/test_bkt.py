"""The O(1) BKT update: bounded, monotone where it must be, and equal to the compiled batch pass."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from learnflow import kernels
from learnflow.bkt import BKTParams, ModelParameters
from tests.strategies import answers, bkt_params, probabilities


@given(bkt_params(), answers)
def test_p_mastered_stays_a_probability(params: BKTParams, seq: list[bool]) -> None:
    p = params.p_init
    for correct in seq:
        p = params.update(p, correct)
        assert 0.0 <= p <= 1.0


@given(bkt_params(forget=False), probabilities)
def test_without_forgetting_a_correct_answer_never_lowers_mastery(
    params: BKTParams, p: float
) -> None:
    assert params.update(p, True) >= p - 1e-12


@given(bkt_params(forget=False), probabilities)
def test_a_wrong_answer_never_beats_a_correct_one(params: BKTParams, p: float) -> None:
    assert params.update(p, False) <= params.update(p, True) + 1e-12


@given(st.lists(st.tuples(bkt_params(), answers), min_size=1, max_size=8))
def test_online_update_equals_the_batch_forward_pass(
    cases: list[tuple[BKTParams, list[bool]]],
) -> None:
    obs = np.array([int(c) for _, seq in cases for c in seq], dtype=np.int8)
    starts = np.cumsum([0] + [len(seq) for _, seq in cases]).astype(np.int64)
    rows = np.array([params.as_tuple() for params, _ in cases])

    predicted, mastered = kernels.forward(obs, starts, rows)

    k = 0
    for params, seq in cases:
        p = params.p_init
        for correct in seq:
            assert params.predict_correct(p) == pytest.approx(predicted[k], abs=1e-9)
            p = params.update(p, correct)
            assert p == pytest.approx(mastered[k], abs=1e-9)
            k += 1


@pytest.mark.parametrize(
    ("field", "value"),
    [("p_guess", 0.5), ("p_slip", 0.7), ("p_init", 1.2), ("p_learn", -0.1), ("p_forget", 2.0)],
)
def test_invalid_parameters_are_refused(field: str, value: float) -> None:
    values = {"p_init": 0.2, "p_learn": 0.1, "p_guess": 0.2, "p_slip": 0.1, field: value}

    with pytest.raises(ValueError, match=field):
        BKTParams(**values)


def test_unknown_components_use_the_default() -> None:
    fitted = BKTParams(0.4, 0.2, 0.1, 0.1)
    model = ModelParameters(version=3, components={"loops": fitted})

    assert model.for_component("loops") is fitted
    assert model.for_component("recursion") is model.default
