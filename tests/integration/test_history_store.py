"""PostgreSQL history: replays with other batch boundaries count nothing twice, and a shard
rebuilds from it what Redis lost."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import uuid

import orjson
import pytest
import redis

from actors import postgres_store, redis_store
from actors.postgres_store import PostgresHistoryStore
from actors.redis_store import RedisStateStore
from actors.shard import ShardStores, StudentShard
from learnflow import keys, state_codec
from learnflow.batch_fold import applied_event
from learnflow.batches import AppliedEvent, CheckpointBatch
from learnflow.events import AttemptGraded
from learnflow.model_loading import load_model
from learnflow.settings import Settings
from learnflow.student_state import StudentState, fold
from learnflow.weekly import weekly_aggregates
from tests.integration.pipeline import _postgres_view, make_events


def _batches(
    settings: Settings, total: int, partition: int = 0, topic: str | None = None
) -> tuple[list[CheckpointBatch], dict[str, list[AttemptGraded]]]:
    """Every event of a few students as one-event checkpoint pieces, in offset order."""
    model = load_model(settings.mastery)
    thresholds = settings.mastery.thresholds()
    topic = topic or f"test.history.{uuid.uuid4().hex[:6]}"
    events = make_events(students=3, total=total, seed=11)
    states: dict[str, StudentState] = {}
    pieces = []
    by_student: dict[str, list[AttemptGraded]] = {}
    for offset, event in enumerate(events):
        state = states.get(event.student_id) or StudentState(event.student_id)
        state = state.apply(event, model, thresholds, offset)
        states[event.student_id] = state
        by_student.setdefault(event.student_id, []).append(event)
        pieces.append(
            CheckpointBatch(
                topic, partition, offset, [applied_event(offset, event, state, model.version)]
            )
        )
    return pieces, by_student


def _merge(pieces: list[CheckpointBatch]) -> CheckpointBatch:
    applied: list[AppliedEvent] = [a for piece in pieces for a in piece.applied]
    first = pieces[0]
    return CheckpointBatch(first.topic, first.partition, pieces[-1].last_offset, applied)


@pytest.mark.parametrize(
    ("small_rows", "ahead"),
    [(postgres_store.SMALL_CHECKPOINT_ROWS, False), (0, False), (0, True)],
    ids=["one-call", "copy", "copy-made-ahead"],
)
def test_overlapping_replays_record_each_event_and_step_once(
    settings: Settings, small_rows: int, ahead: bool
) -> None:
    """``ahead``: each checkpoint's rows are made before it is recorded, as a shard host makes
    them with the fold, and hold the replayed rows too."""
    pieces, by_student = _batches(settings, total=40)

    async def record_with_replays() -> None:
        pool = await postgres_store.connect(settings.postgres, 1)
        store = PostgresHistoryStore(pool, small_rows)
        try:
            # As after crashes and rewinds: replays start earlier and end later than what
            # was recorded, so one batch mixes recorded and new steps of the same week.
            for lo, hi in [(0, 10), (5, 20), (0, 30), (25, 40), (0, 40)]:
                batch = _merge(pieces[lo:hi])
                rows = store.rows([batch]) if ahead else None
                assert (rows is not None) == ahead
                await store.record([batch], rows)
            assert await store.watermark(pieces[0].topic, 0) == 39
        finally:
            await store.close()

    asyncio.run(record_with_replays())
    model = load_model(settings.mastery)
    thresholds = settings.mastery.thresholds()
    counts, weekly = asyncio.run(_postgres_view(settings, list(by_student)))
    for student, events in by_student.items():
        assert counts[student] == len(events), student
        reference = weekly_aggregates(student, events, model, thresholds)
        assert weekly[student] == {
            key: (aggregate.attempts, aggregate.correct, aggregate.p_mastered)
            for key, aggregate in reference.items()
        }, student


def test_a_checkpoint_in_one_call_records_the_rows_copy_does(settings: Settings) -> None:
    """The one-call path of small checkpoints and the ``COPY`` path of large ones write the
    same attempt rows, column for column."""
    first = 1000 + random.randrange(1_000_000)  # no real partition's history gets involved
    topic = f"test.history.{uuid.uuid4().hex[:6]}"
    pieces, _ = _batches(settings, total=30, partition=first, topic=topic)
    copied = [dataclasses.replace(piece, partition=first + 1) for piece in pieces]

    async def record_both_ways() -> list[list[tuple[object, ...]]]:
        pool = await postgres_store.connect(settings.postgres, 1)
        try:
            await PostgresHistoryStore(pool).record([_merge(pieces)])
            await PostgresHistoryStore(pool, small_rows=0).record([_merge(copied)])
            columns = ", ".join(c for c in postgres_store.ATTEMPT_COLUMNS if c != "kafka_partition")
            return [
                [
                    tuple(row)
                    for row in await pool.fetch(
                        f"SELECT {columns} FROM attempts WHERE kafka_partition = $1 "  # noqa: S608 - column names
                        "ORDER BY kafka_offset",
                        partition,
                    )
                ]
                for partition in (first, first + 1)
            ]
        finally:
            await pool.execute(
                "DELETE FROM attempts WHERE kafka_partition = ANY($1::int[])", [first, first + 1]
            )
            await pool.close()

    one_call, copy = asyncio.run(record_both_ways())
    assert len(one_call) == len(pieces)
    assert one_call == copy


def test_a_shard_rebuilds_from_history_what_redis_lost(
    settings: Settings, redis_client: redis.Redis
) -> None:
    """PostgreSQL has a partition's events, Redis none of them (lost in a restart): the shard's
    start writes every student's state, latest attempts and the watermark back to Redis."""
    partition = 1000 + random.randrange(1_000_000)  # no real partition's history gets involved
    pieces, by_student = _batches(settings, total=30, partition=partition)
    batch = _merge(pieces)

    async def record_then_start_a_shard() -> dict[str, StudentState]:
        pool = await postgres_store.connect(settings.postgres, 1)
        history = PostgresHistoryStore(pool)
        shard = StudentShard(settings, partition, batch.topic)
        try:
            await history.record([batch])
            return await shard.state_of(list(by_student))
        finally:
            await shard.close()
            await pool.execute("DELETE FROM attempts WHERE kafka_partition = $1", partition)
            await history.close()

    states = asyncio.run(record_then_start_a_shard())
    model = load_model(settings.mastery)
    thresholds = settings.mastery.thresholds()
    assert redis_client.get(keys.partition_checkpoint(batch.topic, partition)) == b"29"
    for student, events in by_student.items():
        expected = fold(student, events, model, thresholds)
        saved = state_codec.decode(redis_client.get(keys.state(student)) or b"")
        assert saved.components == expected.components == states[student].components, student
        latest = redis_client.zrange(keys.attempts(student, events[-1].exercise_id), -1, -1)
        assert orjson.loads(latest[0])[0] == str(events[-1].event_id), student  # an array


