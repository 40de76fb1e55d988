"""Talking to any Kafka cluster as an admin: readiness and the topics the pipeline needs."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from tickstream.config import Settings
from tickstream.kafka.clients import LIBRDKAFKA_LOG, librdkafka_config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int = 1
    config: dict[str, str] = field(default_factory=dict)


def _await_leaders(admin: AdminClient, topics: list[str], timeout: float) -> None:
    """A new topic is usable once every partition has a leader; wait for that."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        metadata = admin.list_topics(timeout=max(1.0, end - time.monotonic())).topics
        if all(
            name in metadata
            and metadata[name].partitions
            and all(p.leader >= 0 for p in metadata[name].partitions.values())
            for name in topics
        ):
            return
        time.sleep(0.1)


# The forming bars are of interest for minutes: an hour of them is kept.
LIVE_RETENTION_MS = 3_600_000


def pipeline_topics(settings: Settings) -> list[TopicSpec]:
    """The topics the pipeline reads and writes."""
    specs = [TopicSpec(settings.kafka_topic, partitions=3)]
    if settings.bars_topic:
        specs.append(TopicSpec(settings.bars_topic, partitions=3))
    if settings.bars_topic and settings.activity_bars_topic:
        # Made even with every kind off: turning one on later needs no new topic.
        specs.append(TopicSpec(settings.activity_bars_topic, partitions=3))
    if settings.bars_live_topic:
        specs.append(
            TopicSpec(
                settings.bars_live_topic,
                partitions=3,
                config={"retention.ms": str(LIVE_RETENTION_MS)},
            )
        )
    return specs


def check_access(settings: Settings, timeout: float = 15.0) -> None:
    """Fail fast, with one clear line, if Kafka refuses the credentials or lacks the topic."""
    from tickstream.errors import EnvironmentProblem, TickstreamError

    auth_errors: list[str] = []

    def on_error(err: KafkaError) -> None:
        if err.code() == KafkaError._AUTHENTICATION:
            auth_errors.append(err.str())

    conf: dict[str, Any] = {**librdkafka_config(settings), "error_cb": on_error}
    admin = AdminClient(conf)
    end = time.monotonic() + timeout
    while True:
        try:
            topics = admin.list_topics(timeout=min(3.0, max(0.5, end - time.monotonic()))).topics
            break
        except KafkaException:
            pass
        admin.poll(0)
        if auth_errors:
            raise credentials_error(settings)
        if time.monotonic() >= end:
            raise EnvironmentProblem(
                f"Kafka at {settings.kafka_bootstrap_servers} did not answer within {timeout:g}s",
                "start it (`tickstream kafka start`) or fix KAFKA_BOOTSTRAP_SERVERS",
            )
    if settings.kafka_topic not in topics:
        raise TickstreamError(
            f"topic '{settings.kafka_topic}' does not exist on {settings.kafka_bootstrap_servers}",
            "create it with `tickstream kafka create-topics`",
        )


def credentials_error(settings: Settings) -> Exception:
    from tickstream.errors import TickstreamError

    return TickstreamError(
        f"Kafka at {settings.kafka_bootstrap_servers} rejected the credentials of user "
        f"'{settings.kafka_sasl_username}' ({settings.kafka_sasl_mechanism})",
        "check KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD",
    )


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
    bootstrap: str,
    specs: Iterable[TopicSpec],
    timeout: float = 30.0,
    extra: dict[str, str] | None = None,
) -> tuple[list[str], list[str]]:
    """Create the topics that do not exist yet. Returns (created, warnings).

    An existing topic is left as it is; if it has fewer partitions than asked, a
    warning says so (adding partitions would move keys to other partitions).
    """
    admin = admin_client(bootstrap, extra)
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
    if created:
        _await_leaders(admin, created, timeout)
    for s in specs:
        if s.name in existing:
            have = len(existing[s.name].partitions)
            if have < s.partitions:
                warnings.append(
                    f"topic {s.name} has {have} partitions, fewer than the {s.partitions} expected"
                )
    return created, warnings


class KafkaWatch:
    """Says when the brokers stop answering and when they answer again (a background thread).

    The Spark job itself only sees an empty micro-batch during an outage; this makes it say
    why. ``check`` lists the cluster's topics with the job's own credentials every ``every_s``.
    """

    def __init__(
        self, settings: Settings, notify: Callable[[str], None], every_s: float = 5.0
    ) -> None:
        self.settings = settings
        self.notify = notify
        self.every_s = every_s
        self.down_since: float | None = None
        self._stop = threading.Event()
        self._admin = AdminClient(librdkafka_config(settings))
        self._thread = threading.Thread(target=self._run, name="kafka-watch", daemon=True)

    def __enter__(self) -> KafkaWatch:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.every_s + 5)

    def answers(self) -> bool:
        try:
            self._admin.list_topics(timeout=3.0)
        except KafkaException:
            return False
        return True

    def _run(self) -> None:
        where = self.settings.kafka_bootstrap_servers
        while not self._stop.wait(self.every_s):
            up = self.answers()
            if self._stop.is_set():
                return
            if not up and self.down_since is None:
                self.down_since = time.monotonic()
                self.notify(
                    f"kafka unreachable at {where}: no new ticks until it is back "
                    "(the job waits and resumes by itself)"
                )
            elif up and self.down_since is not None:
                gone = time.monotonic() - self.down_since
                self.down_since = None
                self.notify(f"kafka reachable again at {where} after {gone:.0f}s")
