"""Benchmark: the ingest path against a bare Kafka consumer, in one run on this machine.

1. Warms the platform up with 40,000 events through the full path on a topic of their own,
   not timed: right after the platform starts, the broker's JIT compilers and PostgreSQL's
   buffers are cold, and whichever side ran first would pay for warming them up. Then
   pre-produces 200,000 ``attempt.graded`` events (10,000 students, 6 components) to a fresh
   12-partition topic.
2. (a) a bare confluent-kafka consumer reads them as fast as it can: the ceiling here;
   (b) the full path (shard hosts reading their partitions → PostgreSQL + Redis) from fresh
   hosts: events consumed, applied and checkpointed per second, from the hosts' first read
   to the last checkpoint (progress read from the partitions' Redis checkpoints, the last
   step of a checkpoint), as the peer is timed from its first event to its last commit;
   (c) the peer: Quix Streams 3.28.1 on the same events, keeping each student's BKT mastery
   in its RocksDB state with changelog topics, at-least-once (``benchmarks/quix_peer.py``, in
   its own virtualenv ``.run/quix-venv`` that ``make bench-ingest`` creates).
3. Once PostgreSQL's autovacuum and Redis's AOF rewrite have digested that burst, and after a
   warm-up of at least 10 s that goes on while the brokers' JIT compilers keep working (a
   broker still compiles the steady load's code paths for tens of seconds, at up to twice its
   settled CPU): produce-to-checkpointed latency at a steady 1,000 events/s for 15 s.
4. Floors measured in the same run: the CPU of a Ray call to an actor that does nothing (in
   the actor and in the caller) and of inserting one bare attempt row into PostgreSQL, set
   against what the full path and the steady run used.
5. A shard holding 100,000 students is SIGKILLed: time until it has applied the next batch.

For (b), (c) and 3 it also prints the CPU each component used (from /proc), per event.

Runs against the platform of ``make up`` in its own topic, consumer group and actor namespace,
and removes them afterwards. Run with ``make bench-ingest``.
"""

from __future__ import annotations

from learnflow.settings import Settings
from ops.platform import ray as local_ray

# Ray reads its token settings when first imported: point it at the local cluster first.
local_ray.use_cluster_env(Settings())

import asyncio
import json
import os
import resource
import signal
import subprocess
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import ray
import redis
from confluent_kafka import Consumer, Producer, TopicPartition

from actors import registry
from actors.host import hosts
from actors.postgres_store import ATTEMPT_COLUMNS
from ingest import topics
from ingest.keeper import ShardKeeper
from ingest.producer import producer_config
from learnflow import keys, synthetic
from learnflow.deadline import Deadline

EVENTS, STUDENTS, RESIDENTS = 200_000, 10_000, 100_000
WARM_UP_EVENTS = 40_000
"""Through the full path before either side is timed: in the first run after ``make up`` the
full path, timed first, ran at 0.98-0.99x the peer, in the runs after it at 1.13-1.20x."""
STEADY_RATE, STEADY_SECONDS, WARM_UP_SECONDS = 1000, 15, 10
WARM_UP_MAX_SECONDS = 90
"""The warm-up goes on past ``WARM_UP_SECONDS`` while the brokers' JIT compilers keep
working (at most this long): a broker compiling the steady load's code paths spends up to
twice its settled CPU, which is start-up, not the steady state."""
COMPILING_S_PER_S = 0.02
"""Compiler CPU seconds per second below which the brokers count as compiled."""


def say(text: str) -> None:
    print(text, flush=True)  # noqa: T201 - a benchmark prints its figures


_COMPONENTS = (
    ("Kafka broker", "kafka.Kafka"),
    ("PostgreSQL", "postgres"),
    ("Redis", "redis-server"),
    ("Redis", "redis-aof-rewrite"),  # the child that rewrites its log
    ("shard hosts (every namespace)", "ray::ShardHost"),
)

_QUIX_PYTHON = Path(".run/quix-venv/bin/python")


