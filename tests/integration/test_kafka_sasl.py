"""Kafka's security settings reach every client: a local node that only speaks SASL_PLAINTEXT
with PLAIN takes the events topic, the producer's events and a consumer through
``KafkaSettings.client_config()``, and refuses a client with the wrong password.

The node runs in a run directory and on ports of its own (19392; controller 19393).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from ingest import topics
from ingest.producer import EventProducer
from learnflow.deadline import Deadline
from learnflow.events import parse_event
from learnflow.settings import KafkaSettings, Settings
from ops.platform import kafka
from tests.integration.pipeline import make_events


def sasl_settings(settings: Settings, run_dir: Path, password: str) -> Settings:
    (run_dir / kafka.NAME).mkdir(parents=True)
    (run_dir / kafka.NAME / "libs").symlink_to(kafka.libs_dir(settings))
    secured = KafkaSettings(
        bootstrap_servers="127.0.0.1:19392",
        events_topic="sasl.events",
        dlq_topic="sasl.events.dlq",
        partitions=3,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="learnflow",
        sasl_password=password,  # type: ignore[arg-type]
    )
    return settings.model_copy(
        update={
            "kafka": secured,
            "local": settings.local.model_copy(
                update={"run_dir": run_dir, "kafka_controller_port": 19393, "kafka_heap_mb": 256}
            ),
        }
    )


def test_events_flow_over_sasl_and_a_wrong_password_is_refused(
    settings: Settings, tmp_path: Path
) -> None:
    secured = sasl_settings(settings, tmp_path / "run", "s3cret-for-the-test")
    config = (tmp_path / "run" / kafka.NAME / "server.properties").resolve()
    kafka.start(secured, Deadline.after(120))
    try:
        assert "SASL_PLAINTEXT://127.0.0.1:19392" in config.read_text()
        assert config.stat().st_mode & 0o077 == 0  # it holds the password
        topics.ensure_topics(
            topics.admin_client(secured.kafka),
            topics.learnflow_topics(secured.kafka),
            Deadline.after(60),
        )
        events = make_events(students=5, total=50, seed=23)
        producer = EventProducer(secured.kafka)
        try:
            deliveries = producer.publish_many(events, Deadline.after(60))
        finally:
            producer.close(Deadline.after(30))
        assert len(deliveries) == len(events)

        consumer = Consumer({**secured.kafka.client_config("check"), "group.id": "sasl-check"})
        consumer.assign([TopicPartition("sasl.events", p, 0) for p in range(3)])
        seen: list[str] = []
        deadline = Deadline.after(30)
        try:
            while len(seen) < len(events) and not deadline.expired():
                batch = consumer.consume(100, timeout=1.0)
                seen += [str(parse_event(m.value()).event_id) for m in batch if m.error() is None]
        finally:
            consumer.close()
        assert sorted(seen) == sorted(str(e.event_id) for e in events)

        wrong = {**secured.kafka.client_config(), "sasl.password": "not-the-password"}
        with pytest.raises(KafkaException):
            AdminClient({**wrong, "log_level": 0}).list_topics(timeout=5)
        plain = {"bootstrap.servers": secured.kafka.bootstrap_servers, "log_level": 0}
        with pytest.raises(KafkaException):
            AdminClient(plain).list_topics(timeout=5)
    finally:
        assert kafka.stop(secured, Deadline.after(60))
