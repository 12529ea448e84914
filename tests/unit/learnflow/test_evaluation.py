"""Scoring a version on held-out students against another, and the report it writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from learnflow import evaluation, synthetic
from learnflow.bkt import BKTParams, ModelParameters

TRUTH = {"loops": BKTParams(0.3, 0.2, 0.15, 0.1), "lists": BKTParams(0.5, 0.1, 0.2, 0.05)}


def test_calibration_bins_hold_the_mean_prediction_and_the_observed_rate() -> None:
    predicted = np.array([0.05, 0.05, 0.15, 0.95, 0.95, 0.95, 0.95])
    actual = np.array([0, 1, 0, 1, 1, 1, 0], dtype=np.int8)

    mean, observed, counts = evaluation.calibration(predicted, actual)

    np.testing.assert_allclose(mean, [0.05, 0.15, 0.95])
    np.testing.assert_allclose(observed, [0.5, 0.0, 0.75])
    assert counts.tolist() == [2, 1, 4]


def test_the_true_model_beats_the_defaults_and_the_report_says_so(tmp_path: Path) -> None:
    test = synthetic.generate(TRUTH, 150, 20, seed=5)
    true = ModelParameters(version=2, components=TRUTH)
    defaults = ModelParameters(version=0)

    result = evaluation.evaluate(test, true, defaults)
    page = evaluation.write_report(result, tmp_path / "report")

    assert result.candidate.overall.log_loss < result.baseline.overall.log_loss
    assert set(result.candidate.components) == {"loops", "lists"}
    assert sum(s.n for s in result.candidate.components.values()) == len(test.obs)
    text = page.read_text()
    assert "Version 2 predicts held-out answers better than version 0" in text
    for picture in ("calibration.png", "curves.png"):
        assert (page.parent / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f'src="{picture}"' in text
