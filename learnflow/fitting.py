"""Fitting BKT parameters per component by EM (Baum–Welch), the data scientists' side.

For each component: several random restarts run a few EM iterations, the best one (highest
log-likelihood) runs to convergence. ``p_guess`` and ``p_slip`` are kept below 0.5 so no solution
comes out swapped ("mastered" answering worse than "not mastered"). Components with too little
data, or whose answers are all correct or all wrong (nothing tells mastery from guessing), keep
the default parameters and are reported as a fallback with a note saying why. With
``forgets="auto"`` the forget parameter is used only where it improves the log-likelihood of
held-out students. Any sequence length works: the forward pass is scaled per step and the
backward weights are renormalised per step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from learnflow import kernels
from learnflow.bkt import DEFAULT_PARAMS, BKTParams
from learnflow.sequences import Sequences

Progress = Callable[[str, int, int], None]
"""Called as ``progress(phase, done, total)`` while fitting."""


@dataclass(frozen=True, slots=True)
class FitConfig:
    restarts: int = 6
    screening_iterations: int = 10
    max_iterations: int = 500
    tolerance: float = 1e-10
    """Stop when one iteration improves the log-likelihood by less than this per observation."""
    min_students: int = 20
    """Components with fewer students keep the default parameters."""
    min_attempts: int = 100
    """Components with fewer attempts (all students together) keep the default parameters."""
    forgets: Literal["never", "always", "auto"] = "never"
    forget_margin: float = 1e-4
    """``auto`` adds forgetting only if held-out log-likelihood per attempt gains at least this."""
    holdout_fraction: float = 0.2
    max_guess_slip: float = 0.49
    seed: int = 0
    default: BKTParams = DEFAULT_PARAMS
    components_per_batch: int = 4


@dataclass(frozen=True, slots=True)
class ComponentFit:
    component: str
    params: BKTParams
    n_students: int
    n_attempts: int
    log_likelihood: float | None
    iterations: int
    fallback: bool
    note: str = ""


def fit(
    seqs: Sequences, config: FitConfig = FitConfig(), progress: Progress | None = None
) -> list[ComponentFit]:
    """Fit every component of ``seqs``; the result lists components in ``seqs`` order."""
    report = progress or (lambda phase, done, total: None)
    ranges = seqs.component_ranges()
    counts = _counts(seqs, ranges)
    eligible = [
        k
        for k, (students, attempts, correct) in enumerate(counts)
        if students >= config.min_students
        and attempts >= config.min_attempts
        and 0 < correct < attempts
    ]
    forget = np.full(len(seqs.components), config.forgets == "always")
    notes = [""] * len(seqs.components)
    if config.forgets == "auto" and eligible:
        forget, notes = _choose_forgetting(seqs, eligible, config, report)

    params, logliks, iterations = _em(seqs, eligible, forget, config, report, "fitting")
    results = []
    for k, name in enumerate(seqs.components):
        students, attempts, correct = counts[k]
        if k in params:
            note = "; ".join(filter(None, (notes[k], _bound_note(params[k], config))))
            results.append(
                ComponentFit(
                    name, params[k], students, attempts, logliks[k], iterations[k], False, note
                )
            )
        else:
            results.append(
                ComponentFit(
                    name, config.default, students, attempts, None, 0, True,
                    _fallback_note(students, attempts, correct, config),
                )
            )  # fmt: skip
    return results


def log_likelihood(seqs: Sequences, params: dict[str, BKTParams]) -> float:
    """Total log-likelihood of ``seqs`` under the given per-component parameters."""
    ranges = seqs.component_ranges()
    stats = np.empty(kernels.N_STATS)
    total = 0.0
    for k, name in enumerate(seqs.components):
        row = np.array(params[name].as_tuple())
        total += kernels.e_step(seqs.obs, seqs.starts, ranges[k], ranges[k + 1], row, stats)
    return total


def predict(
    seqs: Sequences, params: dict[str, BKTParams]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """For every observation: P(correct) predicted before it and P(mastered) after it."""
    rows = np.array([params[name].as_tuple() for name in seqs.components])
    return kernels.forward(seqs.obs, seqs.starts, rows[seqs.seq_component])


def _counts(seqs: Sequences, ranges: npt.NDArray[np.int64]) -> list[tuple[int, int, int]]:
    """Per component: students, attempts and correct answers."""
    bounds = seqs.starts[ranges]
    correct = np.concatenate(([0], np.cumsum(seqs.obs, dtype=np.int64)))[bounds]
    return [
        (int(s), int(a), int(c))
        for s, a, c in zip(np.diff(ranges), np.diff(bounds), np.diff(correct), strict=True)
    ]


def _fallback_note(students: int, attempts: int, correct: int, config: FitConfig) -> str:
    if students < config.min_students or attempts < config.min_attempts:
        return (
            f"too little data ({students} students, {attempts} attempts; need "
            f"{config.min_students} and {config.min_attempts}): default parameters"
        )
    answers = "correct" if correct == attempts else "wrong"
    return (
        f"every one of the {attempts} answers is {answers}, so guessing, slipping and mastery "
        "cannot be told apart: default parameters"
    )


def _bound_note(params: BKTParams, config: FitConfig) -> str:
    """Says which of guess and slip ended on their upper bound (weakly identified)."""
    at_bound = [
        f"{name} at its bound {config.max_guess_slip}"
        for name, value in (("p_guess", params.p_guess), ("p_slip", params.p_slip))
        if value >= config.max_guess_slip
    ]
    return f"{' and '.join(at_bound)}: weakly identified" if at_bound else ""


def _em(
    seqs: Sequences,
    components: list[int],
    forget: npt.NDArray[np.bool_],
    config: FitConfig,
    report: Progress,
    phase: str,
) -> tuple[dict[int, BKTParams], dict[int, float], dict[int, int]]:
    """Restarted EM for the given components, a batch of components per compiled call."""
    rng = np.random.default_rng(config.seed)
    ranges = seqs.component_ranges()
    params: dict[int, BKTParams] = {}
    logliks: dict[int, float] = {}
    iterations: dict[int, int] = {}
    batch = max(1, config.components_per_batch)
    report(phase, 0, len(components))
    for start in range(0, len(components), batch):
        chosen = components[start : start + batch]
        # Screening: every restart a few iterations; the best per component goes on.
        jobs = np.repeat(np.array(chosen, dtype=np.int64), config.restarts)
        job_params = _initial_params(rng, len(jobs), forget[jobs])
        screen_ll, _ = kernels.run_em(
            seqs.obs,
            seqs.starts,
            ranges[jobs],
            ranges[jobs + 1],
            job_params,
            forget[jobs],
            config.max_guess_slip,
            config.screening_iterations,
            config.tolerance,
        )
        best = screen_ll.reshape(len(chosen), config.restarts).argmax(axis=1)
        rows = np.arange(len(chosen)) * config.restarts + best
        finalists = np.array(chosen, dtype=np.int64)
        final_params = np.ascontiguousarray(job_params[rows])
        final_ll, final_it = kernels.run_em(
            seqs.obs,
            seqs.starts,
            ranges[finalists],
            ranges[finalists + 1],
            final_params,
            forget[finalists],
            config.max_guess_slip,
            config.max_iterations,
            config.tolerance,
        )
        for i, k in enumerate(chosen):
            params[k] = BKTParams(*(float(v) for v in final_params[i]))
            logliks[k] = float(final_ll[i])
            iterations[k] = int(final_it[i]) + config.screening_iterations
        report(phase, min(start + batch, len(components)), len(components))
    return params, logliks, iterations


def _initial_params(
    rng: np.random.Generator, n: int, forget: npt.NDArray[np.bool_]
) -> npt.NDArray[np.float64]:
    rows = np.empty((n, 5))
    rows[:, kernels.INIT] = rng.uniform(0.05, 0.9, n)
    rows[:, kernels.LEARN] = rng.uniform(0.02, 0.5, n)
    rows[:, kernels.GUESS] = rng.uniform(0.02, 0.4, n)
    rows[:, kernels.SLIP] = rng.uniform(0.02, 0.4, n)
    rows[:, kernels.FORGET] = np.where(forget, rng.uniform(0.01, 0.2, n), 0.0)
    return rows


def _choose_forgetting(
    seqs: Sequences, eligible: list[int], config: FitConfig, report: Progress
) -> tuple[npt.NDArray[np.bool_], list[str]]:
    """Fit with and without forgetting on 80 % of students; keep what predicts the rest better."""
    train, held_out = seqs.split_by_student(config.holdout_fraction)
    n = len(seqs.components)
    without, _, _ = _em(train, eligible, np.zeros(n, bool), config, report, "forget: without")
    with_, _, _ = _em(train, eligible, np.ones(n, bool), config, report, "forget: with")
    ranges = held_out.component_ranges()
    stats = np.empty(kernels.N_STATS)
    chosen = np.zeros(n, dtype=bool)
    notes = [""] * n
    for k in eligible:
        first, last = int(ranges[k]), int(ranges[k + 1])
        n_obs = int(held_out.starts[last] - held_out.starts[first])
        if n_obs == 0:
            notes[k] = "no held-out students: forgetting not tried"
            continue
        ll = {
            label: kernels.e_step(
                held_out.obs, held_out.starts, first, last, np.array(p[k].as_tuple()), stats
            )
            for label, p in (("without", without), ("with", with_))
        }
        gain = (ll["with"] - ll["without"]) / n_obs
        chosen[k] = gain >= config.forget_margin
        notes[k] = f"forgetting {'on' if chosen[k] else 'off'}: held-out gain {gain:+.5f}/attempt"
    return chosen, notes
