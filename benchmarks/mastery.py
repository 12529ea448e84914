"""Benchmark: LearnFlow's BKT fit against pyBKT 1.4.3 (C++ build) on the same synthetic data.

Prints, for LearnFlow, pyBKT and the true parameters: fit wall time, held-out AUC, log-loss, RMSE
and parameter MAE against the truth, then the targets. Data: 20 components × 2,000 students ×
20 attempts (0.8 M answers) from known parameters, split 80/20 by student. pyBKT is built from
source in its own virtualenv under .run/bench/ on first use (numpy<2 as it requires). Last, a set
where 1 % of students answer 2,000 times: the fit must succeed with the same parameter MAE target.

Run with ``make bench-mastery``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from learnflow import fitting, synthetic
from learnflow.bkt import BKTParams
from learnflow.metrics import PredictionScores, score
from learnflow.sequences import Sequences

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".run" / "bench" / "mastery"
PYBKT_VENV = ROOT / ".run" / "bench" / "pybkt-venv"
PYBKT_RUNNER = Path(__file__).with_name("pybkt_runner.py")
COMPONENTS, STUDENTS, ATTEMPTS, SEED = 20, 2000, 20, 2026
NAMES = ("p_init", "p_learn", "p_guess", "p_slip")
PYBKT_NAMES = ("prior", "learns", "guesses", "slips")


def say(text: str) -> None:
    print(text, flush=True)  # noqa: T201 - a benchmark prints its figures


def ensure_pybkt() -> Path:
    python = PYBKT_VENV / "bin" / "python"
    stamp = PYBKT_VENV / ".pybkt-1.4.3-ok"
    if stamp.exists():
        return python
    say(f"building pyBKT 1.4.3 with its C++ extension in {PYBKT_VENV} (once) …")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(PYBKT_VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run(
        [*pip, "numpy<2", "pandas<3", "scikit-learn<=1.7.2", "setuptools", "wheel"], check=True
    )
    subprocess.run(
        [*pip, "--no-build-isolation", "--no-binary", "pybkt", "pybkt==1.4.3"], check=True
    )
    probe = "import pyBKT.fit.E_step as e; assert e.__file__.endswith('.so'), e.__file__"
    subprocess.run([str(python), "-c", probe], check=True)
    stamp.touch()
    return python


def true_parameters() -> dict[str, BKTParams]:
    rng = np.random.default_rng(SEED)
    return {
        f"skill-{k:02d}": BKTParams(
            p_init=float(rng.uniform(0.05, 0.6)),
            p_learn=float(rng.uniform(0.05, 0.35)),
            p_guess=float(rng.uniform(0.05, 0.35)),
            p_slip=float(rng.uniform(0.03, 0.2)),
        )
        for k in range(COMPONENTS)
    }


def write_csv(seqs: Sequences, path: Path) -> np.ndarray:
    """pyBKT's columns; order_id runs in attempt order. Returns the order_id of each answer."""
    lengths = seqs.lengths()
    order_ids = np.arange(len(seqs.obs), dtype=np.int64)
    users = np.repeat(np.array(seqs.students), lengths)
    skills = np.repeat(np.array(seqs.components)[seqs.seq_component], lengths)
    with path.open("w") as handle:
        handle.write("order_id,user_id,skill_name,correct\n")
        handle.writelines(
            f"{o},{u},{s},{c}\n"
            for o, u, s, c in zip(order_ids, users, skills, seqs.obs, strict=True)
        )
    return order_ids


def mae(fitted: dict[str, tuple[float, ...]], truth: dict[str, BKTParams]) -> float:
    errors = [abs(fitted[name][i] - truth[name].as_tuple()[i]) for name in truth for i in range(4)]
    return float(np.mean(errors))


def row(label: str, seconds: float | None, s: PredictionScores, param_mae: float | None) -> str:
    fit = "-" if seconds is None else f"{seconds:8.2f} s"
    err = "-" if param_mae is None else f"{param_mae:.4f}"
    return f"{label:<28}{fit:>11}{s.auc:>10.4f}{s.log_loss:>10.4f}{s.rmse:>10.4f}{err:>10}"


