"""Sources -> Kafka: idempotent, asynchronous, batched, and every message accounted for.

confluent-kafka (librdkafka) with ``enable.idempotence`` and ``acks=all``: retries
never duplicate or reorder a partition's messages. Messages are queued without
waiting; librdkafka batches and compresses them. Only failed deliveries call back
into Python, so after the final flush::

    acknowledged = sent - failed - still queued (0 once flush returned in time)

Heartbeats go to every partition of the topic at a fixed wall-clock interval, and
once more at the end, carrying the source's event-time clock.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from tickstream.config import Settings
from tickstream.errors import EnvironmentProblem, TickstreamError
from tickstream.kafka_admin import LIBRDKAFKA_LOG, client_security, credentials_error
from tickstream.sources.base import TickSource
from tickstream.ticks.codec import encode_heartbeat
from tickstream.ticks.schema import Heartbeat

log = logging.getLogger(__name__)

# Transport errors worth telling the user about while they last (the producer keeps retrying).
_OUTAGE_CODES = {KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._RESOLVE}


@dataclass
class ProduceStats:
    sent: int = 0
    failed: int = 0
    undelivered: int = 0
    heartbeats: int = 0
    heartbeats_failed: int = 0
    bad_rows: int = 0
    elapsed_s: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def acknowledged(self) -> int:
        return self.sent - self.failed - self.undelivered

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.undelivered == 0 and self.heartbeats_failed == 0

    def summary(self) -> str:
        rate = self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0
        text = (
            f"sent {self.sent:,} ticks, acknowledged {self.acknowledged:,}, "
            f"failed {self.failed + self.undelivered:,}, heartbeats {self.heartbeats:,}"
        )
        if self.bad_rows:
            text += f", bad rows skipped {self.bad_rows:,}"
        return text + f" in {self.elapsed_s:.1f}s ({rate:,.0f} ticks/s)"


def producer_config(settings: Settings, on_error: Callable[[KafkaError], None]) -> dict[str, Any]:
    return {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        **client_security(settings),
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": settings.kafka_compression,
        "linger.ms": 25,
        "batch.size": 1_000_000,
        "batch.num.messages": 100_000,
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
        "delivery.timeout.ms": int(settings.send_timeout_sec * 1000),
        # Java clients' partitioner: the same key lands in the same partition from any client.
        "partitioner": "murmur2_random",
        "delivery.report.only.error": True,
        "error_cb": on_error,
        "logger": LIBRDKAFKA_LOG,
        # Once a second, the client's view of each broker connection: an outage ends when one
        # is up again (see TickProducer._on_stats).
        "statistics.interval.ms": 1000,
    }


class TickProducer:
    """Publishes a source's ticks and heartbeats to one topic."""

    def __init__(
        self,
        settings: Settings,
        *,
        stop: threading.Event | None = None,
        notify: Callable[[str], None] = print,
    ) -> None:
        self.settings = settings
        self.topic = settings.kafka_topic
        self.stop = stop or threading.Event()
        self.notify = notify
        self.producer_id = uuid.uuid4().hex[:12]
        self.stats = ProduceStats()
        self._outage_since: float | None = None
        self._broker_up = False  # set by the statistics callback during an outage
        self._auth_failed = False
        self._producer = Producer(
            {**producer_config(settings, self._on_error), "stats_cb": self._on_stats}
        )
        self.partitions: list[int] = []

    # --- callbacks (run inside poll/flush) ------------------------------------------------------

    def _on_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._AUTHENTICATION:
            self._auth_failed = True
            self.stop.set()
        elif err.code() in _OUTAGE_CODES:
            if self._outage_since is None:
                self._outage_since = time.monotonic()
                self._broker_up = False
                self.notify(
                    f"kafka unreachable at {self.settings.kafka_bootstrap_servers} "
                    f"({err.str()}); retrying, messages are kept for "
                    f"{self.settings.send_timeout_sec:g}s"
                )
        elif err.fatal():
            self._record(f"fatal producer error: {err.str()}")
            self.stop.set()
        else:
            log.warning("kafka: %s", err.str())

    def _on_tick_failed(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.stats.failed += 1
            self._record(f"tick to {msg.topic()}[{msg.partition()}] failed: {err.str()}")

    def _on_heartbeat_failed(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.stats.heartbeats_failed += 1
            self._record(f"heartbeat to {msg.topic()}[{msg.partition()}] failed: {err.str()}")

    def _record(self, error: str) -> None:
        if len(self.stats.errors) < 20:
            self.stats.errors.append(error)

    def _on_stats(self, stats_json: str) -> None:
        if self._outage_since is None:
            return
        brokers = json.loads(stats_json).get("brokers", {}).values()
        if any(b.get("nodeid", -1) >= 0 and b.get("state") == "UP" for b in brokers):
            self._broker_up = True

    def _check_recovered(self) -> None:
        if self._outage_since is not None and self._broker_up:
            # A connection to a broker is up again: the queue drains from here.
            down = time.monotonic() - self._outage_since
            self.notify(f"kafka reachable again after {down:.1f}s")
            self._outage_since = None
            self._broker_up = False

    # --- connecting -----------------------------------------------------------------------------

    def connect(self, deadline_s: float = 60.0) -> list[int]:
        """Wait until the broker answers and the topic exists; return its partitions."""
        bootstrap = self.settings.kafka_bootstrap_servers
        end = time.monotonic() + deadline_s
        announced = False
        while True:
            remaining = end - time.monotonic()
            try:
                metadata = self._producer.list_topics(
                    self.topic, timeout=max(0.5, min(2.0, remaining))
                )
            except KafkaException:
                metadata = None
            self._producer.poll(0)
            if self._auth_failed:
                raise credentials_error(self.settings)
            if metadata is not None and metadata.brokers:
                topic = metadata.topics.get(self.topic)
                if topic is not None and topic.error is None and topic.partitions:
                    self.partitions = sorted(topic.partitions)
                    self._outage_since = None
                    return self.partitions
                if (
                    topic is not None
                    and topic.error is not None
                    and topic.error.code()
                    in (
                        KafkaError.UNKNOWN_TOPIC_OR_PART,
                        KafkaError._UNKNOWN_TOPIC,
                    )
                ):
                    raise TickstreamError(
                        f"topic '{self.topic}' does not exist on {bootstrap}",
                        "create it with `tickstream kafka create-topics` "
                        "(`tickstream kafka start` does it for the local broker)",
                    )
            if not announced:
                self.notify(f"waiting for Kafka at {bootstrap} (up to {deadline_s:g}s) ...")
                announced = True
            if time.monotonic() >= end:
                raise EnvironmentProblem(
                    f"Kafka at {bootstrap} did not answer within {deadline_s:g}s",
                    "start it (`tickstream kafka start`) or fix KAFKA_BOOTSTRAP_SERVERS",
                )
            if self.stop.wait(0.5):
                if self._auth_failed:
                    raise credentials_error(self.settings)
                raise TickstreamError("stopped while waiting for Kafka")

    # --- producing ------------------------------------------------------------------------------

    def _send(self, keys: Sequence[str], payloads: Sequence[bytes]) -> None:
        produce = self._producer.produce
        poll = self._producer.poll
        topic = self.topic
        on_fail = self._on_tick_failed
        sent = 0
        try:
            for key, value in zip(keys, payloads, strict=True):
                while True:
                    try:
                        produce(topic, value, key, on_delivery=on_fail)
                        break
                    except BufferError:
                        # The local queue is full: let librdkafka drain it (or time out).
                        poll(0.05)
                        if self.stop.is_set() and self._outage_since is not None:
                            return
                sent += 1
        finally:
            self.stats.sent += sent

    def heartbeat(self, clock_ms: int | None) -> None:
        """Send the event-time clock to every partition."""
        if clock_ms is None or not self.partitions:
            return
        payload = encode_heartbeat(Heartbeat(self.producer_id, clock_ms))
        for partition in self.partitions:
            while True:
                try:
                    self._producer.produce(
                        self.topic,
                        payload,
                        partition=partition,
                        on_delivery=self._on_heartbeat_failed,
                    )
                    break
                except BufferError:
                    self._producer.poll(0.05)
            self.stats.heartbeats += 1

    def run(
        self,
        source: TickSource,
        on_progress: Callable[[ProduceStats, int], None] | None = None,
    ) -> ProduceStats:
        """Produce until the source ends or ``stop`` is set, then flush. Returns the counts."""
        if not self.partitions:
            self.connect()
        interval = self.settings.heartbeat_interval_sec
        started = time.monotonic()
        next_beat = started + interval
        try:
            for chunk in source.chunks():
                if len(chunk):
                    self._send(chunk.symbol, chunk.encode())
                now = time.monotonic()
                if interval and now >= next_beat:
                    self.heartbeat(source.clock_ms())
                    next_beat = now + interval
                self._producer.poll(0)
                self._check_recovered()
                if on_progress is not None:
                    on_progress(self.stats, len(self._producer))
                if self.stop.is_set():
                    break
            if interval:
                self.heartbeat(source.clock_ms())
        finally:
            self.stats.bad_rows = source.bad_rows
            self._finish(started)
        return self.stats

    def _finish(self, started: float) -> None:
        remaining = self._producer.flush(self.settings.send_timeout_sec + 5)
        self._producer.poll(0)
        self.stats.undelivered = remaining
        if remaining:
            self._record(f"{remaining} messages were still undelivered at exit")
        self.stats.elapsed_s = time.monotonic() - started

    def close(self) -> None:
        self._producer.flush(1)
