"""Events keyed by student land on one partition each, in order, where Java's producer puts them."""

from __future__ import annotations

import subprocess
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import msgspec
from confluent_kafka import Consumer

from ingest.producer import EventProducer
from learnflow.deadline import Deadline
from learnflow.events import parse_event
from learnflow.settings import Settings
from ops.platform import kafka as local_kafka
from tests.integration.pipeline import make_events

PARTITIONS = 12
JAVA_PROBE = Path(__file__).parent / "java" / "PartitionForKey.java"


def consume_all(settings: Settings, topic: str, expected: int) -> list[tuple[int, int, bytes]]:
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    records: list[tuple[int, int, bytes]] = []
    deadline = Deadline.after(60.0)
    try:
        while len(records) < expected and not deadline.expired():
            for msg in consumer.consume(num_messages=1000, timeout=deadline.cap(1.0)):
                assert msg.error() is None, msg.error()
                records.append((msg.partition(), msg.offset(), msg.value()))
    finally:
        consumer.close()
    return records


def java_partitions(settings: Settings, keys: list[str]) -> list[int]:
    """Partitions chosen by Kafka's Java producer code, run from the broker's jars on disk."""
    classpath = f"{local_kafka.libs_dir(settings)}/*"
    result = subprocess.run(
        ["java", "-cp", classpath, str(JAVA_PROBE), str(PARTITIONS), *keys],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return [int(line) for line in result.stdout.split()]


def test_students_stay_on_one_partition_in_order(
    settings: Settings, make_topic: Callable[[int], str]
) -> None:
    topic = make_topic(PARTITIONS)
    events = make_events(students=500, total=2000, seed=7)
    producer = EventProducer(settings.kafka, topic=topic)

    deliveries = producer.publish_many(events, Deadline.after(60.0))
    records = consume_all(settings, topic, expected=len(events))

    assert len(records) == len(events)
    by_student: dict[str, list[tuple[int, int, uuid.UUID]]] = defaultdict(list)
    for partition, offset, value in sorted(records, key=lambda r: (r[0], r[1])):
        event = parse_event(value)
        by_student[event.student_id].append((partition, offset, event.event_id))
    assert len(by_student) == 500
    produced_order: dict[str, list[uuid.UUID]] = defaultdict(list)
    for event in events:
        produced_order[event.student_id].append(event.event_id)
    for student, seen in by_student.items():
        assert len({partition for partition, _, _ in seen}) == 1, student
        assert [event_id for _, _, event_id in seen] == produced_order[student], student
    # The producer reports the positions the consumer then finds.
    reported = {(d.partition, d.offset) for d in deliveries}
    assert reported == {(partition, offset) for partition, offset, _ in records}


def test_partition_matches_the_java_producer(
    settings: Settings, make_topic: Callable[[int], str]
) -> None:
    topic = make_topic(PARTITIONS)
    keys = ["21", "foobar", "student-0001", "alice@example.org", "a-little-bit-long-string"]
    events = [
        msgspec.structs.replace(e, student_id=key)
        for e, key in zip(make_events(len(keys), len(keys), seed=3), keys, strict=True)
    ]

    deliveries = EventProducer(settings.kafka, topic=topic).publish_many(
        events, Deadline.after(30.0)
    )

    assert [d.partition for d in deliveries] == java_partitions(settings, keys)
