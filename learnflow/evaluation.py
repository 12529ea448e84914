"""Scoring a parameter set on held-out students against another, and the report people read.

The report is one HTML page with its pictures beside it: overall and per-component scores of
both versions, a calibration plot (predicted P(correct) against how often students were right),
the parameters side by side, and mastery curves of a few held-out students under both versions.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from learnflow import fitting
from learnflow.bkt import ModelParameters
from learnflow.metrics import PredictionScores, score
from learnflow.sequences import Sequences

HELD_OUT = 0.2
"""Share of students (chosen by a stable hash of the id) a fit from history never sees and
evaluation scores on."""
CALIBRATION_BINS = 10
EXAMPLE_STUDENTS = 4


@dataclass(frozen=True, slots=True)
class VersionScores:
    version: int
    overall: PredictionScores
    components: dict[str, PredictionScores]
    predicted: npt.NDArray[np.float64]
    """P(correct) before every held-out answer."""
    mastered: npt.NDArray[np.float64]
    """P(mastered) after every held-out answer."""


@dataclass(frozen=True, slots=True)
class Evaluation:
    test: Sequences
    candidate: VersionScores
    baseline: VersionScores
    candidate_model: ModelParameters
    baseline_model: ModelParameters


def score_version(test: Sequences, model: ModelParameters) -> VersionScores:
    params = {name: model.for_component(name) for name in test.components}
    predicted, mastered = fitting.predict(test, params)
    of_answer = np.repeat(test.seq_component, test.lengths())
    components = {}
    for k, name in enumerate(test.components):
        mine = of_answer == k
        if mine.any():
            components[name] = score(predicted[mine], test.obs[mine])
    return VersionScores(model.version, score(predicted, test.obs), components, predicted, mastered)


def evaluate(test: Sequences, candidate: ModelParameters, baseline: ModelParameters) -> Evaluation:
    """Both versions' predictions of every held-out answer, scored."""
    if not len(test.obs):
        raise ValueError("no held-out answers to score")
    return Evaluation(
        test, score_version(test, candidate), score_version(test, baseline), candidate, baseline
    )


