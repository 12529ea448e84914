"""Errors of the Kafka adapters."""

from learnflow.exceptions import LearnFlowError


class KafkaUnavailableError(LearnFlowError):
    """The broker did not answer within the time budget.

    Check that Kafka runs (``learnflow status``) and ``LEARNFLOW_KAFKA__BOOTSTRAP_SERVERS``.
    """


class TopicMismatchError(LearnFlowError):
    """A topic exists with a layout other than the one configured.

    LearnFlow never repartitions silently: a changed partition count would move students to other
    shards. Recreate the topic (losing its data) or set ``LEARNFLOW_KAFKA__PARTITIONS`` to match.
    """


class DeliveryError(LearnFlowError):
    """The broker did not acknowledge an event (``acks=all``) within the time budget."""
