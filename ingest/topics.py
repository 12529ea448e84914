"""Creates LearnFlow's topics and checks that existing ones have the configured layout."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import AlterConfigOpType, ConfigEntry, ConfigResource
from confluent_kafka.admin._resource import ResourceType
from confluent_kafka.cimpl import NewTopic

from ingest.exceptions import KafkaUnavailableError, TopicMismatchError
from learnflow.deadline import Deadline
from learnflow.settings import KafkaSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    config: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class TopicState:
    name: str
    partitions: int
    created: bool


MAX_MESSAGE_BYTES = 4 * 1024 * 1024
"""Room for a 1 MB value plus headers: oversized events must reach the dead-letter topic."""


def learnflow_topics(settings: KafkaSettings) -> tuple[TopicSpec, ...]:
    """The events topic and its dead-letter topic, as configured."""
    isr = (
        ("min.insync.replicas", str(settings.min_insync_replicas)),
        ("max.message.bytes", str(MAX_MESSAGE_BYTES)),
    )
    return (
        TopicSpec(settings.events_topic, settings.partitions, settings.replication_factor, isr),
        TopicSpec(settings.dlq_topic, settings.dlq_partitions, settings.replication_factor, isr),
    )


def admin_client(settings: KafkaSettings) -> AdminClient:
    return AdminClient(settings.client_config())


def ensure_topics(
    admin: AdminClient, specs: tuple[TopicSpec, ...], deadline: Deadline
) -> list[TopicState]:
    """Create missing topics; raise ``TopicMismatchError`` for one with another partition count."""
    existing = _partition_counts(admin, deadline)
    missing = [spec for spec in specs if spec.name not in existing]
    for spec in specs:
        have = existing.get(spec.name)
        if have is not None and have != spec.partitions:
            raise TopicMismatchError(
                f"topic {spec.name} has {have} partitions, configured {spec.partitions}"
            )
    present = [spec for spec in specs if spec.name in existing and spec.config]
    if present:
        _apply_configs(admin, present, deadline)
    if missing:
        futures = admin.create_topics(
            [
                NewTopic(
                    spec.name,
                    num_partitions=spec.partitions,
                    replication_factor=spec.replication_factor,
                    config=dict(spec.config),
                )
                for spec in missing
            ],
            operation_timeout=deadline.cap(30.0),
            request_timeout=deadline.cap(30.0),
        )
        for name, future in futures.items():
            try:
                future.result(timeout=deadline.remaining())
            except KafkaException as err:
                if err.args[0].name() != "TOPIC_ALREADY_EXISTS":
                    raise KafkaUnavailableError(f"creating topic {name} failed: {err}") from err
            logger.info("created topic %s", name)
        _wait_for_leaders(admin, [spec.name for spec in missing], deadline)
    created = {spec.name for spec in missing}
    return [TopicState(spec.name, spec.partitions, spec.name in created) for spec in specs]


def _apply_configs(admin: AdminClient, specs: list[TopicSpec], deadline: Deadline) -> None:
    """Set the configured topic configs on existing topics (idempotent)."""
    resources = [
        ConfigResource(
            ResourceType.TOPIC,
            spec.name,
            incremental_configs=[
                ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
                for key, value in spec.config
            ],
        )
        for spec in specs
    ]
    for resource, future in admin.incremental_alter_configs(
        resources, request_timeout=deadline.cap(30.0)
    ).items():
        try:
            future.result(timeout=deadline.remaining())
        except KafkaException as err:
            raise KafkaUnavailableError(f"configuring {resource.name} failed: {err}") from err


def delete_topics(admin: AdminClient, names: list[str], deadline: Deadline) -> None:
    """Delete topics, ignoring ones that are already gone."""
    for name, future in admin.delete_topics(names, operation_timeout=deadline.cap(30.0)).items():
        try:
            future.result(timeout=deadline.remaining())
        except KafkaException as err:
            if err.args[0].name() != "UNKNOWN_TOPIC_OR_PART":
                raise KafkaUnavailableError(f"deleting topic {name} failed: {err}") from err


def _partition_counts(admin: AdminClient, deadline: Deadline) -> dict[str, int]:
    try:
        metadata = admin.list_topics(timeout=deadline.cap(10.0))
    except KafkaException as err:
        raise KafkaUnavailableError(
            f"Kafka did not answer within {deadline.budget:.0f} s: {err}"
        ) from err
    return {name: len(topic.partitions) for name, topic in metadata.topics.items()}


def _wait_for_leaders(admin: AdminClient, names: list[str], deadline: Deadline) -> None:
    """New partitions need a leader before a producer with ``acks=all`` can write to them."""
    while True:
        metadata = admin.list_topics(timeout=deadline.cap(10.0))
        leaderless = []
        for name in names:
            topic = metadata.topics.get(name)
            if topic is None or not topic.partitions:
                leaderless.append(name)
                continue
            leaderless += [
                f"{name}[{p}]" for p, part in topic.partitions.items() if part.leader < 0
            ]
        if not leaderless:
            return
        if deadline.expired():
            raise KafkaUnavailableError(f"no leader elected for {', '.join(leaderless[:5])}")
        time.sleep(deadline.cap(0.1))


def consumer_config(
    settings: KafkaSettings, group_id: str, client: str, **overrides: object
) -> dict[str, object]:
    """A consumer of ``learning.events`` that commits only what it says (never on its own),
    takes the largest message the topic allows, and starts at the oldest record it has."""
    return {
        **settings.client_config(client),
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "fetch.max.bytes": 4 * MAX_MESSAGE_BYTES,
        "max.partition.fetch.bytes": MAX_MESSAGE_BYTES,
        **overrides,
    }