def process_cpu_s(pid: int, task: int | None = None) -> float:
    """User + system CPU seconds a process (or one of its threads) has used so far (from
    /proc)."""
    path = f"/proc/{pid}/stat" if task is None else f"/proc/{pid}/task/{task}/stat"
    with open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def processes() -> dict[int, str]:
    """Every running process's command line, by pid."""
    found: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                found[int(entry)] = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile
            continue
    return found


class CpuMeter:
    """CPU seconds per component between two readings of /proc (processes that started in
    between count whole; the benchmark process is the producers)."""

    def __init__(self) -> None:
        self._start = self._read()

    @staticmethod
    def _read() -> dict[int, tuple[str, float]]:
        found: dict[int, tuple[str, float]] = {}
        for pid, command in processes().items():
            try:
                found[pid] = (command, process_cpu_s(pid))
            except OSError:  # gone meanwhile
                continue
        return found

    def seconds(self) -> tuple[dict[str, float], float]:
        """(CPU seconds by component, their total) since this meter was made."""
        by_component: dict[str, float] = defaultdict(float)
        for pid, (command, now) in self._read().items():
            used = now - self._start.get(pid, (command, 0.0))[1]
            if pid == os.getpid():
                label = "this process (producers)"
            else:
                label = next((name for name, part in _COMPONENTS if part in command), "the rest")
            by_component[label] += used
        return dict(by_component), sum(by_component.values())


def say_cpu(reading: tuple[dict[str, float], float], per: str, count: float) -> None:
    used, total = reading
    for label, seconds in sorted(used.items(), key=lambda item: -item[1]):
        say(f"    {label:<40}{seconds:>7.1f} s CPU  {seconds / count * 1e6:>7.0f} µs per {per}")
    say(f"    {'total':<40}{total:>7.1f} s CPU  {total / count * 1e6:>7.0f} µs per {per}")


def bench_settings(base: Settings, run: str) -> Settings:
    return base.model_copy(
        update={
            "kafka": base.kafka.model_copy(update={"events_topic": f"bench.events.{run}"}),
            "ingest": base.ingest.model_copy(update={"group_id": f"bench-ingest-{run}"}),
            "ray": base.ray.model_copy(update={"namespace": f"learnflow-bench-{run}"}),
        }
    )


def make_values(run: str, count: int, students: int, seed: int) -> list[tuple[bytes, bytes]]:
    events = synthetic.attempt_events(
        students, count, seed, prefix=f"bench-{run}", spacing=timedelta(seconds=1)
    )
    return [(event.key, event.to_json()) for event in events]


def produce(
    settings: Settings, values: list[tuple[bytes, bytes]], partition: int | None = None
) -> None:
    producer = Producer(producer_config(settings.kafka, **{"linger.ms": 20}))
    for key, value in values:
        while True:
            try:
                if partition is None:
                    producer.produce(settings.kafka.events_topic, key=key, value=value)
                else:
                    producer.produce(
                        settings.kafka.events_topic, key=key, value=value, partition=partition
                    )
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(120):
        raise RuntimeError("pre-production did not complete")


def bare_consumer_rate(settings: Settings, total: int) -> float:
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": f"bench-bare-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
            "fetch.max.bytes": 16 * 1024 * 1024,
        }
    )
    consumer.assign(
        [
            TopicPartition(settings.kafka.events_topic, p, 0)
            for p in range(settings.kafka.partitions)
        ]
    )
    seen = 0
    began = time.perf_counter()
    deadline = Deadline.after(300)
    while seen < total and not deadline.expired():
        seen += sum(1 for m in consumer.consume(num_messages=10_000, timeout=1.0) if not m.error())
    elapsed = time.perf_counter() - began
    consumer.close()
    return seen / elapsed


def checkpointed_total(client: redis.Redis, settings: Settings) -> int:
    """Events at or below every partition's Redis checkpoint (the last write of a checkpoint)."""
    names = [
        keys.partition_checkpoint(settings.kafka.events_topic, p)
        for p in range(settings.kafka.partitions)
    ]
    return sum(int(v) + 1 for v in client.mget(names) if v is not None)