def calibration(
    predicted: npt.NDArray[np.float64], actual: npt.NDArray[np.int8], bins: int = CALIBRATION_BINS
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Per bin of predicted P(correct): mean prediction, observed rate, answers (empty bins
    dropped)."""
    index = np.minimum((predicted * bins).astype(np.int64), bins - 1)
    counts = np.bincount(index, minlength=bins)
    mean = np.bincount(index, weights=predicted, minlength=bins)
    right = np.bincount(index, weights=actual.astype(np.float64), minlength=bins)
    kept = counts > 0
    return mean[kept] / counts[kept], right[kept] / counts[kept], counts[kept]


def write_report(evaluation: Evaluation, directory: Path) -> Path:
    """Write ``report.html``, ``calibration.png`` and ``curves.png`` into ``directory``."""
    import matplotlib

    matplotlib.use("Agg")
    directory.mkdir(parents=True, exist_ok=True)
    _calibration_png(evaluation, directory / "calibration.png")
    _curves_png(evaluation, directory / "curves.png")
    page = directory / "report.html"
    page.write_text(_html(evaluation))
    return page


def _label(scores: VersionScores, role: str) -> str:
    return f"version {scores.version} ({role})"


def _calibration_png(evaluation: Evaluation, path: Path) -> None:
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 5.5))
    axes.plot([0, 1], [0, 1], color="#999", linestyle="--", label="perfectly calibrated")
    for scores, role, colour in (
        (evaluation.candidate, "candidate", "#2b59c3"),
        (evaluation.baseline, "live", "#d97706"),
    ):
        mean, observed, counts = calibration(scores.predicted, evaluation.test.obs)
        sizes = 20 + 280 * counts / counts.max()
        axes.plot(mean, observed, color=colour, linewidth=1.5)
        axes.scatter(mean, observed, s=sizes, color=colour, alpha=0.75,
                     label=_label(scores, role))  # fmt: skip
    axes.set(
        xlim=(0, 1), ylim=(0, 1), xlabel="predicted P(correct)",
        ylabel="share of answers that were correct",
        title="Calibration on held-out students (dot size: answers)",
    )  # fmt: skip
    axes.legend(loc="upper left")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _examples(evaluation: Evaluation) -> list[int]:
    """The longest held-out sequences of the component with the most answers among those
    whose parameters differ between the versions (any component if none do)."""
    test = evaluation.test
    lengths = test.lengths()
    per_component = np.bincount(test.seq_component, weights=lengths, minlength=len(test.components))
    changed = np.array(
        [
            evaluation.candidate_model.for_component(name)
            != evaluation.baseline_model.for_component(name)
            for name in test.components
        ]
    )
    if changed.any():
        per_component = np.where(changed, per_component, -1.0)
    busiest = int(np.argmax(per_component))
    mine = np.flatnonzero(test.seq_component == busiest)
    return [int(i) for i in mine[np.argsort(-lengths[mine], kind="stable")][:EXAMPLE_STUDENTS]]


def _curves_png(evaluation: Evaluation, path: Path) -> None:
    import matplotlib.pyplot as plt

    test = evaluation.test
    examples = _examples(evaluation)
    columns = 2
    rows = max(1, math.ceil(len(examples) / columns))
    figure, grid = plt.subplots(rows, columns, figsize=(11, 3.2 * rows), squeeze=False)
    for axes, i in zip(grid.flat, examples, strict=False):
        a, b = test.starts[i], test.starts[i + 1]
        steps = np.arange(1, b - a + 1)
        answers = test.obs[a:b]
        for scores, role, colour, style in (
            (evaluation.candidate, "candidate", "#2b59c3", "-"),
            (evaluation.baseline, "live", "#d97706", "--"),
        ):
            axes.plot(steps, scores.mastered[a:b], color=colour, linestyle=style,
                      label=_label(scores, role))  # fmt: skip
        axes.scatter(steps[answers == 1], np.full(int(answers.sum()), 1.04), marker="o",
                     color="#15803d", s=18, label="correct")  # fmt: skip
        axes.scatter(steps[answers == 0], np.full(int((answers == 0).sum()), -0.04), marker="x",
                     color="#b91c1c", s=18, label="wrong")  # fmt: skip
        component = test.components[int(test.seq_component[i])]
        axes.set(ylim=(-0.1, 1.1), xlabel="attempt", ylabel="P(mastered)",
                 title=f"{test.students[i]} on {component}")  # fmt: skip
        axes.grid(alpha=0.3)
    for axes in list(grid.flat)[len(examples) :]:
        axes.axis("off")
    grid.flat[0].legend(loc="lower right", fontsize="small")
    figure.suptitle("Mastery after each attempt, held-out students")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _figure(value: float, digits: int = 4) -> str:
    return "–" if math.isnan(value) else f"{value:.{digits}f}"


def _score_cells(scores: PredictionScores | None) -> str:
    if scores is None:
        return "<td>–</td><td>–</td><td>–</td>"
    return (
        f"<td>{_figure(scores.auc)}</td><td>{_figure(scores.log_loss)}</td>"
        f"<td>{_figure(scores.rmse)}</td>"
    )


def _html(evaluation: Evaluation) -> str:
    candidate, baseline = evaluation.candidate, evaluation.baseline
    gain = baseline.overall.log_loss - candidate.overall.log_loss
    verdict = (
        f"Version {candidate.version} predicts held-out answers "
        + ("better" if gain > 0 else "no better")
        + f" than version {baseline.version} (log-loss {_figure(candidate.overall.log_loss)} vs "
        f"{_figure(baseline.overall.log_loss)}, AUC {_figure(candidate.overall.auc)} vs "
        f"{_figure(baseline.overall.auc)})."
    )
    rows = []
    for name in evaluation.test.components:
        rows.append(
            f"<tr><th>{html.escape(name)}</th>"
            f"<td>{candidate.components[name].n if name in candidate.components else 0:,}</td>"
            f"{_score_cells(candidate.components.get(name))}"
            f"{_score_cells(baseline.components.get(name))}</tr>"
        )
    params = []
    for name in evaluation.test.components:
        new = evaluation.candidate_model.for_component(name).as_tuple()
        old = evaluation.baseline_model.for_component(name).as_tuple()
        cells = "".join(
            f"<td>{n:.3f}<span class='was'> ({o:.3f})</span></td>"
            for n, o in zip(new, old, strict=True)
        )
        params.append(f"<tr><th>{html.escape(name)}</th>{cells}</tr>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Model version {candidate.version} against {baseline.version}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #1f2937; }}
table {{ border-collapse: collapse; margin: 1rem 0; }}
th, td {{ padding: 4px 10px; border-bottom: 1px solid #e5e7eb; text-align: right; }}
th:first-child {{ text-align: left; }}
.was {{ color: #9ca3af; font-size: 0.85em; }}
.verdict {{ font-size: 1.1rem; padding: 0.8rem 1rem; background: #eef2ff; border-radius: 6px; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>Model version {candidate.version} against version {baseline.version}</h1>
<p class="verdict">{html.escape(verdict)}</p>
<p>{len(set(evaluation.test.students)):,} held-out students (never fitted),
{len(evaluation.test.obs):,} answers.</p>
<h2>Scores</h2>
<table>
<tr><th></th><th></th><th colspan="3">version {candidate.version}</th>
<th colspan="3">version {baseline.version}</th></tr>
<tr><th>component</th><th>answers</th><th>AUC</th><th>log-loss</th><th>RMSE</th>
<th>AUC</th><th>log-loss</th><th>RMSE</th></tr>
<tr><th>all</th><td>{candidate.overall.n:,}</td>{_score_cells(candidate.overall)}
{_score_cells(baseline.overall)}</tr>
{"".join(rows)}
</table>
<h2>Calibration</h2>
<img src="calibration.png" alt="Predicted P(correct) against observed correctness per bin">
<h2>Parameters</h2>
<p>Version {candidate.version}, with version {baseline.version} in brackets.</p>
<table>
<tr><th>component</th><th>p_init</th><th>p_learn</th><th>p_guess</th><th>p_slip</th>
<th>p_forget</th></tr>
{"".join(params)}
</table>
<h2>Mastery curves</h2>
<img src="curves.png" alt="P(mastered) after each attempt for a few held-out students">
</body></html>
"""