def test_one_checkpoint_of_several_partitions_saves_each_and_a_replay_changes_nothing(
    settings: Settings, redis_client: redis.Redis
) -> None:
    """A shard host saves what one read brought, of every partition, in one checkpoint: each
    partition's watermark, rows and students are saved as if checkpointed alone, and writing
    the same checkpoint again counts nothing twice."""
    topic = f"test.history.{uuid.uuid4().hex[:6]}"
    first = 1000 + random.randrange(1_000_000)  # no real partition's history gets involved
    partitions = (first, first + 1)
    made = [_batches(settings, total=12 + 6 * n, partition=p, topic=topic) for n, p in
            enumerate(partitions)]  # fmt: skip
    model = load_model(settings.mastery)
    thresholds = settings.mastery.thresholds()
    batches = []
    for pieces, _ in made:
        states: dict[str, StudentState] = {}
        for applied in (a for piece in pieces for a in piece.applied):
            student = applied.event.student_id
            states[student] = states.get(student, StudentState(student)).apply(
                applied.event, model, thresholds, applied.offset
            )
        batches.append(dataclasses.replace(_merge(pieces), states=states))

    async def checkpoint_twice_then_start_shards() -> list[dict[str, StudentState]]:
        stores = ShardStores(settings)
        await stores.connect()
        shards = [StudentShard(settings, p, topic, stores) for p in partitions]
        try:
            await stores.checkpoint(batches)
            await stores.checkpoint(batches)
            return [
                await shard.state_of(list(by_student))
                for shard, (_, by_student) in zip(shards, made, strict=True)
            ]
        finally:
            for shard in shards:
                await shard.close()
            assert hasattr(stores, "history")  # a shard never closes stores it was given
            await stores.close()

    held_states = asyncio.run(checkpoint_twice_then_start_shards())
    counts, weekly = asyncio.run(_postgres_view(settings, [s for _, b in made for s in b]))
    for (pieces, by_student), partition, held in zip(made, partitions, held_states, strict=True):
        mark = redis_client.get(keys.partition_checkpoint(topic, partition))
        assert mark == str(pieces[-1].last_offset).encode()
        for student, events in by_student.items():
            expected = fold(student, events, model, thresholds)
            assert held[student].components == expected.components, student
            assert counts[student] == len(events), student
            reference = weekly_aggregates(student, events, model, thresholds)
            assert weekly[student] == {
                key: (aggregate.attempts, aggregate.correct, aggregate.p_mastered)
                for key, aggregate in reference.items()
            }, student


