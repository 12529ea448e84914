"""The ingest as a Ray Serve deployment: it keeps the shard hosts up and reports their figures."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, cast

from ray import serve as ray_serve
from ray.serve import Deployment

from ingest.keeper import ShardKeeper
from learnflow.settings import Settings

_HANDLER_NAME = "learnflow-worker-stderr"


def log_to_worker_stderr(name: str = "ingest") -> None:
    """Send ``name``'s records straight to this worker's stderr file (``worker-*.err``).

    Serve's throughput-optimized mode buffers a replica's Python logs (a thousand records) and
    keeps them off stderr, so the ingest's warnings (failed batches, rewinds) would show up late
    or, after a crash, never.
    """
    logger = logging.getLogger(name)
    if any(handler.get_name() == _HANDLER_NAME for handler in logger.handlers):
        return
    handler = logging.StreamHandler(open(2, "w", buffering=1, closefd=False))
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


@ray_serve.deployment(name="Ingest", health_check_period_s=2, health_check_timeout_s=10)
class IngestDeployment:
    """Runs a :class:`ShardKeeper` in a thread; Serve replaces the replica if it dies."""

    def __init__(self, settings: Settings, topic: str | None = None) -> None:
        log_to_worker_stderr()
        self._loop = ShardKeeper(settings, topic)
        self._loop.start()

    def check_health(self) -> None:
        if not self._loop.alive():
            raise RuntimeError(f"shard keeper is not running: {self._loop.error!r}")

    def stats(self) -> dict[str, Any]:
        return {**self._loop.stats(), "pid": os.getpid()}

    async def __del__(self) -> None:
        await asyncio.to_thread(self._loop.stop, 60.0)


def build_ingest(settings: Settings, topic: str | None = None) -> Any:
    return (
        cast(Deployment, IngestDeployment)
        .options(
            num_replicas=settings.ingest.replicas,
            ray_actor_options={"num_cpus": settings.ingest.num_cpus},
            graceful_shutdown_timeout_s=60,
        )
        .bind(settings, topic)
    )
