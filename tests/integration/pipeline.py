"""Helpers for end-to-end checks of the ingest path against the pure fold."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
import ray
import redis
from confluent_kafka import Consumer, TopicPartition

from actors import registry
from ingest.producer import Delivery, EventProducer
from learnflow import keys, state_codec, synthetic
from learnflow.batch_fold import applied_event, daily_values
from learnflow.batches import AppliedEvent
from learnflow.bkt import ModelParameters
from learnflow.deadline import Deadline
from learnflow.events import AttemptGraded
from learnflow.levels import LevelThresholds
from learnflow.model_loading import load_model
from learnflow.settings import Settings
from learnflow.student_state import StudentState, fold
from learnflow.weekly import weekly_aggregates


def make_events(
    students: int, total: int, seed: int, prefix: str | None = None
) -> list[AttemptGraded]:
    """Events of fresh students (a new id prefix per call unless one is given)."""
    return synthetic.attempt_events(students, total, seed, prefix or uuid.uuid4().hex[:8])


def publish(settings: Settings, events: Sequence[AttemptGraded]) -> list[Delivery]:
    producer = EventProducer(settings.kafka)
    return producer.publish_many(events, Deadline.after(120.0))


def wait_for_lag_zero(settings: Settings, timeout_s: float = 180.0) -> None:
    """Until the ingest group has committed everything on every partition of the topic."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": settings.ingest.group_id,
        }
    )
    partitions = [
        TopicPartition(settings.kafka.events_topic, p) for p in range(settings.kafka.partitions)
    ]
    deadline = Deadline.after(timeout_s)
    lag: dict[int, int] = {}
    try:
        while not deadline.expired():
            committed = consumer.committed(partitions, timeout=10)
            lag = {}
            for tp in committed:
                _, high = consumer.get_watermark_offsets(tp, timeout=10)
                lag[tp.partition] = high - max(tp.offset, 0)
            if not any(lag.values()):
                return
            time.sleep(0.25)
    finally:
        consumer.close()
    raise AssertionError(f"ingest lag did not reach 0 within {timeout_s} s: {lag}")


def assert_matches_fold(
    settings: Settings, events: Sequence[AttemptGraded], deliveries: Sequence[Delivery]
) -> None:
    """Shard memory, Redis and PostgreSQL all equal the fold of each student's events."""
    model: ModelParameters = load_model(settings.mastery)
    thresholds = settings.mastery.thresholds()
    by_student: dict[str, list[tuple[int, AttemptGraded]]] = defaultdict(list)
    partition_of: dict[str, int] = {}
    for event, delivery in zip(events, deliveries, strict=True):
        by_student[event.student_id].append((delivery.offset, event))
        partition_of[event.student_id] = delivery.partition
    expected = {
        student: fold(student, [e for _, e in sorted(items)], model, thresholds)
        for student, items in by_student.items()
    }
    last_offset = {student: max(o for o, _ in items) for student, items in by_student.items()}

    # 1. the shards' memory (or, for evicted students, what the shard loads)
    students_by_partition: dict[int, list[str]] = defaultdict(list)
    for student, partition in partition_of.items():
        students_by_partition[partition].append(student)
    for partition, students in students_by_partition.items():
        got = ray.get(registry.shard(settings, partition).state_of.remote(partition, students))
        for student in students:
            assert got[student].components == expected[student].components, student
            assert got[student].applied_offset == last_offset[student], student

    # 2. Redis: states, and each day's last P(mastered) per component, expiring
    days = daily_values(_applied(by_student, model, thresholds))
    client = redis.Redis.from_url(settings.redis.url)
    try:
        raw = client.mget([keys.state(s) for s in expected])
        pipe = client.pipeline(transaction=False)
        for student, day in days:
            pipe.hgetall(keys.daily_mastery(student, day))
            pipe.ttl(keys.daily_mastery(student, day))
        daily = pipe.execute()
    finally:
        client.close()
    for (student, day), values, saved_values, ttl in zip(
        days, days.values(), daily[::2], daily[1::2], strict=True
    ):
        assert {k.decode(): float(v) for k, v in saved_values.items()} == values, (student, day)
        assert ttl > 0, f"daily mastery of {student} on {day} does not expire"
    for (student, state), value in zip(expected.items(), raw, strict=True):
        assert value is not None, f"no Redis state for {student}"
        saved = state_codec.decode(value)
        assert saved.components == state.components, student
        assert saved.applied_offset == last_offset[student], student

    # 3. PostgreSQL: history once per event, weekly aggregates as folded
    counts, weekly = asyncio.run(_postgres_view(settings, list(expected)))
    for student, items in by_student.items():
        assert counts.get(student, 0) == len(items), student
        reference = weekly_aggregates(student, [e for _, e in sorted(items)], model, thresholds)
        got_weeks = weekly.get(student, {})
        assert set(got_weeks) == set(reference), student
        for key, aggregate in reference.items():
            assert got_weeks[key] == (
                aggregate.attempts,
                aggregate.correct,
                aggregate.p_mastered,
            ), (
                student,
                key,
            )