def test_latest_attempts_are_the_newest_kept_ones_whatever_the_checkpoints(
    settings: Settings, redis_client: redis.Redis
) -> None:
    """One attempt per checkpoint, or several at once: a reader always gets the newest
    ``attempts_kept``, newest first, and a set is trimmed to them when one of its new events is
    due (one in 16, by its id) or a checkpoint adds more than 15."""
    kept = 2
    narrow = settings.model_copy(
        update={"shards": settings.shards.model_copy(update={"attempts_kept": kept})}
    )
    for _ in range(50):  # event ids are random: take events whose last checkpoint has one due
        pieces, _ = _batches(narrow, total=120, partition=1000 + random.randrange(1_000_000))
        if any(a.event.event_id.int & 15 == 0 for piece in pieces[90:] for a in piece.applied):
            break
    applied = [a for piece in pieces for a in piece.applied]
    by_pair: dict[tuple[str, str], list[AppliedEvent]] = {}
    for item in applied:
        by_pair.setdefault((item.event.student_id, item.event.exercise_id), []).append(item)
    assert max(len(items) for items in by_pair.values()) > kept + 1  # some are trimmed

    async def checkpoint_then_read() -> dict[tuple[str, str], list[dict[str, object]]]:
        client = redis_store.connect(narrow.redis)
        store = RedisStateStore(client, narrow.shards)
        try:
            for piece in pieces[:90]:
                await store.save([piece])
            await store.save([_merge(pieces[90:])])
            return {pair: await store.latest_attempts(*pair) for pair in by_pair}
        finally:
            await client.aclose()

    latest = asyncio.run(checkpoint_then_read())
    last = [a for piece in pieces[90:] for a in piece.applied]
    pairs = [(a.event.student_id, a.event.exercise_id) for a in last]
    trimmed = {pair for a, pair in zip(last, pairs, strict=True)  # by the last checkpoint
               if a.event.event_id.int & 15 == 0 or pairs.count(pair) > 15}  # fmt: skip
    assert trimmed
    for pair, items in by_pair.items():
        newest = [str(a.event.event_id) for a in reversed(items)][:kept]
        assert [item["event_id"] for item in latest[pair]] == newest, pair
        if pair in trimmed:
            assert redis_client.zcard(keys.attempts(*pair)) == min(kept, len(items)), pair
        assert redis_client.object("encoding", keys.attempts(*pair)) == b"listpack"  # compact


