"""Kafka: the local broker, topics and readiness, client options, the producer and its spool."""
