"""Producing to ``learning.events.dlq``: the value as received, headers saying why and whence."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from ingest.exceptions import DeliveryError
from ingest.producer import producer_config
from ingest.topics import MAX_MESSAGE_BYTES
from learnflow.batches import DeadLetter
from learnflow.deadline import Deadline
from learnflow.settings import KafkaSettings


class DeadLetterProducer:
    def __init__(self, settings: KafkaSettings) -> None:
        self.topic = settings.dlq_topic
        self._producer = Producer(
            producer_config(settings, **{"message.max.bytes": MAX_MESSAGE_BYTES})
        )

    def send(
        self, source_topic: str, partition: int, letters: Sequence[DeadLetter], deadline: Deadline
    ) -> None:
        """Write every letter and wait for the broker; raise ``DeliveryError`` if any failed."""
        failures: list[str] = []

        def on_delivery(err: KafkaError | None, msg: Message) -> Any:
            if err is not None:
                failures.append(str(err))

        for letter in letters:
            self._producer.produce(
                self.topic,
                key=letter.key,
                value=letter.value,
                headers=[
                    ("error", letter.error.encode()[:4096]),
                    ("source.topic", source_topic.encode()),
                    ("source.partition", str(partition).encode()),
                    ("source.offset", str(letter.offset).encode()),
                ],
                on_delivery=on_delivery,
            )
        left = self._producer.flush(deadline.remaining())
        if left or failures:
            raise DeliveryError(
                f"dead letters of {source_topic}[{partition}] not delivered to {self.topic}: "
                f"{left} pending, errors {failures[:3]}"
            )
