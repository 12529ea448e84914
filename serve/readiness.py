"""Readiness probes: is each backing service reachable right now?"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
from confluent_kafka.admin import AdminClient

from actors import postgres_store, redis_store
from learnflow.deadline import Deadline
from learnflow.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


class Readiness:
    """Probes Kafka, Redis and PostgreSQL concurrently within one time budget.

    Holds long-lived clients; call :meth:`close` when the app shuts down.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._redis = redis_store.connect(settings.redis)
        self._kafka = AdminClient({**settings.kafka.client_config("readiness"), "log_level": 0})

    async def check(self) -> list[Check]:
        deadline = Deadline.after(self._settings.serve.readiness_timeout_s)
        probes: dict[str, Callable[[Deadline], Awaitable[str]]] = {
            "kafka": self._kafka_ok,
            "redis": self._redis_ok,
            "postgres": self._postgres_ok,
        }
        results = await asyncio.gather(
            *(self._run(name, probe, deadline) for name, probe in probes.items())
        )
        return list(results)

    async def close(self) -> None:
        await self._redis.aclose()

    async def _run(
        self, name: str, probe: Callable[[Deadline], Awaitable[str]], deadline: Deadline
    ) -> Check:
        try:
            detail = await asyncio.wait_for(probe(deadline), timeout=deadline.remaining())
        except TimeoutError:
            return Check(name, False, f"no answer within {deadline.budget:.1f} s")
        except Exception as err:  # every failure of a probe is reported, none escapes
            logger.info("readiness: %s is down: %s", name, err)
            return Check(name, False, f"{type(err).__name__}: {err}")
        return Check(name, True, detail)

    async def _redis_ok(self, deadline: Deadline) -> str:
        await self._redis.ping()
        return "PONG"

    async def _postgres_ok(self, deadline: Deadline) -> str:
        conn = await asyncpg.connect(
            **postgres_store.connection_args(self._settings.postgres),
            timeout=deadline.remaining(),
        )
        try:
            version = await conn.fetchval("SHOW server_version")
        finally:
            await conn.close()
        return f"server {version}"

    async def _kafka_ok(self, deadline: Deadline) -> str:
        topic = self._settings.kafka.events_topic
        # list_topics blocks in librdkafka: keep it off the event loop.
        metadata = await asyncio.to_thread(
            self._kafka.list_topics, topic=topic, timeout=deadline.remaining()
        )
        if not metadata.brokers:
            raise ConnectionError("no broker in metadata")
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            raise LookupError(f"topic {topic} missing: {getattr(found, 'error', None)}")
        return f"{len(metadata.brokers)} broker(s), {topic} has {len(found.partitions)} partitions"
