"""Prediction quality of P(correct) against what students actually answered."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class PredictionScores:
    auc: float
    log_loss: float
    rmse: float
    n: int


def score(predicted: npt.NDArray[np.float64], actual: npt.NDArray[np.integer]) -> PredictionScores:
    """AUC (ties counted half), mean log-loss (probabilities clipped to 1e-15) and RMSE."""
    y = np.asarray(actual).astype(np.float64)
    p = np.asarray(predicted, dtype=np.float64)
    if p.shape != y.shape or p.size == 0:
        raise ValueError(f"need equal, non-empty arrays, got {p.shape} and {y.shape}")
    clipped = np.clip(p, 1e-15, 1 - 1e-15)
    log_loss = float(-np.mean(y * np.log(clipped) + (1 - y) * np.log(1 - clipped)))
    rmse = float(np.sqrt(np.mean((p - y) ** 2)))
    return PredictionScores(_auc(p, y), log_loss, rmse, int(p.size))


def _auc(p: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> float:
    """Mann–Whitney U over average ranks."""
    positives = float(y.sum())
    negatives = float(y.size - positives)
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(p, kind="mergesort")
    sorted_p = p[order]
    ranks = np.empty(p.size)
    # Average ranks over ties.
    boundaries = np.flatnonzero(np.diff(sorted_p)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [p.size]))
    average = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(average, ends - starts)
    rank_sum = float(ranks[y == 1].sum())
    return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)