def test_attempts_saved_as_objects_read_the_same_as_arrays(
    settings: Settings, redis_client: redis.Redis
) -> None:
    """Summaries written as JSON objects (before they were arrays) and as arrays read the
    same, newest first."""
    student, exercise = f"summary-{uuid.uuid4().hex[:8]}", "ex-1"
    key = keys.attempts(student, exercise)
    old = {
        "event_id": str(uuid.uuid4()), "passed": False, "score": 0.5, "tests_passed": 1,
        "tests_total": 2, "submitted_at": "2026-11-02T10:00:00Z", "offset": 7,
    }  # fmt: skip
    new = {**old, "event_id": str(uuid.uuid4()), "passed": True, "offset": 9}
    redis_client.zadd(key, {orjson.dumps(old): 7, orjson.dumps(list(new.values())): 9})

    async def read() -> list[dict[str, object]]:
        client = redis_store.connect(settings.redis)
        try:
            return await RedisStateStore(client, settings.shards).latest_attempts(student, exercise)
        finally:
            await client.aclose()

    assert asyncio.run(read()) == [new, old]


def test_a_read_folded_before_the_one_before_is_saved_settles_after_it_or_goes_with_it(
    settings: Settings,
) -> None:
    """A host folds its next read while the checkpoint of the one before is written. Saved in
    order, each read settles with its own states (what readers see never runs ahead of what is
    saved); if the first checkpoint fails, the read folded on top of it is dropped with it, and
    reading both again ends in the states of one fold."""
    partition = 1000 + random.randrange(1_000_000)  # no real partition's history gets involved
    model = load_model(settings.mastery)
    thresholds = settings.mastery.thresholds()

    def components(states: dict[str, StudentState]) -> dict[str, dict[str, object]]:
        return {s: dict(state.components) for s, state in states.items()}

    def folded(events: list[AttemptGraded], upto: int) -> dict[str, dict[str, object]]:
        return components({
            s: fold(s, [e for e in events[:upto] if e.student_id == s], model, thresholds)
            for s in {e.student_id for e in events}
        })  # fmt: skip

    async def fold_twice_then(
        events: list[AttemptGraded], fail_first: bool
    ) -> list[dict[str, StudentState]]:
        records = [(offset, e.key, e.to_json(), 0) for offset, e in enumerate(events)]
        students = sorted({e.student_id for e in events})
        stores = ShardStores(settings)
        shard = StudentShard(settings, partition, f"test.pipeline.{uuid.uuid4().hex[:6]}", stores)
        seen = []
        try:
            await shard.start()
            first = await shard.fold(records[:15])
            second = await shard.fold(records[15:30])  # on top of the first, not saved yet
            assert first is not None and second is not None
            if fail_first:  # the first checkpoint failed: both go, and the reads come again
                shard.discard()
                again = await shard.fold(records)
                assert again is not None
                await stores.checkpoint([again.folded.checkpoint])
                shard.settle(again)
            else:
                await stores.checkpoint([first.folded.checkpoint])
                shard.settle(first)
                seen.append(await shard.state_of(students))
                third = await shard.fold(records[30:])  # on top of the second, still unsaved
                assert third is not None
                for batch in (second, third):
                    await stores.checkpoint([batch.folded.checkpoint])
                    shard.settle(batch)
            seen.append(await shard.state_of(students))
            return seen
        finally:
            await shard.close()
            await stores.pool.execute("DELETE FROM attempts WHERE kafka_partition = $1", partition)
            await stores.close()

    events = make_events(students=3, total=40, seed=12)  # fresh students each call
    after_first, after_both = asyncio.run(fold_twice_then(events, fail_first=False))
    assert components(after_first) == folded(events, 15)
    assert components(after_both) == folded(events, 40)
    assert {s: state.applied_offset for s, state in after_both.items()} == {
        e.student_id: offset for offset, e in enumerate(events)
    }
    events = make_events(students=3, total=40, seed=12)
    (replayed,) = asyncio.run(fold_twice_then(events, fail_first=True))
    assert components(replayed) == folded(events, 40)