def checkpoints_written(settings: Settings) -> int:
    """Checkpoints the hosts have written so far (one Ray call per host)."""
    handles = registry.ensure_shards(settings)
    return sum(f["checkpoints"] for f in ray.get([h.figures.remote() for h in handles], timeout=60))


def full_path_rate(settings: Settings, total: int, driver: ShardKeeper) -> tuple[float, float]:
    """(rate from the hosts' first read to the last checkpoint, as the peer is timed from its
    first event; rate from the start of fresh shards)."""
    client = redis.Redis.from_url(settings.redis.url)
    began = time.time()
    driver.start()
    handles = registry.ensure_shards(settings)  # the hosts start reading as they are made
    deadline = Deadline.after(900)
    done = 0
    while done < total and not deadline.expired():
        time.sleep(0.05)
        done = checkpointed_total(client, settings)
    finished = time.time()
    client.close()
    if done < total:
        raise RuntimeError(f"full path committed only {done} of {total} events")
    figures = ray.get([h.figures.remote() for h in handles], timeout=60)
    first_read = min(f["first_read_at"] for f in figures if f["first_read_at"] is not None)
    return total / (finished - first_read), total / (finished - began)


def quix_rate(settings: Settings, run: str) -> tuple[float, float]:
    """Quix Streams' events/s on the same stateful job (from its first event to its last
    checkpoint committed), in its own process and virtualenv; and that process's CPU seconds."""
    if not _QUIX_PYTHON.exists():
        raise RuntimeError(f"{_QUIX_PYTHON} is missing: run the benchmark with make bench-ingest")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [
            str(_QUIX_PYTHON),
            "benchmarks/quix_peer.py",
            f"--broker={settings.kafka.bootstrap_servers}",
            f"--topic={settings.kafka.events_topic}",
            f"--group=bench-quix-{run}",
            f"--events={EVENTS}",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"the Quix Streams peer failed:\n{done.stderr[-3000:]}")
    cpu_s = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return float(json.loads(done.stdout.strip().splitlines()[-1])["rate"]), cpu_s


async def _quiesce(settings: Settings, deadline: Deadline) -> None:
    client = redis.Redis.from_url(settings.redis.url)
    conn = await asyncpg.connect(settings.postgres.dsn())
    try:
        while not deadline.expired():
            persistence = client.info("persistence")
            rewriting = persistence.get("aof_rewrite_in_progress") or persistence.get(
                "rdb_bgsave_in_progress"
            )
            vacuuming = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'"
            )
            if not rewriting and not vacuuming:
                return
            await asyncio.sleep(0.5)
    finally:
        await conn.close()
        client.close()


def rewrite_redis_log(settings: Settings, deadline: Deadline) -> float:
    """Have Redis rewrite its log now and wait for it: what earlier runs and tests appended
    would otherwise be rewritten (a fork writing the whole data set) in the middle of a
    measurement, counted as the full path's Redis CPU. Seconds it took."""
    began = time.monotonic()
    client = redis.Redis.from_url(settings.redis.url)
    try:
        while client.info("persistence").get("aof_rewrite_in_progress"):
            time.sleep(0.2)
        client.bgrewriteaof()
        while not deadline.expired():
            persistence = client.info("persistence")
            if not persistence.get("aof_rewrite_in_progress") and not persistence.get(
                "aof_rewrite_scheduled"
            ):
                break
            time.sleep(0.2)
    finally:
        client.close()
    return time.monotonic() - began


def quiesce(settings: Settings, deadline: Deadline) -> float:
    """Wait until the burst before has been digested: no PostgreSQL autovacuum worker and no
    Redis AOF rewrite running. Steady-state latency is measured on a settled platform."""
    began = time.monotonic()
    asyncio.run(_quiesce(settings, deadline))
    return time.monotonic() - began


def produce_steadily(
    settings: Settings, producer: Producer, values: list[tuple[bytes, bytes]], rate: int
) -> None:
    began = time.monotonic()
    for n, (key, value) in enumerate(values):
        target = began + n / rate
        delay = target - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        producer.produce(settings.kafka.events_topic, key=key, value=value)
        producer.poll(0)
    producer.flush(60)


