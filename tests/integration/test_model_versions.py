"""Model versions: stored, published to running shards with events flowing, shown by the API."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import ray
import redis

from actors import model_store, registry
from learnflow import keyring, keys, state_codec
from learnflow.bkt import ModelParameters
from learnflow.events import AttemptGraded
from learnflow.param_file import ComponentEntry, ParameterFile, ParamsModel, write
from learnflow.settings import Settings
from learnflow.student_state import StudentState
from serve.grading import catalog
from tests.integration.commands import cli
from tests.integration.pipeline import Stream, make_events, wait_for_lag_zero, wait_until

pytestmark = pytest.mark.usefixtures("ray_cluster")


def learnflow(*args: str) -> str:
    done = cli(*args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def import_version(tmp_path: Path, p_init: float, loops_p_init: float) -> int:
    """Store a parameter set through the CLI; returns its version."""
    document = ParameterFile(
        version=0,
        fitted_at=datetime.now(UTC),
        default=ParamsModel(p_init=p_init, p_learn=0.3, p_guess=0.15, p_slip=0.05),
        components={
            "loops": ComponentEntry(
                p_init=loops_p_init, p_learn=0.25, p_guess=0.1, p_slip=0.08,
                n_students=40, n_attempts=400, log_likelihood=-200.0, fallback=False,
            )
        },
    )  # fmt: skip
    path = tmp_path / f"params-{uuid.uuid4().hex[:6]}.json"
    write(path, document)
    found = re.search(r"as model version (\d+)", learnflow("model", "import", str(path)))
    assert found, "the import names the version it stored"
    return int(found[1])


async def _recorded(settings: Settings, students: list[str]) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(settings.postgres.dsn())
    try:
        rows: list[asyncpg.Record] = await conn.fetch(
            "SELECT student_id, event_id, kafka_partition, kafka_offset, model_version "
            "FROM attempts WHERE student_id = ANY($1::text[]) "
            "ORDER BY kafka_partition, kafka_offset",
            students,
        )
        return rows
    finally:
        await conn.close()


async def _models(settings: Settings, versions: set[int]) -> dict[int, ModelParameters]:
    pool = await asyncpg.create_pool(settings.postgres.dsn(), min_size=1, max_size=1)
    try:
        return {v: await model_store.load(pool, v) for v in versions}
    finally:
        await pool.close()


def assert_one_switch_and_exact_states(
    settings: Settings, events: list[AttemptGraded], old: int, new: int
) -> dict[str, int]:
    """Every event recorded once; per partition the old version, then only the new one; every
    student's saved state is the fold of its events, each with the version it was recorded
    under. Returns each student's last version."""
    students = sorted({e.student_id for e in events})
    rows = asyncio.run(_recorded(settings, students))
    assert len(rows) == len(events)
    assert len({row["event_id"] for row in rows}) == len(events)
    by_partition: dict[int, list[int]] = defaultdict(list)
    for row in rows:
        by_partition[row["kafka_partition"]].append(row["model_version"])
    for partition, versions in by_partition.items():
        assert set(versions) <= {old, new}, partition
        assert versions == sorted(versions, key=lambda v: v == new), (
            f"partition {partition} went back to version {old} after {new}"
        )
    seen = {row["model_version"] for row in rows}
    assert seen == {old, new}, f"the switch happened mid-stream: {seen}"

    models = asyncio.run(_models(settings, seen))
    by_id = {e.event_id: e for e in events}
    expected: dict[str, StudentState] = {}
    last_version: dict[str, int] = {}
    thresholds = settings.mastery.thresholds()
    for row in sorted(rows, key=lambda r: r["kafka_offset"]):
        student = row["student_id"]
        state = expected.get(student) or StudentState(student)
        event = by_id[row["event_id"]]
        model = models[row["model_version"]]
        expected[student] = state.apply(event, model, thresholds, row["kafka_offset"])
        last_version[student] = row["model_version"]
    client = redis.Redis.from_url(settings.redis.url)
    try:
        raw = client.mget([keys.state(s) for s in students])
    finally:
        client.close()
    for student, value in zip(students, raw, strict=True):
        assert value is not None, student
        saved = state_codec.decode(value)
        assert saved.components == expected[student].components, student
        assert saved.model_version == last_version[student], student
    return last_version


def progress(api: httpx.Client, settings: Settings, ring: keyring.KeyRing, sid: str) -> Any:
    token = keyring.mint(ring, settings.auth, sid)[0]
    answer = api.get("/progress", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_publishing_switches_running_shards_between_batches_losing_nothing(
    settings: Settings,
    api: httpx.Client,
    ring: keyring.KeyRing,
    tmp_path: Path,
    back_to_defaults: None,
) -> None:
    learnflow("model", "publish", "0")
    version = import_version(tmp_path, p_init=0.45, loops_p_init=0.6)
    assert re.search(rf"^\W*{version}\W", learnflow("model", "list"), re.MULTILINE)
    events = make_events(students=300, total=6000, seed=31)

    with Stream(settings, events, chunk=300, pause_s=0.3) as stream:
        time.sleep(2.5)
        learnflow("model", "publish", str(version))
    assert stream.error is None, stream.error
    wait_for_lag_zero(settings)

    last = assert_one_switch_and_exact_states(settings, events, 0, version)
    switched = next(s for s, v in last.items() if v == version)
    assert progress(api, settings, ring, switched)["model_version"] == version

    # A student without attempts sees every component of the course at the new prior.
    course = sorted({c for e in catalog.load().values() for c in e.components})
    fresh = f"prior-{uuid.uuid4().hex[:8]}"
    wait_until(lambda: progress(api, settings, ring, fresh)["model_version"] == version, 30)
    shown = progress(api, settings, ring, fresh)["components"]
    assert sorted(shown) == course
    assert {c["level"] for c in shown.values()} == {"not_started"}
    assert shown["loops"]["p_mastered"] == 0.6
    assert all(c["p_mastered"] == 0.45 for name, c in shown.items() if name != "loops")

    # Rolling back is publishing the previous version.
    learnflow("model", "publish", "0")
    wait_until(lambda: progress(api, settings, ring, fresh)["model_version"] == 0, 30)


def host_pids(settings: Settings) -> set[int]:
    shards = [registry.shard(settings, p) for p in range(settings.kafka.partitions)]
    stats = ray.get([s.stats.remote(p) for p, s in enumerate(shards)], timeout=60)
    return {int(item["pid"]) for item in stats}


def test_shards_killed_during_the_switch_come_back_on_the_published_version(
    settings: Settings, tmp_path: Path, back_to_defaults: None
) -> None:
    learnflow("model", "publish", "0")
    version = import_version(tmp_path, p_init=0.35, loops_p_init=0.5)
    events = make_events(students=300, total=6000, seed=32)

    with Stream(settings, events, chunk=300, pause_s=0.3) as stream:
        time.sleep(2.5)
        learnflow("model", "publish", str(version))
        for pid in host_pids(settings):
            os.kill(pid, signal.SIGKILL)
    assert stream.error is None, stream.error
    wait_for_lag_zero(settings)

    last = assert_one_switch_and_exact_states(settings, events, 0, version)
    tail = {e.student_id for e in events[-300:]}
    assert {last[s] for s in tail} == {version}
    restarted = host_pids(settings)
    assert restarted, "the hosts are back"
