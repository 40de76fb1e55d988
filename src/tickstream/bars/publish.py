"""Bars on Kafka: every closed bar to BARS_TOPIC, the forming bars to BARS_LIVE_TOPIC.

A closed bar is published after the micro-batch's lake commits and before the job records the
batch as done; a batch that runs again after a crash publishes its bars again. So a consumer
gets every closed bar **at least once**, each identified by ``(symbol, window_start)`` with the
same content every time: dropping a repeat by that key gives exactly the lake's bars.
``batch_id`` says which micro-batch closed it.

The forming bars are the open windows a micro-batch changed, flagged ``provisional``: a window
moves at the trigger's pace until its closed bar (same key, ``provisional: false``) replaces it.
They are sent without waiting for the broker's acknowledgement: a lost one is superseded by the
next. Key = symbol on both topics, so one symbol's bars stay in order in one partition.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from tickstream.config import Settings
from tickstream.errors import TickstreamError
from tickstream.kafka.clients import FOREVER_MS, librdkafka_config

SCHEMA_VERSION = 1
OUTAGE_NOTICE_S = 10.0


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def bar_message(bar: Mapping[str, Any], *, provisional: bool, batch_id: int) -> dict[str, Any]:
    """A bar in the topic's JSON contract: the bar table's columns (times as ISO-8601 UTC and
    as epoch milliseconds), ``provisional``, ``batch_id`` and ``schema_version``."""
    start: datetime = bar["window_start"]
    end: datetime = bar["window_end"]
    return {
        "schema_version": SCHEMA_VERSION,
        "symbol": bar["symbol"],
        "window_start": _iso(start),
        "window_end": _iso(end),
        "window_start_ms": _ms(start),
        "window_end_ms": _ms(end),
        "open": bar["open"],
        "high": bar["high"],
        "low": bar["low"],
        "close": bar["close"],
        "volume": bar["volume"],
        "vwap": bar["vwap"],
        "trade_count": bar["trade_count"],
        "price_avg": bar["price_avg"],
        "pct_change": bar["pct_change"],
        "date": bar["date"],
        "provisional": provisional,
        "batch_id": batch_id,
    }


def encode(message: Mapping[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode()


class BarPublisher:
    """The job's Kafka producer for bars (idempotent, acks=all)."""

    def __init__(
        self,
        settings: Settings,
        *,
        stopping: threading.Event,
        notify: Callable[[str], None],
    ) -> None:
        self.settings = settings
        self.closed_topic = settings.bars_topic
        self.live_topic = settings.bars_live_topic
        self.stopping = stopping
        self.notify = notify
        self.published = 0
        self.forming_failed = 0
        self._failed: list[Message] = []
        self._producer = Producer(
            {
                **librdkafka_config(settings),
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                # A closed bar is retried until the broker takes it (or the job stops, and the
                # batch runs again on restart), never dropped after a timeout.
                "delivery.timeout.ms": FOREVER_MS,
                "partitioner": "murmur2_random",  # as the tick producer and Java clients
            }
        )

    @property
    def topics(self) -> list[str]:
        return [t for t in (self.closed_topic, self.live_topic) if t]

    def check_topics(self, timeout: float = 15.0) -> None:
        """One line, before the query starts, for a bars topic that does not exist."""
        if not self.topics:
            return
        try:
            existing = self._producer.list_topics(timeout=timeout).topics
        except Exception as exc:  # KafkaException: no broker answered
            raise TickstreamError(
                f"cannot list the topics at {self.settings.kafka_bootstrap_servers}: {exc}",
                "check KAFKA_BOOTSTRAP_SERVERS and that the broker runs",
            ) from None
        for name in self.topics:
            info = existing.get(name)
            if info is None or info.error is not None:
                which = "BARS_TOPIC" if name == self.closed_topic else "BARS_LIVE_TOPIC"
                raise TickstreamError(
                    f"topic '{name}' ({which}) does not exist on "
                    f"{self.settings.kafka_bootstrap_servers}",
                    f"create it with `tickstream kafka create-topics`, or set {which}=off",
                )

    def publish_closed(self, bars: Iterable[Mapping[str, Any]], batch_id: int) -> None:
        """Send the batch's closed bars and wait until the broker has them all.

        Waits through a broker outage (saying so once); raises if the job is told to stop
        first, so the batch is not recorded as done and runs again on restart.
        """
        if not self.closed_topic:
            return
        sent = 0
        for bar in bars:
            self._produce_closed(self.closed_topic, bar, batch_id)
            sent += 1
        if not sent:
            return
        started = time.monotonic()
        told = False
        while self._producer.flush(1.0):
            if self.stopping.is_set():
                raise BarsNotPublishedError(
                    f"stopping before the bars of batch {batch_id} reached {self.closed_topic}"
                )
            if not told and time.monotonic() - started > OUTAGE_NOTICE_S:
                self.notify(
                    f"waiting for Kafka to take the bars of batch {batch_id} "
                    f"({self.closed_topic} at {self.settings.kafka_bootstrap_servers})"
                )
                told = True
        failed, self._failed = self._failed, []
        if failed:  # a permanent error (authorization, a deleted topic): the batch fails
            first = failed[0].error()
            raise BarsNotPublishedError(
                f"{len(failed)} bars of batch {batch_id} were refused by {self.closed_topic}: "
                f"{first.str() if first else '?'}"
            )
        if told:
            self.notify(f"Kafka took the bars of batch {batch_id} after {_since(started)}")
        self.published += sent

    def publish_forming(self, bars: Iterable[Mapping[str, Any]], batch_id: int) -> None:
        """Send the forming bars without waiting: the next batch's supersede them."""
        if not self.live_topic:
            return
        for bar in bars:
            try:
                self._producer.produce(
                    self.live_topic,
                    encode(bar_message(bar, provisional=True, batch_id=batch_id)),
                    bar["symbol"],
                    on_delivery=self._on_forming,
                )
            except BufferError:
                self.forming_failed += 1
        self._producer.poll(0)

    def close(self, timeout: float = 5.0) -> None:
        self._producer.flush(timeout)

    def _produce_closed(self, topic: str, bar: Mapping[str, Any], batch_id: int) -> None:
        """Queue a closed bar, waiting for room in the client's queue if it is full."""
        value = encode(bar_message(bar, provisional=False, batch_id=batch_id))
        while True:
            try:
                self._producer.produce(topic, value, bar["symbol"], on_delivery=self._on_closed)
                return
            except BufferError:
                self._producer.poll(0.1)

    def _on_closed(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._failed.append(msg)

    def _on_forming(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.forming_failed += 1


class BarsNotPublishedError(RuntimeError):
    """The batch's closed bars did not all reach the bars topic: the batch runs again."""


def _since(started: float) -> str:
    return f"{time.monotonic() - started:.0f}s"
