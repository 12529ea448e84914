"""Compiled inner loops of Bayesian Knowledge Tracing over many sequences at once.

Sequences are stored flat: ``obs[starts[i]:starts[i + 1]]`` is sequence ``i`` (1 = correct,
0 = wrong), in attempt order. Parameters are rows ``(p_init, p_learn, p_guess, p_slip, p_forget)``.
The loops are compiled by numba (cached on disk); the scalar update in :mod:`learnflow.bkt` is the
reference they must agree with.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numba import njit, prange

INIT, LEARN, GUESS, SLIP, FORGET = range(5)
N_STATS = 10
# Statistics accumulated by one E-step, in this order:
#   0 Σγ₁(learned)           1 number of sequences          -> p_init
#   2 Σξ(unlearned→learned)  3 Σγ(unlearned), t < T         -> p_learn
#   4 Σξ(learned→unlearned)  5 Σγ(learned), t < T           -> p_forget
#   6 Σγ(unlearned)·correct  7 Σγ(unlearned)                -> p_guess
#   8 Σγ(learned)·wrong      9 Σγ(learned)                  -> p_slip

_NORMAL = 1e-250
"""Below this weight the scaled pass follows a state's log-odds too: the weight itself is on its
way to a subnormal or to 0, where it could not come back when later answers favour its state
(410 wrong answers, then 4,590 right ones)."""
_LOST = math.log(1e-300)
"""Log-odds below which the scaled weight has lost precision: a sequence whose state comes back
from there is run again in log space."""

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
ObsArray = npt.NDArray[np.int8]


@njit(cache=True, nogil=True)
def e_step(
    obs: ObsArray, starts: IntArray, first: int, last: int, params: FloatArray, stats: FloatArray
) -> float:
    """Forward-backward over sequences ``first..last-1``; fills ``stats``, returns the LL.

    Each sequence runs scaled per step, in plain probabilities; one whose state weights leave
    the range where doubles hold them exactly runs again with log weights.
    """
    stats[:] = 0.0
    longest = 0
    for i in range(first, last):
        longest = max(longest, starts[i + 1] - starts[i])
    alpha0 = np.empty(longest)
    alpha1 = np.empty(longest)
    scale = np.empty(longest)
    seq_stats = np.empty(N_STATS)
    loglik = 0.0
    for i in range(first, last):
        a = starts[i]
        n = starts[i + 1] - a
        if n == 0:
            continue
        seq_stats[:] = 0.0
        seq_loglik, exact = _scaled_sequence(obs, a, n, params, alpha0, alpha1, scale, seq_stats)
        if not exact:
            seq_stats[:] = 0.0
            seq_loglik = _log_sequence(obs, a, n, params, alpha0, alpha1, scale, seq_stats)
        loglik += seq_loglik
        stats += seq_stats
    return loglik


@njit(cache=True, nogil=True)
def _scaled_sequence(
    obs: ObsArray,
    a: int,
    n: int,
    params: FloatArray,
    alpha0: FloatArray,
    alpha1: FloatArray,
    scale: FloatArray,
    stats: FloatArray,
) -> tuple[float, bool]:
    """Forward-backward of ``obs[a:a + n]`` scaled per step; False when a weight got too small."""
    p_init, learn, guess, slip, forget = params[0], params[1], params[2], params[3], params[4]
    # Both states' probabilities are carried, never one as 1 minus the other: after a few
    # answers that make mastery near certain, 1 - P(mastered) rounds to exactly 0.
    p1 = p_init
    p0 = 1.0 - p_init
    loglik = 0.0
    # While one state's weight is below _NORMAL its log-odds against the other are followed in
    # log space too (additions of constants, cheap): if they come back from below _LOST, where
    # the weight rounded away, the sequence needs the log-space pass. A weight that stays tiny
    # changes the likelihood and the statistics by less than doubles hold.
    small = -1
    odds = 0.0
    lowest = 0.0
    right_odds = wrong_odds = stay0 = learns = stay1 = forgets = 0.0
    logs_ready = False
    for t in range(n):
        if small == -1 and min(p0, p1) < _NORMAL:
            if min(p0, p1) <= 0.0:
                return loglik, False
            if not logs_ready:  # logs only for the rare sequence that needs them
                logs_ready = True
                right_odds = _log(guess) - _log(1.0 - slip)
                wrong_odds = _log(1.0 - guess) - _log(slip)
                stay0, learns = _log(1.0 - learn), _log(learn)
                stay1, forgets = _log(1.0 - forget), _log(forget)
            small = 0 if p0 < p1 else 1
            odds = math.log(p0 / p1) if small == 0 else math.log(p1 / p0)
            lowest = odds
        if obs[a + t]:
            e1 = 1.0 - slip
            e0 = guess
        else:
            e1 = slip
            e0 = 1.0 - guess
        num1 = p1 * e1
        num0 = p0 * e0
        s = num1 + num0
        if not s > 0.0:
            return loglik, False
        post1 = num1 / s
        post0 = num0 / s
        loglik += math.log(s)
        alpha0[t] = post0
        alpha1[t] = post1
        scale[t] = s
        p1 = post1 * (1.0 - forget) + post0 * learn
        p0 = post0 * (1.0 - learn) + post1 * forget
        if small == 0:
            odds += right_odds if obs[a + t] else wrong_odds
            odds = _log_add(odds + stay0, forgets) - stay1
        elif small == 1:
            odds -= right_odds if obs[a + t] else wrong_odds
            odds = _log_add(odds + stay1, learns) - stay0
        if small != -1:
            lowest = min(lowest, odds)
            if not odds <= math.log(_NORMAL):
                if lowest < _LOST or odds != odds:
                    return loglik, False
                small = -1
    # Backward pass with the forward scaling; beta of the last step is 1 for both states.
    b0 = 1.0
    b1 = 1.0
    g0 = alpha0[n - 1]
    g1 = alpha1[n - 1]
    _count_answer(stats, g0, g1, obs[a + n - 1])
    for t in range(n - 2, -1, -1):
        if obs[a + t + 1]:
            e1 = 1.0 - slip
            e0 = guess
        else:
            e1 = slip
            e0 = 1.0 - guess
        s = scale[t + 1]
        a0 = alpha0[t]
        a1 = alpha1[t]
        w0 = e0 * b0 / s
        w1 = e1 * b1 / s
        x00 = a0 * (1.0 - learn) * w0
        x01 = a0 * learn * w1
        x10 = a1 * forget * w0
        x11 = a1 * (1.0 - forget) * w1
        g0 = x00 + x01
        g1 = x10 + x11
        total = g0 + g1
        if not total > 0.0:
            return loglik, False
        g0 /= total
        g1 /= total
        stats[2] += x01 / total
        stats[3] += g0
        stats[4] += x10 / total
        stats[5] += g1
        _count_answer(stats, g0, g1, obs[a + t])
        b0 = (1.0 - learn) * w0 + learn * w1
        b1 = forget * w0 + (1.0 - forget) * w1
        # Every statistic above is normalised by ``total``, so a common factor of b0 and b1
        # changes nothing: rescale them to a maximum of 1 at every step.
        top = max(b0, b1)
        b0 /= top
        b1 /= top
        if min(b0, b1) < _NORMAL:
            return loglik, False
    stats[0] += g1
    stats[1] += 1.0
    return loglik, True


@njit(cache=True, nogil=True)
def _log_sequence(
    obs: ObsArray,
    a: int,
    n: int,
    params: FloatArray,
    alpha0: FloatArray,
    alpha1: FloatArray,
    scale: FloatArray,
    stats: FloatArray,
) -> float:
    """Forward-backward of ``obs[a:a + n]`` with log weights (``alpha``, ``scale`` hold logs)."""
    p_init, learn, guess, slip, forget = params[0], params[1], params[2], params[3], params[4]
    right1, right0 = _log(1.0 - slip), _log(guess)
    wrong1, wrong0 = _log(slip), _log(1.0 - guess)
    stay0, learns = _log(1.0 - learn), _log(learn)
    stay1, forgets = _log(1.0 - forget), _log(forget)
    lp1 = _log(p_init)
    lp0 = _log(1.0 - p_init)
    loglik = 0.0
    for t in range(n):
        if obs[a + t]:
            n1 = lp1 + right1
            n0 = lp0 + right0
        else:
            n1 = lp1 + wrong1
            n0 = lp0 + wrong0
        ls = _log_add(n0, n1)
        loglik += ls
        if ls == -math.inf:
            # An answer the model calls impossible carries no evidence.
            q1, q0 = lp1, lp0
        else:
            q1, q0 = n1 - ls, n0 - ls
        alpha0[t] = q0
        alpha1[t] = q1
        scale[t] = ls
        lp1 = _log_add(q1 + stay1, q0 + learns)
        lp0 = _log_add(q0 + stay0, q1 + forgets)
    lb0 = 0.0
    lb1 = 0.0
    g0 = math.exp(alpha0[n - 1])
    g1 = math.exp(alpha1[n - 1])
    _count_answer(stats, g0, g1, obs[a + n - 1])
    for t in range(n - 2, -1, -1):
        if obs[a + t + 1]:
            w1 = right1 + lb1 - scale[t + 1]
            w0 = right0 + lb0 - scale[t + 1]
        else:
            w1 = wrong1 + lb1 - scale[t + 1]
            w0 = wrong0 + lb0 - scale[t + 1]
        x00 = alpha0[t] + stay0 + w0
        x01 = alpha0[t] + learns + w1
        x10 = alpha1[t] + forgets + w0
        x11 = alpha1[t] + stay1 + w1
        lg0 = _log_add(x00, x01)
        lg1 = _log_add(x10, x11)
        total = _log_add(lg0, lg1)
        if total > -math.inf:
            g0 = math.exp(lg0 - total)
            g1 = math.exp(lg1 - total)
            stats[2] += math.exp(x01 - total)
            stats[3] += g0
            stats[4] += math.exp(x10 - total)
            stats[5] += g1
        else:
            # Past and future rule each other out (a zero guess or slip): keep the forward
            # posterior for this step and count no transition.
            g0 = math.exp(alpha0[t])
            g1 = math.exp(alpha1[t])
        _count_answer(stats, g0, g1, obs[a + t])
        lb0 = _log_add(stay0 + w0, learns + w1)
        lb1 = _log_add(forgets + w0, stay1 + w1)
        top = max(lb0, lb1)
        if top > -math.inf:
            lb0 -= top
            lb1 -= top
    stats[0] += g1
    stats[1] += 1.0
    return loglik


@njit(cache=True, nogil=True)
def _count_answer(stats: FloatArray, g0: float, g1: float, correct: int) -> None:
    """Add one answer's guess and slip statistics, weighted by the state posteriors."""
    stats[6] += g0 * correct
    stats[7] += g0
    stats[8] += g1 * (1 - correct)
    stats[9] += g1


