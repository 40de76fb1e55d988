"""The bars topics, followed from their end and fanned out to the page's event streams.

One Kafka consumer (no consumer group: it reads, never commits) follows BARS_TOPIC and
BARS_LIVE_TOPIC from their newest messages. Each message goes to the event streams that asked
for its symbol; the forming bars of each symbol are kept, so a page that connects gets the
current candle at once instead of waiting for the next micro-batch.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_END, Consumer, KafkaError, TopicPartition

from tickstream.config import Settings
from tickstream.kafka.clients import reader_config

log = logging.getLogger(__name__)

FORMING_KEPT = 10  # forming windows kept per symbol (the watermark's span, a few windows)


@dataclass
class Subscriber:
    symbol: str
    queue: asyncio.Queue[dict[str, Any]]
    loop: asyncio.AbstractEventLoop


@dataclass
class LiveBars:
    """What the feed knows: forming bars per symbol, the symbols seen, the subscribers."""

    forming: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)
    subscribers: list[Subscriber] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def symbols(self) -> set[str]:
        with self.lock:
            return set(self.forming)

    def current(self, symbol: str) -> list[dict[str, Any]]:
        """The symbol's forming bars, oldest first."""
        with self.lock:
            windows = self.forming.get(symbol, {})
            return [windows[k] for k in sorted(windows)]

    def add(self, bar: dict[str, Any]) -> None:
        """Record a bar and hand it to the symbol's subscribers."""
        symbol, start = bar["symbol"], int(bar["window_start_ms"])
        with self.lock:
            windows = self.forming.setdefault(symbol, {})
            if bar.get("provisional"):
                windows[start] = bar
                for old in sorted(windows)[:-FORMING_KEPT]:
                    del windows[old]
            else:  # closed: it and every window before it are final
                for old in [k for k in windows if k <= start]:
                    del windows[old]
            targets = [s for s in self.subscribers if s.symbol == symbol]
        for sub in targets:
            sub.loop.call_soon_threadsafe(sub.queue.put_nowait, bar)

    def subscribe(self, symbol: str) -> Subscriber:
        sub = Subscriber(symbol, asyncio.Queue(), asyncio.get_running_loop())
        with self.lock:
            self.subscribers.append(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        with self.lock:
            if sub in self.subscribers:
                self.subscribers.remove(sub)


def parse_bar(value: bytes | None) -> dict[str, Any] | None:
    """A bar message, or None for anything that is not one (logged, never fatal)."""
    try:
        bar = json.loads(value or b"")
    except ValueError:
        return None
    if not isinstance(bar, dict) or not {"symbol", "window_start_ms"} <= bar.keys():
        return None
    return bar


class LiveFeed:
    """The consumer thread."""

    def __init__(self, settings: Settings, bars: LiveBars) -> None:
        self.settings = settings
        self.bars = bars
        self.topics = [t for t in (settings.bars_topic, settings.bars_live_topic) if t]
        self.stop = threading.Event()
        self.connected = False
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name="bars-feed", daemon=True)

    def start(self) -> None:
        if self.topics:
            self._thread.start()

    def close(self) -> None:
        self.stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _on_error(self, err: KafkaError) -> None:
        self.connected = False
        self.error = err.str()

    def _consumer(self) -> Consumer:
        # read_committed: a closed bar appears when its micro-batch's transaction commits.
        return Consumer(
            {
                **reader_config(self.settings, "tickstream-dashboard"),
                "enable.partition.eof": False,
                "error_cb": self._on_error,
            }
        )

    def _assign(self, consumer: Consumer) -> bool:
        """Every partition of the bars topics, from their end. False until they exist."""
        try:
            metadata = consumer.list_topics(timeout=5).topics
        except Exception as exc:  # KafkaException: the broker is not answering yet
            self.error = str(exc)
            return False
        parts = [
            TopicPartition(topic, p, OFFSET_END)
            for topic in self.topics
            if topic in metadata and metadata[topic].error is None
            for p in metadata[topic].partitions
        ]
        if not parts:
            self.error = f"no topic {', '.join(self.topics)} yet"
            return False
        consumer.assign(parts)
        return True

    def _run(self) -> None:
        consumer = self._consumer()
        try:
            while not self.stop.is_set() and not self._assign(consumer):
                self.stop.wait(2.0)
            while not self.stop.is_set():
                msg = consumer.poll(0.5)
                if msg is None:
                    continue
                error = msg.error()
                if error is not None:
                    self.error = error.str()
                    continue
                self.connected, self.error = True, None
                bar = parse_bar(msg.value())
                if bar is None:
                    log.warning("skipped a message that is not a bar at %s", _where(msg))
                    continue
                self.bars.add(bar)
        finally:
            consumer.close()


def _where(msg: Any) -> str:
    return f"{msg.topic()}[{msg.partition()}]@{msg.offset()}"
