"""The ingest as a Ray Serve deployment: each replica is one consumer of the group."""

from __future__ import annotations

import asyncio
import os
from typing import Any, cast

from ray import serve as ray_serve
from ray.serve import Deployment

from ingest.consumer import IngestLoop
from learnflow.settings import Settings


@ray_serve.deployment(name="Ingest", health_check_period_s=2, health_check_timeout_s=10)
class IngestDeployment:
    """Runs an :class:`IngestLoop` in a thread; Serve replaces the replica if the loop dies."""

    def __init__(self, settings: Settings, topic: str | None = None) -> None:
        self._loop = IngestLoop(settings, topic)
        self._loop.start()

    def check_health(self) -> None:
        if not self._loop.alive():
            raise RuntimeError(f"ingest loop is not running: {self._loop.error!r}")

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