def _applied(
    by_student: dict[str, list[tuple[int, AttemptGraded]]],
    model: ModelParameters,
    thresholds: LevelThresholds,
) -> list[AppliedEvent]:
    """Every student's events as the reference fold applies them, in offset order."""
    applied = []
    for student, items in by_student.items():
        state = StudentState(student)
        for offset, event in sorted(items):
            state = state.apply(event, model, thresholds, offset)
            applied.append(applied_event(offset, event, state, model.version))
    return applied


async def _postgres_view(
    settings: Settings, students: list[str]
) -> tuple[dict[str, int], dict[str, dict[tuple[str, int, int], tuple[int, int, float]]]]:
    conn = await asyncpg.connect(settings.postgres.dsn())
    try:
        rows = await conn.fetch(
            "SELECT student_id, count(*) AS n, count(DISTINCT event_id) AS distinct_ids "
            "FROM attempts WHERE student_id = ANY($1::text[]) GROUP BY student_id",
            students,
        )
        counts = {}
        for row in rows:
            assert row["n"] == row["distinct_ids"]
            counts[row["student_id"]] = int(row["n"])
        weekly: dict[str, dict[tuple[str, int, int], tuple[int, int, float]]] = defaultdict(dict)
        for row in await conn.fetch(
            "SELECT * FROM weekly_mastery WHERE student_id = ANY($1::text[])", students
        ):
            weekly[row["student_id"]][(row["component"], row["iso_year"], row["iso_week"])] = (
                row["attempts"],
                row["correct"],
                row["p_mastered"],
            )
        return counts, weekly
    finally:
        await conn.close()


def shard_stats(settings: Settings) -> list[dict[str, Any]]:
    return list(
        ray.get(
            [registry.shard(settings, p).stats.remote(p) for p in range(settings.kafka.partitions)]
        )
    )


class Stream:
    """Publishes events in chunks from a thread, at a bounded pace, keeping every delivery."""

    def __init__(
        self, settings: Settings, events: Sequence[AttemptGraded], chunk: int, pause_s: float
    ):
        self.deliveries: list[Delivery] = []
        self.error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(settings, events, chunk, pause_s), daemon=True
        )

    def _run(
        self, settings: Settings, events: Sequence[AttemptGraded], chunk: int, pause_s: float
    ) -> None:
        # One long-lived idempotent producer, as a service would hold: it rides out a broker
        # restart by retrying within librdkafka's own message timeout.
        producer = EventProducer(settings.kafka)
        try:
            for start in range(0, len(events), chunk):
                self.deliveries += producer.publish_many(
                    events[start : start + chunk], Deadline.after(300.0)
                )
                time.sleep(pause_s)
        except BaseException as err:
            self.error = err
        finally:
            producer.close(Deadline.after(30.0))

    def __enter__(self) -> Stream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join(600)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()


def wait_until(predicate: Callable[[], bool], timeout_s: float) -> None:
    deadline = Deadline.after(timeout_s)
    while not predicate():
        assert not deadline.expired(), "condition not reached"
        time.sleep(0.2)
