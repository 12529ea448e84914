"""Integration fixtures: the real Kafka, Redis, PostgreSQL and Ray that ``learnflow up`` starts.

Nothing here starts or fakes a service: ``make test`` brings the platform up first. If a component
is down, every test fails at once with the status table, rather than being skipped.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator

import asyncpg
import httpx
import pytest
import redis

from ingest import topics
from learnflow import keyring
from learnflow.deadline import Deadline
from learnflow.settings import Settings
from ops.platform import ray as local_ray
from ops.platform import stack
from ops.platform.status import ComponentStatus
from tests.integration.commands import cli

pytestmark = pytest.mark.integration

# Ray reads its token settings when first imported: point it at the local cluster before any
# test module imports it.
local_ray.use_cluster_env(Settings())


@pytest.fixture(scope="session")
def settings() -> Settings:
    loaded = Settings()
    local_ray.use_cluster_env(loaded)
    return loaded


@pytest.fixture(scope="session", autouse=True)
def platform_is_up(settings: Settings) -> list[ComponentStatus]:
    rows = stack.status(settings)
    down = [f"{row.name} ({row.detail or 'not running'})" for row in rows if not row.running]
    if down:
        pytest.fail(
            f"the local platform is not fully up: {', '.join(down)}. "
            "`make test` starts it; for a single test run `make up` first.",
            pytrace=False,
        )
    return rows


@pytest.fixture(scope="session")
def ray_cluster(settings: Settings) -> Iterator[None]:
    """One connection to the running Ray cluster for the whole session."""
    import ray

    ray.init(address=settings.ray.address, namespace=settings.ray.namespace, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def api(settings: Settings) -> Iterator[httpx.Client]:
    """A client of the running API's ``/api/v1``."""
    with httpx.Client(base_url=f"{settings.serve.url}/api/v1", timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def ring(settings: Settings) -> keyring.KeyRing:
    """The local JWT key set, to mint tokens as ``learnflow token`` does."""
    return keyring.load(settings.auth.keys_dir)


@pytest.fixture
def redis_client(settings: Settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.redis.url, socket_timeout=5)
    yield client
    client.close()


@pytest.fixture
def make_topic(settings: Settings) -> Iterator[Callable[[int], str]]:
    """Factory for fresh, uniquely named topics; each is deleted after the test."""
    admin = topics.admin_client(settings.kafka)
    created: list[str] = []

    def make(partitions: int) -> str:
        name = f"test.{uuid.uuid4().hex[:12]}"
        topics.ensure_topics(admin, (topics.TopicSpec(name, partitions, 1),), Deadline.after(30.0))
        created.append(name)
        return name

    yield make
    if created:
        topics.delete_topics(admin, created, Deadline.after(30.0))


@pytest.fixture
def make_database(settings: Settings) -> Iterator[Callable[[], str]]:
    """Factory for fresh, empty PostgreSQL databases; each is dropped after the test."""
    created: list[str] = []

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(settings.postgres.dsn())
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def make() -> str:
        name = f"test_{uuid.uuid4().hex[:12]}"
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
        created.append(name)
        return settings.postgres.dsn(database=name)

    yield make
    for name in created:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def back_to_defaults() -> Iterator[None]:
    """Every other test folds with the built-in defaults: a test that publishes a model
    version publishes version 0 again after."""
    yield
    done = cli("model", "publish", "0")
    assert done.returncode == 0, done.stdout + done.stderr
