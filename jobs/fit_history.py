"""The Ray job that fits the mastery model from the attempt history and stores it as a version.

Submitted by ``learnflow fit --from-history`` (``python -m jobs.fit_history …`` on the cluster).
Components are split into as many groups as the cluster has CPUs, balanced by attempts; each
group is a Ray task that streams its components' attempts from PostgreSQL, holds out a fifth of
the students, fits the rest and scores the held-out students. The driver logs progress (the
dashboard's Jobs page shows it), then stores every component's parameters with its counts and
held-out scores as the next model version. Publishing it is a separate, deliberate step.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import ray

from actors import model_store, postgres_store
from jobs import history
from learnflow import evaluation, fitting, param_file
from learnflow.bkt import ModelParameters
from learnflow.evaluation import HELD_OUT
from learnflow.metrics import PredictionScores, score
from learnflow.settings import Settings

logger = logging.getLogger("learnflow.fit")


@dataclass(frozen=True, slots=True)
class GroupResult:
    fits: list[fitting.ComponentFit]
    metrics: dict[str, dict[str, Any]]
    """Held-out scores per component."""
    predicted: npt.NDArray[np.float32]
    actual: npt.NDArray[np.int8]
    attempts: int
    first: datetime | None
    last: datetime | None
    seconds: float


def plan(sizes: Sequence[history.ComponentSize], groups: int) -> list[list[str]]:
    """Components in at most ``groups`` groups of about equal attempts (largest first)."""
    loads = [0] * max(1, groups)
    bins: list[list[str]] = [[] for _ in loads]
    for size in sorted(sizes, key=lambda s: -s.attempts):
        lightest = loads.index(min(loads))
        loads[lightest] += size.attempts
        bins[lightest].append(size.component)
    return [sorted(names) for names in bins if names]


def group_name(names: Sequence[str]) -> str:
    """How a group of components shows on the dashboard and in the log."""
    return f"{names[0]}…{names[-1]}" if len(names) > 1 else names[0]


def scores_json(scores: PredictionScores) -> dict[str, Any]:
    """JSON-safe scores: an AUC without both outcomes is ``None``."""
    return {
        "auc": None if math.isnan(scores.auc) else round(scores.auc, 6),
        "log_loss": round(scores.log_loss, 6),
        "rmse": round(scores.rmse, 6),
        "answers": scores.n,
    }


async def _read(
    settings: Settings, since: datetime | None, names: list[str]
) -> history.HistorySlice:
    async with postgres_store.connection(settings.postgres) as conn:
        return await history.read(conn, since, names)


@ray.remote(num_cpus=0.25, scheduling_strategy="SPREAD")
def fit_group(
    settings: Settings, since: datetime | None, names: list[str], config: fitting.FitConfig
) -> GroupResult:
    """Read, fit and score one group of components; its log lines join the job's log."""
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
    began = time.monotonic()
    group = group_name(names)
    taken = asyncio.run(_read(settings, since, names))
    train, test = taken.sequences.split_by_student(HELD_OUT)
    logger.info(
        "%s: read %s answers of %s students in %.1f s; fitting %s, scoring %s",
        group, f"{len(taken.sequences.obs):,}", f"{len(set(taken.sequences.students)):,}",
        time.monotonic() - began, f"{len(train.obs):,}", f"{len(test.obs):,}",
    )  # fmt: skip

    def progress(phase: str, done: int, total: int) -> None:
        logger.info("%s: %s %d/%d components", group, phase, done, total)

    fits = fitting.fit(train, config, progress)
    metrics: dict[str, dict[str, Any]] = {}
    predicted = np.empty(0)
    params = {f.component: f.params for f in fits}
    # Components only held-out students answered have no fit to score.
    known = np.array([name in params for name in test.components], dtype=bool)
    test = test.select(known[test.seq_component]) if len(test.obs) else test
    if len(test.obs):
        scored = evaluation.score_version(test, ModelParameters(components=params))
        predicted = scored.predicted
        metrics = {name: scores_json(s) for name, s in scored.components.items()}
    return GroupResult(
        fits, metrics, predicted.astype(np.float32), test.obs.copy(), taken.attempts,
        taken.first, taken.last, time.monotonic() - began,
    )  # fmt: skip


