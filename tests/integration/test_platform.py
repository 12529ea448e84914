"""The local platform's services behave as the design promises."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import asyncpg
import pytest
import redis

from ingest import topics
from ingest.exceptions import TopicMismatchError
from learnflow import migrations
from learnflow.deadline import Deadline
from learnflow.settings import Settings
from ops.platform import redis as local_redis


def get_json(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - local URL
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_redis_persists_with_an_append_only_file(redis_client: redis.Redis) -> None:
    config = redis_client.config_get("append*")

    assert config["appendonly"] == "yes"
    assert config["appendfsync"] == "everysec"


async def _schema(dsn: str) -> list[tuple[str, str, str]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public' ORDER BY 1, 2"
        )
        return [(r["table_name"], r["column_name"], r["data_type"]) for r in rows]
    finally:
        await conn.close()


async def _migration_rows(dsn: str) -> list[int]:
    conn = await asyncpg.connect(dsn)
    try:
        return [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")]
    finally:
        await conn.close()


def test_migrations_apply_exactly_once(make_database: Callable[[], str]) -> None:
    dsn = make_database()
    shipped = migrations.discover()

    first = asyncio.run(migrations.apply(dsn))
    schema_after_first = asyncio.run(_schema(dsn))
    second = asyncio.run(migrations.apply(dsn))

    assert [m.version for m in first] == [m.version for m in shipped]
    assert second == []
    assert asyncio.run(_schema(dsn)) == schema_after_first
    assert sorted(asyncio.run(_migration_rows(dsn))) == [m.version for m in shipped]
    assert {"attempts", "weekly_mastery", "model_parameters"} <= {
        t for t, _, _ in schema_after_first
    }


def test_concurrent_migrate_runs_apply_once(make_database: Callable[[], str]) -> None:
    dsn = make_database()

    async def race() -> list[list[migrations.Migration]]:
        return list(await asyncio.gather(*(migrations.apply(dsn) for _ in range(3))))

    results = asyncio.run(race())

    assert sum(len(applied) for applied in results) == len(migrations.discover())


def test_edited_migration_is_refused(make_database: Callable[[], str]) -> None:
    dsn = make_database()
    shipped = migrations.discover()
    asyncio.run(migrations.apply(dsn, shipped))
    edited = [
        migrations.Migration(m.version, m.name, m.sql + "\n-- edited") if m.version == 1 else m
        for m in shipped
    ]

    with pytest.raises(migrations.MigrationError, match="changed after it was applied"):
        asyncio.run(migrations.apply(dsn, edited))


def test_topic_with_the_wrong_partition_count_is_an_error(
    settings: Settings, make_topic: Callable[[int], str]
) -> None:
    name = make_topic(3)
    admin = topics.admin_client(settings.kafka)

    with pytest.raises(TopicMismatchError, match=f"{name} has 3 partitions, configured 12"):
        topics.ensure_topics(admin, (topics.TopicSpec(name, 12, 1),), Deadline.after(30.0))


def test_learnflow_topics_exist_with_their_layout(settings: Settings) -> None:
    states = topics.ensure_topics(
        topics.admin_client(settings.kafka),
        topics.learnflow_topics(settings.kafka),
        Deadline.after(30.0),
    )

    assert {(s.name, s.partitions, s.created) for s in states} == {
        ("learning.events", 12, False),
        ("learning.events.dlq", settings.kafka.dlq_partitions, False),
    }


def test_readyz_names_redis_while_it_is_down(settings: Settings) -> None:
    url = f"{settings.serve.url}/readyz"
    assert get_json(url)[0] == 200

    local_redis.stop(settings, Deadline.after(30.0))
    try:
        code, body = get_json(url)
        assert code == 503
        assert body["down"] == ["redis"]
        assert "redis" in str(body["reason"])
    finally:
        local_redis.start(settings, Deadline.after(60.0))

    deadline = Deadline.after(30.0)
    while get_json(url)[0] != 200 and not deadline.expired():
        time.sleep(0.2)
    code, body = get_json(url)
    assert code == 200, body
    assert body["down"] == []


def test_status_command_reports_every_component_running() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ops", "status"], capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stdout + result.stderr
    for component in ("redis", "postgres", "kafka", "ray", "serve"):
        assert component in result.stdout
