"""Properties of the fit on any log: long sequences, long runs of equal answers, degenerate data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from learnflow import fitting, kernels
from learnflow.bkt import MAX_GUESS_SLIP, BKTParams
from learnflow.sequences import Sequences, from_rows

# Answers as runs of equal values: real logs hold runs of hundreds (360 wrong, then 170 right).
runs = st.lists(st.tuples(st.integers(0, 1), st.integers(1, 1500)), min_size=1, max_size=10)


def expand(pieces: list[tuple[int, int]]) -> list[int]:
    return [value for value, length in pieces for _ in range(length)]


def with_random_tail(
    pieces: list[tuple[int, int]], seed: int, length: int, rate: float
) -> list[int]:
    """The runs, then random answers up to ``length``: long logs without drawing every answer."""
    head = expand(pieces)
    rng = np.random.default_rng(seed)
    return head + (rng.random(max(0, length - len(head))) < rate).astype(int).tolist()


long_answers = st.builds(
    with_random_tail, runs, st.integers(0, 2**32 - 1), st.integers(5000, 6000), st.floats(0, 1)
)
probability = st.floats(0.0, 1.0)
guess_slip = st.floats(0.0, MAX_GUESS_SLIP, exclude_max=True)
params = st.builds(BKTParams, probability, probability, guess_slip, guess_slip, probability)


def one_sequence(answers: list[int]) -> Sequences:
    return from_rows([("s", "skill", a) for a in answers])


def in_box(fit: fitting.ComponentFit) -> bool:
    values = fit.params.as_tuple()
    return all(math.isfinite(v) for v in values) and all(0.0 <= v <= 1.0 for v in values)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    long=st.lists(long_answers | runs.map(expand), min_size=1, max_size=3),
    short=st.lists(st.lists(st.integers(0, 1), min_size=1, max_size=20), max_size=40),
    forgets=st.sampled_from(["never", "always"]),
)
def test_any_log_fits_to_probabilities_or_falls_back_with_a_note(
    long: list[list[int]], short: list[list[int]], forgets: str
) -> None:
    rows = [(f"long{n}", "skill", a) for n, answers in enumerate(long) for a in answers]
    rows += [(f"short{n}", "skill", a) for n, answers in enumerate(short) for a in answers]
    config = fitting.FitConfig(
        restarts=2, max_iterations=60, min_students=1, min_attempts=1, forgets=forgets
    )

    (result,) = fitting.fit(from_rows(rows), config)

    assert in_box(result), result
    if result.fallback:
        assert result.note and result.log_likelihood is None
    else:
        assert result.log_likelihood is not None and math.isfinite(result.log_likelihood)
        assert result.log_likelihood <= 0.0


@settings(max_examples=40, deadline=None, derandomize=True)
@given(answers=long_answers, model=params)
def test_online_update_and_compiled_forward_agree_on_long_sequences(
    answers: list[int], model: BKTParams
) -> None:
    seqs = one_sequence(answers)

    predicted, mastered = fitting.predict(seqs, {"skill": model})

    p = model.p_init
    for k, answer in enumerate(answers):
        assert abs(predicted[k] - model.predict_correct(p)) <= 1e-9
        p = model.update(p, bool(answer))
        assert abs(mastered[k] - p) <= 1e-9
    assert np.all(np.isfinite(predicted)) and np.all(np.isfinite(mastered))


def log_space_likelihood(answers: list[int], model: BKTParams) -> float:
    """The forward algorithm in log space with both states kept: the reference, slow and exact."""
    p_init, learn, guess, slip, forget = model.as_tuple()

    def log(x: float) -> float:
        return math.log(x) if x > 0.0 else -math.inf

    def log_add(x: float, y: float) -> float:
        top = max(x, y)
        return top if top == -math.inf else top + math.log(math.exp(x - top) + math.exp(y - top))

    l0, l1 = log(1.0 - p_init), log(p_init)
    for answer in answers:
        l0 += log(guess if answer else 1.0 - guess)
        l1 += log(1.0 - slip if answer else slip)
        l0, l1 = (
            log_add(l0 + log(1.0 - learn), l1 + log(forget)),
            log_add(l0 + log(learn), l1 + log(1.0 - forget)),
        )
    return log_add(l0, l1)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    answers=long_answers,
    model=st.builds(
        BKTParams,
        st.floats(1e-6, 1 - 1e-6),
        st.floats(0.0, 1.0),
        st.floats(1e-6, 0.49),
        st.floats(1e-6, 0.49),
        st.floats(0.0, 1.0),
    ),
)
# A state whose weight fell below what doubles hold and which later answers bring back: 410
# wrong answers make mastery (forgotten at once) as unlikely as 6^-410, 4,590 right ones undo it.
@example(answers=[0] * 410 + [1] * 4590, model=BKTParams(0.5, 0.0, 0.25, 0.25, 0.5))
@example(
    answers=([1] * 600 + [0] * 900) * 3 + [1] * 500, model=BKTParams(0.5, 0.0, 0.0625, 0.25, 0.0)
)
def test_the_fits_likelihood_is_exact_on_long_sequences(
    answers: list[int], model: BKTParams
) -> None:
    batch = fitting.log_likelihood(one_sequence(answers), {"skill": model})

    assert batch == pytest.approx(log_space_likelihood(answers, model), rel=1e-9, abs=1e-9)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    answers=st.lists(st.integers(0, 1), min_size=1, max_size=60),
    model=st.builds(
        BKTParams,
        st.floats(0.01, 0.99),
        st.floats(0.0, 0.9),
        st.floats(0.01, 0.49),
        st.floats(0.01, 0.49),
        st.floats(0.0, 0.9),
    ),
)
def test_log_space_and_scaled_passes_give_the_same_statistics(
    answers: list[int], model: BKTParams
) -> None:
    obs = np.array(answers, dtype=np.int8)
    row = np.array(model.as_tuple())
    n = len(answers)
    scaled, in_log = np.zeros(kernels.N_STATS), np.zeros(kernels.N_STATS)

    ll_scaled, exact = kernels._scaled_sequence(
        obs, 0, n, row, np.empty(n), np.empty(n), np.empty(n), scaled
    )
    ll_log = kernels._log_sequence(obs, 0, n, row, np.empty(n), np.empty(n), np.empty(n), in_log)

    assert exact
    assert ll_log == pytest.approx(ll_scaled, rel=1e-9)
    np.testing.assert_allclose(in_log, scaled, rtol=1e-9, atol=1e-9)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    long=st.lists(long_answers, min_size=1, max_size=2),
    short=st.lists(st.lists(st.integers(0, 1), min_size=1, max_size=15), max_size=30),
    start=st.builds(
        BKTParams,
        st.floats(0.05, 0.9),
        st.floats(0.02, 0.5),
        st.floats(0.02, 0.4),
        st.floats(0.02, 0.4),
        st.floats(0.0, 0.2),
    ),
)
def test_em_never_lowers_the_likelihood(
    long: list[list[int]], short: list[list[int]], start: BKTParams
) -> None:
    rows = [(f"long{n}", "skill", a) for n, answers in enumerate(long) for a in answers]
    rows += [(f"short{n}", "skill", a) for n, answers in enumerate(short) for a in answers]
    seqs = from_rows(rows)
    row = np.array([start.as_tuple()])
    first, last = np.array([0]), np.array([seqs.n_sequences])

    history = []
    for _ in range(15):
        ll, _ = kernels.run_em(
            seqs.obs, seqs.starts, first, last, row, np.array([True]), 0.49, 1, 0.0
        )
        history.append(float(ll[0]))

    assert all(math.isfinite(v) for v in history)
    slack = 1e-9 * len(seqs.obs)
    assert all(b >= a - slack for a, b in zip(history, history[1:], strict=False)), history


def test_components_whose_answers_are_all_equal_fall_back_with_a_note() -> None:
    rows = [(f"s{n}", "always-right", 1) for n in range(40) for _ in range(10)]
    rows += [(f"s{n}", "always-wrong", 0) for n in range(40) for _ in range(10)]
    rows += [(f"s{n}", "mixed", (n + t) % 3 == 0) for n in range(40) for t in range(10)]
    config = fitting.FitConfig(restarts=2)

    fits = {f.component: f for f in fitting.fit(from_rows(rows), config)}

    for name, word in (("always-right", "correct"), ("always-wrong", "wrong")):
        assert fits[name].fallback and fits[name].params == config.default
        assert f"every one of the 400 answers is {word}" in fits[name].note
    assert not fits["mixed"].fallback and in_box(fits["mixed"])


def test_one_student_or_one_answer_falls_back_with_a_note() -> None:
    rows = [("only", "one-student", n % 2) for n in range(6000)]
    rows += [("s", "one-answer", 1)]

    fits = {f.component: f for f in fitting.fit(from_rows(rows))}

    assert fits["one-student"].fallback and "1 students, 6000 attempts" in fits["one-student"].note
    assert fits["one-answer"].fallback and "1 students, 1 attempts" in fits["one-answer"].note


def test_a_guess_or_slip_on_its_bound_is_noted() -> None:
    # Coin flips: mastery changes nothing, so guess and slip go to their bound of 1/2.
    rng = np.random.default_rng(3)
    rows = [(f"s{n}", "skill", int(rng.random() < 0.5)) for n in range(60) for _ in range(40)]

    (result,) = fitting.fit(from_rows(rows), fitting.FitConfig(restarts=2))

    assert not result.fallback
    assert "weakly identified" in result.note
    assert result.params.p_guess >= 0.49 or result.params.p_slip >= 0.49
