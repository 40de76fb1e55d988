"""Talking to any Kafka cluster as an admin: readiness and the topics the pipeline needs."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from tickstream.config import Settings

log = logging.getLogger(__name__)

# librdkafka logs every refused connection and retry; what matters reaches us through
# error callbacks and delivery reports, so its own log lines stay out of the terminal.
LIBRDKAFKA_LOG = logging.getLogger("tickstream.kafka.librdkafka")
LIBRDKAFKA_LOG.addHandler(logging.NullHandler())
LIBRDKAFKA_LOG.propagate = False


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int = 1
    config: dict[str, str] = field(default_factory=dict)


def pipeline_topics(settings: Settings) -> list[TopicSpec]:
    """The topics the pipeline reads and writes."""
    return [TopicSpec(settings.kafka_topic, partitions=3)]


def admin_client(bootstrap: str, extra: dict[str, str] | None = None) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, **(extra or {})}, logger=LIBRDKAFKA_LOG)


def is_ready(bootstrap: str, timeout: float = 2.0) -> bool:
    """True when a broker answers an admin request (describe cluster) within ``timeout``."""
    try:
        admin = admin_client(bootstrap)  # keep a reference: a collected client cancels its futures
        admin.describe_cluster(request_timeout=timeout).result(timeout=timeout + 1)
    except Exception:  # KafkaException, or a future's TimeoutError while the broker boots
        return False
    return True


def wait_ready(bootstrap: str, deadline_s: float, alive: Callable[[], bool] | None = None) -> bool:
    """Poll until the broker answers or the deadline passes.

    ``alive`` may be a callable returning False once the broker process is gone, to stop early.
    """
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if is_ready(bootstrap):
            return True
        if alive is not None and not alive():
            return False
        time.sleep(0.25)
    return False


def ensure_topics(
    bootstrap: str, specs: Iterable[TopicSpec], timeout: float = 30.0
) -> tuple[list[str], list[str]]:
    """Create the topics that do not exist yet. Returns (created, warnings).

    An existing topic is left as it is; if it has fewer partitions than asked, a
    warning says so (adding partitions would move keys to other partitions).
    """
    admin = admin_client(bootstrap)
    specs = list(specs)
    existing = admin.list_topics(timeout=timeout).topics
    created: list[str] = []
    warnings: list[str] = []
    new = [
        NewTopic(
            s.name,
            num_partitions=s.partitions,
            replication_factor=s.replication_factor,
            config=dict(s.config),
        )
        for s in specs
        if s.name not in existing
    ]
    if new:
        for name, future in admin.create_topics(new, operation_timeout=timeout).items():
            try:
                future.result(timeout=timeout)
                created.append(name)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
    for s in specs:
        if s.name in existing:
            have = len(existing[s.name].partitions)
            if have < s.partitions:
                warnings.append(
                    f"topic {s.name} has {have} partitions, fewer than the {s.partitions} expected"
                )
    return created, warnings