async def _sizes(
    settings: Settings, since: datetime | None, components: list[str] | None
) -> list[history.ComponentSize]:
    async with postgres_store.connection(settings.postgres) as conn:
        return await history.component_sizes(conn, since, components)


async def _store(
    settings: Settings,
    document: param_file.ParameterFile,
    source: str,
    results: list[GroupResult],
    overall: dict[str, Any],
) -> int:
    firsts = [r.first for r in results if r.first is not None]
    lasts = [r.last for r in results if r.last is not None]
    async with postgres_store.session(settings.postgres) as pool:
        return await model_store.store(
            pool, document, source,
            data_from=min(firsts, default=None), data_to=max(lasts, default=None),
            metrics=overall,
            component_metrics={k: v for r in results for k, v in r.metrics.items()},
        )  # fmt: skip


def run(
    settings: Settings,
    source: str,
    since: datetime | None,
    components: list[str] | None,
    config: fitting.FitConfig,
) -> int:
    """Fit on the cluster this process is connected to; returns the stored version."""
    began = time.monotonic()
    sizes = asyncio.run(_sizes(settings, since, components))
    if not sizes:
        raise SystemExit(
            "no attempts in the history"
            + (f" since {since:%Y-%m-%d}" if since else "")
            + (f" on {', '.join(components)}" if components else "")
            + ": nothing to fit"
        )
    cpus = int(ray.cluster_resources().get("CPU", 1))  # type: ignore[no-untyped-call]
    groups = plan(sizes, cpus)
    total = sum(s.attempts for s in sizes)
    logger.info(
        "fitting %d components (%s answers) in %d Ray tasks over %d CPUs",
        len(sizes), f"{total:,}", len(groups), cpus,
    )  # fmt: skip
    pending = {
        fit_group.options(name=f"fit {group_name(names)}").remote(
            settings, since, names, config
        ): names
        for names in groups
    }
    results: list[GroupResult] = []
    done_components = 0
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        names = pending.pop(ready[0])
        result: GroupResult = ray.get(ready[0])
        results.append(result)
        done_components += len(names)
        logger.info(
            "fitted %d/%d components (%s: %s attempts in %.1f s)",
            done_components, len(sizes), ", ".join(names), f"{result.attempts:,}",
            result.seconds,
        )  # fmt: skip
    fits = sorted((f for r in results for f in r.fits), key=lambda f: f.component)
    predicted = np.concatenate([r.predicted for r in results])
    actual = np.concatenate([r.actual for r in results])
    overall: dict[str, Any] = {"held_out_fraction": HELD_OUT, "submission": source}
    if len(actual):
        overall.update(scores_json(score(predicted.astype(np.float64), actual)))
    document = param_file.build(fits, 0, config.default)
    version = asyncio.run(_store(settings, document, source, results, overall))
    fallbacks = sum(f.fallback for f in fits)
    logger.info(
        "held-out students: AUC %s, log-loss %s, RMSE %s over %s answers",
        overall.get("auc"), overall.get("log_loss"), overall.get("rmse"),
        f"{overall.get('answers', 0):,}",
    )  # fmt: skip
    logger.info(
        "stored as model version %d (%d components, %d fallbacks) in %.1f s; "
        "publish it with: learnflow model publish %d",
        version, len(fits), fallbacks, time.monotonic() - began, version,
    )  # fmt: skip
    return version


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m jobs.fit_history")
    parser.add_argument("--source", required=True, help="How the version names its origin.")
    parser.add_argument("--since", type=datetime.fromisoformat, default=None)
    parser.add_argument("--components", default=None, help="Comma-separated; all if omitted.")
    parser.add_argument("--forgets", choices=("never", "always", "auto"), default="auto")
    parser.add_argument("--restarts", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(levelname)s %(message)s"
    )
    settings = Settings()
    ray.init(namespace=settings.ray.namespace, log_to_driver=True)
    components = [c for c in args.components.split(",") if c] if args.components else None
    config = fitting.FitConfig(restarts=args.restarts, seed=args.seed, forgets=args.forgets)
    run(settings, args.source, args.since, components, config)


if __name__ == "__main__":
    main()
