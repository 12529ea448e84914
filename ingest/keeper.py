"""The ingest: the shard hosts read their partitions themselves; this keeps every host up
(creating any that is missing) and gathers their figures."""

from __future__ import annotations

import logging
import threading
from typing import Any

import ray
from ray.exceptions import RayError

from actors import registry
from learnflow.settings import Settings

logger = logging.getLogger(__name__)

_LOOK_EVERY_S = 5.0
_LOOK_AGAIN_S = 1.0
"""After a failed look: a host ended with its node is made anew on a live one this soon."""


class ShardKeeper:
    """Keeps the hosts up from a thread: start, stop, alive, stats."""

    def __init__(self, settings: Settings, topic: str | None = None) -> None:
        self._settings = settings
        self.topic = topic or settings.kafka.events_topic
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="learnflow-keeper", daemon=True)
        self._figures: list[dict[str, Any]] = []
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout_s)

    def alive(self) -> bool:
        return self._thread.is_alive() and self.error is None

    def stats(self) -> dict[str, Any]:
        figures = list(self._figures)
        return {
            "topic": self.topic,
            "assigned": [f["partition"] for f in figures],
            "lag": {f["partition"]: f["lag"] for f in figures if f.get("lag") is not None},
            "committed": {f["partition"]: f["checkpointed_offset"] + 1 for f in figures},
            "feeding": sorted(f["partition"] for f in figures if f.get("feeding")),
            "alive": self.alive(),
            "error": None if self.error is None else repr(self.error),
            "batches": sum(f["batches"] for f in figures),
            "applied": sum(f["applied"] for f in figures),
            "dead_lettered": sum(f["dead_lettered"] for f in figures),
        }

    def _run(self) -> None:
        try:
            handles: list[Any] = []
            while not self._stop.is_set():
                try:
                    if not handles:  # (re)made only when a look failed: a lookup per shard
                        handles = registry.ensure_shards(self._settings, self.topic)
                    self._figures = [
                        figures
                        for host in ray.get([h.all_stats.remote() for h in handles], timeout=60)
                        for figures in host
                    ]
                except (RayError, TimeoutError) as err:  # a host restarting or ended
                    logger.warning("%s: shards not all up yet: %r", self.topic, err)
                    handles = []
                self._stop.wait(_LOOK_EVERY_S if handles else _LOOK_AGAIN_S)
        except BaseException as err:
            self.error = err
            logger.exception("shard keeper on %s died", self.topic)