def main() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    pybkt_python = ensure_pybkt()
    truth = true_parameters()
    seqs = synthetic.generate(truth, STUDENTS, ATTEMPTS, seed=SEED)
    train, test = seqs.split_by_student(0.2)
    say(
        f"data: {COMPONENTS} components × {STUDENTS} students × {ATTEMPTS} attempts = "
        f"{len(seqs.obs):,} answers; train {len(train.obs):,}, held-out {len(test.obs):,} "
        f"({len(set(test.students))} students)"
    )
    write_csv(train, WORK / "train.csv")
    test_order = write_csv(test, WORK / "test.csv")
    actual = test.obs

    # Compile (or load the cached) kernels first; the fit time below is the fit alone.
    began = time.perf_counter()
    fitting.fit(synthetic.generate({"warm": truth["skill-00"]}, 50, 5, seed=1))
    warm_up = time.perf_counter() - began
    config = fitting.FitConfig(forgets="never", seed=SEED)
    began = time.perf_counter()
    fits = fitting.fit(train, config)
    ours_seconds = time.perf_counter() - began
    ours = {f.component: f.params for f in fits}
    ours_scores = score(fitting.predict(test, ours)[0], actual)
    ours_mae = mae({k: v.as_tuple() for k, v in ours.items()}, truth)

    say("fitting with pyBKT (C++ extension, num_fits=5) …")
    out = WORK / "pybkt.json"
    subprocess.run(
        [str(pybkt_python), str(PYBKT_RUNNER), str(WORK / "train.csv"),
         str(WORK / "test.csv"), str(out), str(SEED)],
        check=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip
    pybkt = json.loads(out.read_text())
    by_order = dict(zip(pybkt["order_id"], pybkt["p_correct"], strict=True))
    pybkt_pred = np.array([by_order[int(o)] for o in test_order])
    pybkt_scores = score(pybkt_pred, actual)
    pybkt_mae = mae(
        {k: tuple(v[n] for n in PYBKT_NAMES) for k, v in pybkt["params"].items()}, truth
    )
    truth_scores = score(fitting.predict(test, truth)[0], actual)

    say("")
    say(f"{'model':<28}{'fit':>11}{'AUC':>10}{'log-loss':>10}{'RMSE':>10}{'param MAE':>10}")
    say(row("true parameters", None, truth_scores, 0.0))
    say(row("pyBKT 1.4.3 (C++)", pybkt["fit_seconds"], pybkt_scores, pybkt_mae))
    say(row("LearnFlow (numba EM)", ours_seconds, ours_scores, ours_mae))
    say(f"(LearnFlow kernel compile/cache load before timing: {warm_up:.2f} s)")
    say("")
    ratio = ours_seconds / pybkt["fit_seconds"]
    checks = [
        ("AUC within 0.002 of true-parameter model",
         abs(ours_scores.auc - truth_scores.auc) <= 0.002,
         f"{ours_scores.auc - truth_scores.auc:+.4f}"),
        ("log-loss no worse than pyBKT", ours_scores.log_loss <= pybkt_scores.log_loss,
         f"{ours_scores.log_loss:.5f} vs {pybkt_scores.log_loss:.5f}"),
        ("parameter MAE <= 0.015", ours_mae <= 0.015, f"{ours_mae:.4f}"),
        ("fit time no slower than pyBKT", ratio <= 1.0,
         f"{ratio:.3f}× pyBKT's time ({1 / ratio:.1f}× faster)"),
    ]  # fmt: skip
    for label, ok, figure in checks:
        say(f"  [{'met' if ok else 'MISSED'}] {label}: {figure}")
    long_sequences(truth)


def long_sequences(truth: dict[str, BKTParams]) -> None:
    """The same components with 1 % of students answering 2,000 times, as real tutor logs hold."""
    long_students = STUDENTS // 100
    seqs = synthetic.generate(
        truth, STUDENTS, ATTEMPTS, seed=SEED + 1, long_students=long_students, long_attempts=2000
    )
    train, test = seqs.split_by_student(0.2)
    say("")
    say(
        f"long sequences: {long_students} of {STUDENTS} students per component answer 2,000 "
        f"times; {len(seqs.obs):,} answers"
    )
    began = time.perf_counter()
    fits = fitting.fit(train, fitting.FitConfig(forgets="never", seed=SEED))
    seconds = time.perf_counter() - began
    ours = {f.component: f.params for f in fits}
    param_mae = mae({k: v.as_tuple() for k, v in ours.items()}, truth)
    say(row("LearnFlow, long sequences", seconds, score(fitting.predict(test, ours)[0], test.obs),
            param_mae))  # fmt: skip
    fallbacks = sum(f.fallback for f in fits)
    ok = fallbacks == 0 and param_mae <= 0.015
    say(
        f"  [{'met' if ok else 'MISSED'}] every component fitted, parameter MAE <= 0.015: "
        f"{len(fits) - fallbacks}/{len(fits)} fitted, MAE {param_mae:.4f}"
    )


if __name__ == "__main__":
    main()