@njit(cache=True, nogil=True)
def _log(x: float) -> float:
    return math.log(x) if x > 0.0 else -math.inf


@njit(cache=True, nogil=True)
def _log_add(x: float, y: float) -> float:
    """log(exp(x) + exp(y)) without overflow; -inf stands for a zero weight."""
    top = max(x, y)
    low = min(x, y)
    if low == -math.inf:
        return top
    return top + math.log1p(math.exp(low - top))


@njit(cache=True, nogil=True)
def m_step(stats: FloatArray, params: FloatArray, fit_forget: bool, max_guess_slip: float) -> None:
    """New parameters from E-step statistics, inside the allowed box."""
    eps = 1e-6
    params[INIT] = _clip(stats[0] / max(stats[1], eps), eps, 1.0 - eps)
    params[LEARN] = _clip(stats[2] / max(stats[3], eps), eps, 1.0 - eps)
    params[FORGET] = _clip(stats[4] / max(stats[5], eps), 0.0, 1.0 - eps) if fit_forget else 0.0
    params[GUESS] = _clip(stats[6] / max(stats[7], eps), eps, max_guess_slip)
    params[SLIP] = _clip(stats[8] / max(stats[9], eps), eps, max_guess_slip)


@njit(cache=True, nogil=True)
def _clip(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


@njit(cache=True, parallel=True)
def run_em(
    obs: ObsArray,
    starts: IntArray,
    job_first: IntArray,
    job_last: IntArray,
    job_params: FloatArray,
    job_forget: npt.NDArray[np.bool_],
    max_guess_slip: float,
    max_iterations: int,
    tolerance: float,
) -> tuple[FloatArray, IntArray]:
    """EM for independent jobs (component × restart), in parallel; updates ``job_params`` in place.

    ``job_forget[j]`` says whether job ``j`` fits ``p_forget`` (else it stays 0).

    A job stops when an iteration improves its log-likelihood by less than ``tolerance`` per
    observation. Returns each job's final log-likelihood and iteration count.
    """
    n_jobs = job_first.shape[0]
    logliks = np.empty(n_jobs)
    iterations = np.zeros(n_jobs, dtype=np.int64)
    for j in prange(n_jobs):
        stats = np.empty(N_STATS)
        n_obs = max(starts[job_last[j]] - starts[job_first[j]], 1)
        previous = -np.inf
        loglik = -np.inf
        for it in range(max_iterations):
            loglik = e_step(obs, starts, job_first[j], job_last[j], job_params[j], stats)
            iterations[j] = it + 1
            if loglik - previous < tolerance * n_obs:
                break
            m_step(stats, job_params[j], job_forget[j], max_guess_slip)
            previous = loglik
        else:
            # Out of iterations: report the likelihood of the parameters actually returned.
            loglik = e_step(obs, starts, job_first[j], job_last[j], job_params[j], stats)
        logliks[j] = loglik
    return logliks, iterations


@njit(cache=True, nogil=True)
def forward(
    obs: ObsArray, starts: IntArray, seq_params: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Per observation: P(correct) predicted before it, and P(mastered) after it."""
    predicted = np.empty(obs.shape[0])
    mastered = np.empty(obs.shape[0])
    for i in range(starts.shape[0] - 1):
        p_init, learn, guess, slip, forget = (
            seq_params[i, 0],
            seq_params[i, 1],
            seq_params[i, 2],
            seq_params[i, 3],
            seq_params[i, 4],
        )
        p_l = p_init
        for k in range(starts[i], starts[i + 1]):
            p_correct = p_l * (1.0 - slip) + (1.0 - p_l) * guess
            predicted[k] = p_correct
            if obs[k]:
                if_mastered = p_l * (1.0 - slip)
                if_not = (1.0 - p_l) * guess
            else:
                if_mastered = p_l * slip
                if_not = (1.0 - p_l) * (1.0 - guess)
            likelihood = if_mastered + if_not
            # An answer the model calls impossible carries no evidence.
            post = if_mastered / likelihood if likelihood > 0.0 else p_l
            p_l = min(1.0, post * (1.0 - forget) + (1.0 - post) * learn)
            mastered[k] = p_l
    return predicted, mastered
