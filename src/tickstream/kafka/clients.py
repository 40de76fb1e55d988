"""Settings -> Kafka client options, in one place: librdkafka's (the producer, consumers, the
admin client) and those of Spark's Kafka connector (the job's source and its dead-letter sink)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError

from tickstream.config import Settings

# librdkafka logs every refused connection and retry; what matters reaches us through
# error callbacks and delivery reports, so its own log lines stay out of the terminal.
LIBRDKAFKA_LOG = logging.getLogger("tickstream.kafka.librdkafka")
LIBRDKAFKA_LOG.addHandler(logging.NullHandler())
LIBRDKAFKA_LOG.propagate = False

# With a spool a message is never given up: librdkafka's largest delivery timeout (24.8 days).
FOREVER_MS = 2_147_483_647


def librdkafka_config(settings: Settings) -> dict[str, Any]:
    """The brokers and the security settings of a confluent-kafka (librdkafka) client."""
    return {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        **client_security(settings),
        "logger": LIBRDKAFKA_LOG,
    }


def client_security(settings: Settings) -> dict[str, str]:
    """Security settings for confluent-kafka (librdkafka) clients."""
    conf: dict[str, str] = {"security.protocol": settings.kafka_security_protocol}
    if settings.kafka_security_protocol.startswith("SASL"):
        assert settings.kafka_sasl_password is not None
        conf["sasl.mechanisms"] = settings.kafka_sasl_mechanism
        conf["sasl.username"] = settings.kafka_sasl_username or ""
        conf["sasl.password"] = settings.kafka_sasl_password.get_secret_value()
    if settings.kafka_ssl_ca_location is not None:
        conf["ssl.ca.location"] = str(settings.kafka_ssl_ca_location)
    return conf


def spark_kafka_security(settings: Settings) -> dict[str, str]:
    """The same settings for Spark's Kafka source and sink (Java client names, `kafka.` prefix)."""
    options: dict[str, str] = {"kafka.security.protocol": settings.kafka_security_protocol}
    if settings.kafka_security_protocol.startswith("SASL"):
        assert settings.kafka_sasl_password is not None
        module = (
            "org.apache.kafka.common.security.plain.PlainLoginModule"
            if settings.kafka_sasl_mechanism == "PLAIN"
            else "org.apache.kafka.common.security.scram.ScramLoginModule"
        )
        user = json.dumps(settings.kafka_sasl_username or "")
        password = json.dumps(settings.kafka_sasl_password.get_secret_value())
        options["kafka.sasl.mechanism"] = settings.kafka_sasl_mechanism
        options["kafka.sasl.jaas.config"] = (
            f"{module} required username={user} password={password};"
        )
    if settings.kafka_ssl_ca_location is not None:
        options["kafka.ssl.truststore.type"] = "PEM"
        options["kafka.ssl.truststore.location"] = str(settings.kafka_ssl_ca_location)
    return options


def spark_kafka_options(settings: Settings) -> dict[str, str]:
    """The brokers and the security settings for Spark's Kafka source and sink."""
    return {
        "kafka.bootstrap.servers": settings.kafka_bootstrap_servers,
        **spark_kafka_security(settings),
    }


def producer_config(
    settings: Settings, on_error: Callable[[KafkaError], None], *, spooled: bool = False
) -> dict[str, Any]:
    delivery_ms = FOREVER_MS if spooled else int(settings.send_timeout_sec * 1000)
    return {
        **librdkafka_config(settings),
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": settings.kafka_compression,
        "linger.ms": 25,
        "batch.size": 1_000_000,
        "batch.num.messages": 100_000,
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
        "delivery.timeout.ms": delivery_ms,
        # Java clients' partitioner: the same key lands in the same partition from any client.
        "partitioner": "murmur2_random",
        # With a spool, every acknowledgement moves its cursor (see tickstream.kafka.acks).
        "delivery.report.only.error": not spooled,
        "error_cb": on_error,
        # Once a second, the client's view of each broker connection: an outage ends when one
        # is up again (see TickProducer._on_stats).
        "statistics.interval.ms": 1000,
    }


# A Kafka transaction of closed bars left open longer than this (a crash, an outage) is aborted
# by the broker. Kafka's default; the broker's `transaction.max.timeout.ms` (default 15 minutes)
# must allow it, which the job checks at start.
BARS_TRANSACTION_TIMEOUT_MS = 60_000


def bars_producer_config(
    settings: Settings, transactional_id: str, on_error: Callable[[KafkaError], None]
) -> dict[str, Any]:
    """The job's producer of closed bars: one Kafka transaction per micro-batch. The same
    ``transactional_id`` for every run on one checkpoint fences the run it replaces."""
    return {
        **forming_producer_config(settings),
        "error_cb": on_error,
        "transactional.id": transactional_id,
        "transaction.timeout.ms": BARS_TRANSACTION_TIMEOUT_MS,
    }


def forming_producer_config(settings: Settings) -> dict[str, Any]:
    """The job's producer of forming bars: provisional, outside transactions, not waited for
    (and the base of the closed bars' producer)."""
    return {
        **librdkafka_config(settings),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "partitioner": "murmur2_random",  # as the tick producer and Java clients
    }


def reader_config(settings: Settings, group: str) -> dict[str, Any]:
    """A consumer that reads, never commits, and sees only committed transactions (the closed
    bars of a micro-batch appear all at once, and those of an aborted attempt never)."""
    return {
        **librdkafka_config(settings),
        "group.id": group,  # required by the client; never committed
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
    }
