"""Kafka adapters: topic administration, the event producer and (later) the consumer deployment."""
