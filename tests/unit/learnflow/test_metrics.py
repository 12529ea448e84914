from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from learnflow.metrics import score


def pairwise_auc(p: list[float], y: list[int]) -> float:
    pos = [a for a, b in zip(p, y, strict=True) if b]
    neg = [a for a, b in zip(p, y, strict=True) if not b]
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in pos for b in neg)
    return wins / (len(pos) * len(neg))


@given(
    st.lists(
        st.tuples(st.sampled_from([0.1, 0.2, 0.5, 0.7, 0.9]), st.integers(0, 1)),
        min_size=2,
        max_size=60,
    ).filter(lambda rows: 0 < sum(y for _, y in rows) < len(rows))
)
def test_auc_equals_the_pairwise_definition(rows: list[tuple[float, int]]) -> None:
    p = [a for a, _ in rows]
    y = [b for _, b in rows]

    assert score(np.array(p), np.array(y)).auc == pytest.approx(pairwise_auc(p, y))


def test_log_loss_and_rmse_by_hand() -> None:
    result = score(np.array([0.8, 0.4]), np.array([1, 0]))

    assert result.log_loss == pytest.approx(-(math.log(0.8) + math.log(0.6)) / 2)
    assert result.rmse == pytest.approx(math.sqrt((0.2**2 + 0.4**2) / 2))
    assert result.auc == 1.0
