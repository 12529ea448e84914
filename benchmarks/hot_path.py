"""Benchmark: a shard host's CPU per event, stage by stage, with no service involved.

``make bench-ingest``'s 200,000 events (10,000 students) are split over 12 partitions as their
keys place them and taken in reads of 6,667 records a partition (a host's read of 40,000 over
its six partitions). Each read is parsed, folded on the states the reads before it left, and
turned into the bytes a checkpoint sends: the Redis commands and the PostgreSQL ``COPY`` rows.
The floor, measured in the same run, is msgspec decoding the same values into the event struct
with no check beyond its types: what any consumer of these events pays to read them.

Three rounds; the first warms the interpreter up and is not counted. Run with
``make bench-hot-path``.
"""

from __future__ import annotations

import gc
import time
from collections import defaultdict

import msgspec

from actors.host import _GC_THRESHOLDS
from actors.postgres_store import copy_data
from actors.redis_store import RedisStateStore, connect
from benchmarks.ingest import EVENTS, STUDENTS, make_values, say
from learnflow.batch_fold import fold_batch, parse_batch
from learnflow.batches import Record
from learnflow.bkt import ModelParameters
from learnflow.levels import DEFAULT_THRESHOLDS
from learnflow.partitioning import partition_for_key
from learnflow.settings import RedisSettings, Settings
from learnflow.student_state import StudentState

PARTITIONS, READ = 12, 6_667
ROUNDS = 3


class _Bare(msgspec.Struct):
    """The event's fields with their types and nothing else checked."""

    schema_version: int
    event_type: str
    event_id: str
    student_id: str
    exercise_id: str
    components: list[str]
    passed: bool
    score: float
    tests_total: int
    tests_passed: int
    duration_ms: int
    submitted_at: str


def main() -> None:
    gc.set_threshold(*_GC_THRESHOLDS)  # as a host runs
    settings = Settings()
    values = make_values("hot-path", EVENTS, STUDENTS, seed=1)
    partitions: dict[int, list[Record]] = defaultdict(list)
    for key, value in values:
        records = partitions[partition_for_key(key, PARTITIONS)]
        records.append((len(records), key, value, 0))
    reads = [
        (partition, records[start : start + READ])
        for partition, records in sorted(partitions.items())
        for start in range(0, len(records), READ)
    ]
    # The client connects on first use: making commands needs no Redis.
    store = RedisStateStore(connect(RedisSettings()), settings.shards)
    model, thresholds = ModelParameters(), DEFAULT_THRESHOLDS
    bare = msgspec.json.Decoder(_Bare)
    seconds: dict[str, float] = defaultdict(float)
    for round_ in range(ROUNDS):
        resident: dict[str, StudentState] = {}
        for partition, records in reads:
            began = time.process_time()
            for record in records:
                bare.decode(record[2] or b"")
            floor = time.process_time()
            parsed = parse_batch(records)
            parsed_at = time.process_time()
            folded = fold_batch("t", partition, parsed, resident.get, model, thresholds)
            folded_at = time.process_time()
            store.commands([folded.checkpoint])
            commands_at = time.process_time()
            copy_data([(partition, applied) for applied in folded.checkpoint.applied])
            copied_at = time.process_time()
            resident.update(folded.checkpoint.states)
            if round_:
                seconds["floor: msgspec decode, types only"] += floor - began
                seconds["parse (decode and check)"] += parsed_at - floor
                seconds["fold"] += folded_at - parsed_at
                seconds["Redis commands"] += commands_at - folded_at
                seconds["PostgreSQL COPY rows"] += copied_at - commands_at
    events = EVENTS * (ROUNDS - 1)
    floor_us = seconds["floor: msgspec decode, types only"] / events * 1e6
    say(f"{EVENTS:,} events, {STUDENTS:,} students, reads of {READ:,} records a partition")
    say(f"{'stage':<40}{'µs/event':>10}{'x floor':>10}")
    for stage, used in seconds.items():
        per_event = used / events * 1e6
        say(f"{stage:<40}{per_event:>10.2f}{per_event / floor_us:>10.1f}")
    host_us = sum(used for stage, used in seconds.items() if not stage.startswith("floor"))
    say(f"{'host stages together':<40}{host_us / events * 1e6:>10.2f}")


if __name__ == "__main__":
    main()