def kafka_pids() -> list[int]:
    """The pids of the running Kafka nodes."""
    return [pid for pid, command in processes().items() if "kafka.Kafka" in command]


def broker_compiler_cpu_s(pids: list[int]) -> float:
    """CPU seconds the brokers' JIT compiler threads have used so far."""
    total = 0.0
    for pid in pids:
        try:
            tasks = [int(task) for task in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{pid}/task/{task}/comm") as f:
                    if f.read().startswith(("C1 Compiler", "C2 Compiler")):
                        total += process_cpu_s(pid, task)
            except OSError:  # gone meanwhile
                continue
    return total


def warm_up(
    settings: Settings, producer: Producer, run: str, kafka: list[int]
) -> tuple[float, float]:
    """Produce at the steady rate for ``WARM_UP_SECONDS``, then on until the brokers' JIT
    compilers went quiet for two seconds (at most ``WARM_UP_MAX_SECONDS``). (seconds it took,
    compiler CPU per second in its last two seconds)."""
    values = make_values(f"{run}-warm-up", STEADY_RATE * WARM_UP_MAX_SECONDS, 2000, seed=2)
    compiled = [broker_compiler_cpu_s(kafka)]
    seconds = 0
    while seconds < WARM_UP_MAX_SECONDS:
        chunk = values[seconds * STEADY_RATE : (seconds + 1) * STEADY_RATE]
        produce_steadily(settings, producer, chunk, STEADY_RATE)
        seconds += 1
        compiled.append(broker_compiler_cpu_s(kafka))
        recent = (compiled[-1] - compiled[-3]) / 2 if len(compiled) >= 3 else float("inf")
        if seconds >= WARM_UP_SECONDS and recent < COMPILING_S_PER_S:
            break
    return float(seconds), recent


@dataclass(frozen=True)
class SteadyRun:
    latencies_ms: np.ndarray
    cpu: tuple[dict[str, float], float]
    """CPU by component over the run (not the warm-up)."""
    checkpoints_per_s: float
    """Checkpoints the hosts wrote per second over the run."""
    warm_up_s: float
    compiling: tuple[float, float]
    """The brokers' JIT compiler CPU per second at the end of the warm-up and over the run."""


def steady_latency(settings: Settings, run: str) -> SteadyRun:
    """Produce-to-checkpointed latencies (ms) at ``STEADY_RATE``, after a warm-up."""
    shards = registry.ensure_shards(settings)
    # One producer for the warm-up and the run: a record's latency starts when produce() is
    # called, so a new producer's connection setup would count as latency of the first ones.
    producer = Producer(producer_config(settings.kafka))
    kafka_nodes = kafka_pids()
    warm_up_s, compiling = warm_up(settings, producer, run, kafka_nodes)
    time.sleep(1.0)
    ray.get([s.latency_samples.remote(clear=True) for s in shards])
    values = make_values(f"{run}-steady", STEADY_RATE * STEADY_SECONDS, 2000, seed=3)
    meter, batches, began = CpuMeter(), checkpoints_written(settings), time.monotonic()
    compiled = broker_compiler_cpu_s(kafka_nodes)
    produce_steadily(settings, producer, values, STEADY_RATE)
    time.sleep(2.0)
    cpu = meter.seconds()
    compiled = (broker_compiler_cpu_s(kafka_nodes) - compiled) / (time.monotonic() - began)
    checkpoints_per_s = (checkpoints_written(settings) - batches) / (time.monotonic() - began)
    latencies = np.array(
        [
            x
            for chunk in ray.get([s.latency_samples.remote(clear=True) for s in shards])
            for x in chunk
        ]
    )
    return SteadyRun(latencies, cpu, checkpoints_per_s, warm_up_s, (compiling, compiled))


def recovery_time(settings: Settings, run: str) -> tuple[float, int]:
    partition = 0
    produce(settings, make_values(f"{run}-resident", RESIDENTS, RESIDENTS, seed=4), partition)
    shard = registry.shard(settings, partition)
    deadline = Deadline.after(600)
    while (
        ray.get(shard.stats.remote(partition))["resident_students"] < RESIDENTS
        and not deadline.expired()
    ):
        time.sleep(0.2)
    stats = ray.get(shard.stats.remote(partition))
    producer = Producer(producer_config(settings.kafka))
    # Connected and with its producer id before the kill: what is timed is the shard's recovery.
    warm_key, warm_value = make_values(f"{run}-warm", 1, 1, seed=6)[0]
    producer.produce(settings.kafka.events_topic, key=warm_key, value=warm_value, partition=1)
    producer.flush(30)
    key, value = make_values(f"{run}-resident", 1, 1, seed=5)[0]
    offsets: list[int] = []
    os.kill(stats["pid"], signal.SIGKILL)
    began = time.monotonic()
    producer.produce(
        settings.kafka.events_topic, key=key, value=value, partition=partition,
        on_delivery=lambda err, msg: offsets.append(msg.offset() or 0),
    )  # fmt: skip
    producer.flush(30)
    while not deadline.expired():
        try:
            view = ray.get(
                registry.shard(settings, partition).get.remote(partition, "-", offsets[0], 1.0),
                timeout=5,
            )
            if view["caught_up"]:
                break
        except ray.exceptions.RayError:
            time.sleep(0.02)
    return time.monotonic() - began, int(stats["resident_students"])


async def _drop_history(settings: Settings, run: str) -> None:
    conn = await asyncpg.connect(settings.postgres.dsn())
    try:
        pattern = f"bench-{run}-%"
        await conn.execute("DELETE FROM attempts WHERE student_id LIKE $1", pattern)
        await conn.execute(
            "DELETE FROM partition_checkpoints WHERE topic = $1", settings.kafka.events_topic
        )
    finally:
        await conn.close()


def bench_run(base: Settings, run: str) -> tuple[Settings, ShardKeeper]:
    """A run's settings, its events topic made, and the keeper of its shard hosts."""
    settings = bench_settings(base, run)
    topics.ensure_topics(
        topics.admin_client(settings.kafka),
        topics.learnflow_topics(settings.kafka)[:1],
        Deadline.after(60),
    )
    return settings, ShardKeeper(settings)


def warm_platform(base: Settings, run: str) -> float:
    """Run ``WARM_UP_EVENTS`` through the full path on a topic, namespace and students of
    their own, removed afterwards; return their rate."""
    settings, driver = bench_run(base, run)
    try:
        produce(settings, make_values(run, WARM_UP_EVENTS, STUDENTS, seed=2))
        rate, _ = full_path_rate(settings, WARM_UP_EVENTS, driver)
    finally:
        clean_up(settings, run, driver)
    return rate


def clean_up(settings: Settings, run: str, driver: ShardKeeper) -> None:
    driver.stop()
    registry.kill_shards(settings)
    admin = topics.admin_client(settings.kafka)
    changelogs = [
        name for name in admin.list_topics(timeout=30).topics if f"bench-quix-{run}" in name
    ]
    topics.delete_topics(admin, [settings.kafka.events_topic, *changelogs], Deadline.after(60))
    asyncio.run(_drop_history(settings, run))
    client = redis.Redis.from_url(settings.redis.url)
    for key in client.scan_iter(match=f"student:{{bench-{run}-*", count=5000):
        client.unlink(key)
    for key in client.scan_iter(match=f"partition:{{{settings.kafka.events_topic}:*", count=100):
        client.unlink(key)
    client.close()


class _Echo:
    """An actor method that does nothing with a shard call's arguments: the Ray call floor."""

    async def echo(self, records: list[tuple[int, bytes, bytes, int]], previous: int) -> int:
        return records[-1][0]

    def pid(self) -> int:
        return os.getpid()


def ray_call_floor(settings: Settings, calls: int = 2000) -> tuple[float, float]:
    """CPU µs (in the actor, in the caller) of one call to an actor that does nothing, with
    the arguments of a 4-event shard call."""
    actor: Any = ray.remote(_Echo).options(namespace=settings.ray.namespace, num_cpus=0).remote()
    try:
        pid = ray.get(actor.pid.remote(), timeout=60)
        records = [(n, b"student-0001", b"x" * 300, 0) for n in range(4)]
        for _ in range(200):
            ray.get(actor.echo.remote(records, 0))
        actor_began, caller_began = process_cpu_s(pid), time.process_time()
        for _ in range(calls):
            ray.get(actor.echo.remote(records, 0))
        actor_s = process_cpu_s(pid) - actor_began
        caller_s = time.process_time() - caller_began
    finally:
        ray.kill(actor)
    return actor_s / calls * 1e6, caller_s / calls * 1e6


async def _postgres_row_floor(settings: Settings, rows: int) -> float:
    conn = await asyncpg.connect(settings.postgres.dsn())
    try:
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        now = datetime.now(UTC)
        transaction = conn.transaction()
        await transaction.start()
        try:
            began = process_cpu_s(pid)
            for start in range(0, rows, 2000):  # copied in, as a checkpoint writes them
                await conn.copy_records_to_table(
                    "attempts",
                    columns=ATTEMPT_COLUMNS,
                    records=[
                        (uuid.uuid4(), f"floor-{n % 1000}", "floor", ["loops"], True, 1.0, 1, 1,
                         5, now, -1, n, 0, [0.5])
                        for n in range(start, start + 2000)
                    ],
                )  # fmt: skip
            return (process_cpu_s(pid) - began) / rows * 1e6
        finally:
            await transaction.rollback()  # nothing of the measurement is kept
    finally:
        await conn.close()


def postgres_row_floor(settings: Settings, rows: int = 20_000) -> float:
    """PostgreSQL CPU µs to insert one attempt row (nothing kept)."""
    return asyncio.run(_postgres_row_floor(settings, rows))


def main() -> None:
    base = Settings()
    run = uuid.uuid4().hex[:6]
    local_ray.connect(bench_settings(base, run))
    settings, driver = bench_run(base, run)
    try:
        say(f"warming the platform up: {WARM_UP_EVENTS:,} events through the full path …")
        say(f"  {warm_platform(base, f'{run}w'):,.0f} events/s (not timed against the peer)")
        say(
            f"pre-producing {EVENTS:,} events "
            f"({STUDENTS:,} students, {len(synthetic.COMPONENTS)} components) …"
        )
        values = make_values(run, EVENTS, STUDENTS, seed=1)
        began = time.perf_counter()
        produce(settings, values)
        say(f"  produced at {EVENTS / (time.perf_counter() - began):,.0f} events/s")

        bare = bare_consumer_rate(settings, EVENTS)
        rewrite_s = rewrite_redis_log(settings, Deadline.after(300))
        settled = quiesce(settings, Deadline.after(180))
        say(
            f"  Redis rewrote its log in {rewrite_s:.1f} s and autovacuum finished in "
            f"{settled:.1f} s before the full path runs"
        )
        meter = CpuMeter()
        steady, overall = full_path_rate(settings, EVENTS, driver)
        full_path_cpu = meter.seconds()
        # The peer gets the same quiet machine: no autovacuum of the rows the full path wrote,
        # no log rewrite Redis may have started meanwhile.
        quiet_s = quiesce(settings, Deadline.after(180))
        meter = CpuMeter()
        quix, quix_process_s = quix_rate(settings, run)
        used, total = meter.seconds()  # the peer has exited: its CPU comes from its rusage
        quix_cpu = ({**used, "Quix Streams peer": quix_process_s}, total + quix_process_s)
        say("")
        say(f"{'path':<58}{'events/s':>12}")
        say(f"{'(a) bare confluent-kafka consumer (ceiling)':<58}{bare:>12,.0f}")
        say(f"{'(b) full path: consume, apply, checkpoint PG + Redis':<58}{steady:>12,.0f}")
        say(f"{'    (b) including the shards start and first batches':<58}{overall:>12,.0f}")
        say(f"{'(c) Quix Streams 3.28.1, BKT in RocksDB + changelogs':<58}{quix:>12,.0f}")
        say(f"    ratio (b)/(a): {steady / bare:.3f}   ratio (b)/(c): {steady / quix:.3f}")
        say(f"    (autovacuum and Redis' log rewrite took {quiet_s:.1f} s to finish before (c))")
        say("  CPU of the full path, by component (2 cores):")
        say_cpu(full_path_cpu, "event", EVENTS)
        say("  CPU of the Quix Streams run (its start included), by component:")
        say_cpu(quix_cpu, "event", EVENTS)

        settled = quiesce(settings, Deadline.after(180))
        say(
            f"\nsteady {STEADY_RATE:,} events/s for {STEADY_SECONDS} s (after {settled:.1f} s for "
            f"autovacuum and AOF rewrites to finish, and a warm-up of at least "
            f"{WARM_UP_SECONDS} s that lasts until the brokers' JIT compilers are done) …"
        )
        steady_run = steady_latency(settings, run)
        say(
            f"  warm-up: {steady_run.warm_up_s:.0f} s; the brokers' JIT compilers used "
            f"{steady_run.compiling[0]:.3f} cores at its end and {steady_run.compiling[1]:.3f} "
            "over the run"
        )
        samples, steady_calls = steady_run.latencies_ms, steady_run.checkpoints_per_s
        p50, p90, p99 = (float(x) for x in np.percentile(samples, [50, 90, 99]))
        say(
            f"  produce-to-checkpointed latency over {len(samples):,} events: "
            f"p50 {p50:.1f} ms, p90 {p90:.1f} ms, p99 {p99:.1f} ms, max {samples.max():.1f} ms"
        )
        say("  CPU over the run (2 s to finish included), by component (2 cores):")
        say_cpu(steady_run.cpu, "event", STEADY_RATE * STEADY_SECONDS)
        say(
            f"  checkpoints: {steady_calls:.0f}/s, {STEADY_RATE / steady_calls:.1f} events each "
            f"(one per read of a host, {hosts(settings)} hosts; no Ray call between Kafka and "
            "the fold)"
        )

        say("\nfloors on this machine, measured now:")
        actor_us, caller_us = ray_call_floor(settings)
        say(
            f"  a Ray call to an actor that does nothing: {actor_us:.0f} µs CPU in the actor + "
            f"{caller_us:.0f} µs in the caller; a call per checkpoint at the steady run's rate "
            f"would be {steady_calls * (actor_us + caller_us) / 1e6:.2f} of the 2 cores"
        )
        row_us = postgres_row_floor(settings)
        full_us = full_path_cpu[1] / EVENTS * 1e6
        postgres_us = full_path_cpu[0].get("PostgreSQL", 0.0) / EVENTS * 1e6
        say(
            f"  PostgreSQL, one bare attempt row copied in: {row_us:.1f} µs CPU "
            f"(per event in the full path: {postgres_us:.0f} µs)"
        )
        say(
            f"  the full path used {full_us:.0f} µs of CPU per event: 2 cores allow at most "
            f"{2e6 / full_us:,.0f} events/s (measured {steady:,.0f}/s)"
        )

        say(f"\nloading {RESIDENTS:,} students into one shard, then SIGKILL …")
        recovered, resident = recovery_time(settings, run)
        say(
            f"  shard with {resident:,} resident students applied the next batch "
            f"{recovered:.2f} s after SIGKILL"
        )

        say("")
        for label, ok, figure in [
            (
                "full path >= 1.0x Quix Streams' stateful rate",
                steady >= quix,
                f"{steady:,.0f}/s against {quix:,.0f}/s, {steady / quix:.2f}x",
            ),
            ("p99 produce-to-applied <= 50 ms", p99 <= 50, f"{p99:.1f} ms"),
            ("recovery <= 2 s", recovered <= 2.0, f"{recovered:.2f} s"),
        ]:
            say(f"  [{'met' if ok else 'MISSED'}] {label}: {figure}")
    finally:
        clean_up(settings, run, driver)
        ray.shutdown()


if __name__ == "__main__":
    main()
