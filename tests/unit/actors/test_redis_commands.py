"""A checkpoint's Redis commands hold each value exactly as it reads back: states, daily
mastery and attempt summaries, though each kind is encoded for the whole checkpoint at once."""

from __future__ import annotations

import uuid

import hiredis
import msgspec
import pytest
from hypothesis import given, settings

from actors.redis_store import AttemptSummary, RedisStateStore, connect
from learnflow import keys, state_codec, synthetic
from learnflow.batch_fold import FoldedBatch, daily_values, fold_batch, parse_batch
from learnflow.batches import Record
from learnflow.bkt import BKTParams, ModelParameters
from learnflow.levels import DEFAULT_THRESHOLDS
from learnflow.settings import RedisSettings, ShardSettings
from tests.strategies import partition_records

# A steep model: P(mastered) reaches values far from 0.5, written with exponents.
MODEL = ModelParameters(components={"loops": BKTParams(1e-6, 0.001, 0.001, 0.001, 0.0)})


def _commands(records: list[Record]) -> tuple[FoldedBatch, list[list[bytes]]]:
    folded = fold_batch("t", 3, parse_batch(records), {}.get, MODEL, DEFAULT_THRESHOLDS)
    # The client connects on first use: making commands needs no Redis.
    store = RedisStateStore(connect(RedisSettings()), ShardSettings())
    reader = hiredis.Reader()
    found: list[list[bytes]] = []
    for command in store.commands([folded.checkpoint]):
        reader.feed(command)
        found.append(reader.gets())
    return folded, found


@settings(max_examples=50)
@given(partition_records())
def test_each_value_reads_back_as_written_alone(records: list[Record]) -> None:
    folded, commands = _commands(records)
    batch = folded.checkpoint
    by_name: dict[bytes, list[list[bytes]]] = {}
    for command in commands:
        by_name.setdefault(command[0], []).append(command[1:])

    states = dict(zip(by_name[b"MSET"][0][::2], by_name[b"MSET"][0][1::2], strict=True))
    for student, state in batch.states.items():
        assert states[keys.state(student).encode()] == state_codec.encode(state)
    daily = {fields[0]: fields[1:] for fields in by_name.get(b"HSET", [])}
    for (student, day), values in daily_values(batch.applied).items():
        fields = daily[keys.daily_mastery(student, day).encode()]
        assert {k.decode(): float(v) for k, v in zip(fields[::2], fields[1::2], strict=True)} == (
            values
        )
    members = {
        (int(score), raw)
        for fields in by_name.get(b"ZADD", [])
        for score, raw in zip(fields[1::2], fields[2::2], strict=True)
    }
    encode = msgspec.json.encode
    assert members == {
        (a.offset, encode(AttemptSummary(
            e.event_id, e.passed, e.score, e.tests_passed, e.tests_total, e.submitted_at, a.offset
        )))
        for a in batch.applied
        for e in (a.event,)
    }  # fmt: skip


@pytest.mark.parametrize(("added", "trimmed"), [(1, False), (15, False), (16, True), (40, True)])
def test_a_set_is_trimmed_when_a_checkpoint_adds_more_than_fifteen_to_it(
    added: int, trimmed: bool
) -> None:
    """Events none of whose ids is due (a hash whose last four bits are not all zero): only
    the count one checkpoint adds to the student's set for the exercise trims it."""
    events = [
        msgspec.structs.replace(event, student_id="s-1", exercise_id="ex-1", event_id=uuid.UUID(
            int=(event.event_id.int & ~15) | 1
        ))
        for event in synthetic.attempt_events(1, added, seed=5, prefix="s")
    ]  # fmt: skip
    records: list[Record] = [(n, b"s-1", event.to_json(), 0) for n, event in enumerate(events)]
    _, commands = _commands(records)

    trims = [c for c in commands if c[0] == b"ZREMRANGEBYRANK"]
    assert [c[1] for c in trims] == ([keys.attempts("s-1", "ex-1").encode()] if trimmed else [])
    assert sum(len(c) - 2 for c in commands if c[0] == b"ZADD") == 2 * added
