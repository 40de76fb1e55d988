"""Bars on Kafka: every closed bar to BARS_TOPIC, the forming bars to BARS_LIVE_TOPIC.

Closed bars are published **exactly once** for ``read_committed`` consumers: after the
micro-batch's lake commits and before the job records the batch as done, in one Kafka
transaction per batch that also commits the batch's id (as the offset of a consumer group of
the checkpoint). The transactional id is the checkpoint's, so a restart fences the run it
replaces; at start the job reads the last committed batch id back, and a batch that runs again
after its transaction committed publishes nothing. ``batch_id`` says which micro-batch closed a
bar. The protocol and each crash point: docs/live-view.md.

The forming bars are the open windows a micro-batch changed, flagged ``provisional``, outside
transactions: a window moves at the trigger's pace until its closed bar (same key,
``provisional: false``) replaces it. They are sent without waiting for the broker's
acknowledgement: a lost one is superseded by the next. Key = symbol on both topics, so one
symbol's bars stay in order in one partition.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from tickstream.bars.activity import ActivityBar, bar_row
from tickstream.config import Settings
from tickstream.errors import TickstreamError
from tickstream.kafka.clients import (
    BARS_TRANSACTION_TIMEOUT_MS,
    bars_producer_config,
    forming_producer_config,
    reader_config,
)

SCHEMA_VERSION = 1
OUTAGE_NOTICE_S = 10.0
# Each bar message's header naming the checkpoint (the query's id) that published it: a
# reader of a topic several lakes published to (reconcile) tells their bars apart by it.
CHECKPOINT_HEADER = "tickstream-checkpoint"
# The partition of BARS_TOPIC under which the checkpoint's group records the last published
# batch (any partition would do: the record is the group's, not a position in the topic).
MARK_PARTITION = 0
# How long one call of the transaction API waits before the caller retries it.
TRANSACTION_CALL_S = 10.0
# How long past its own timeout a transaction call may run before its producer is replaced.
HANG_MARGIN_S = 5.0
_FENCED = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}
# Errors another attempt would meet again (anything else is waited through: an outage).
_REFUSED = {
    KafkaError.MSG_SIZE_TOO_LARGE,
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    KafkaError.GROUP_AUTHORIZATION_FAILED,
    KafkaError.INVALID_RECORD,
    KafkaError.RECORD_LIST_TOO_LARGE,
}
_T = TypeVar("_T")


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ms(value: datetime) -> int:
    """Epoch milliseconds, in integer arithmetic (no float rounding of the instant)."""
    return (value - EPOCH) // timedelta(milliseconds=1)


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


def activity_message(bar: ActivityBar, batch_id: int) -> dict[str, Any]:
    """A tick, volume or dollar bar in ACTIVITY_BARS_TOPIC's JSON contract
    (``activity_bar.schema.json``)."""
    return activity_row_message(bar_row(bar), kind=bar.kind, batch_id=batch_id)


def activity_row_message(row: Mapping[str, Any], *, kind: str, batch_id: int) -> dict[str, Any]:
    """A row of a kind's table (``bar_row``, or one read from the lake) in the topic's contract:
    its columns (times as ISO-8601 UTC and as epoch milliseconds), ``kind``, ``batch_id`` and
    ``schema_version``."""
    first: datetime = row["first_time"]
    last: datetime = row["last_time"]
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": kind,
        **row,
        "first_time": _iso(first),
        "last_time": _iso(last),
        "first_time_ms": _ms(first),
        "last_time_ms": _ms(last),
        "batch_id": batch_id,
    }


class Record(NamedTuple):
    topic: str
    key: str
    value: bytes


def encode(message: Mapping[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode()


class BarPublisher:
    """The job's Kafka producers: closed bars in one transaction per micro-batch, forming bars
    outside transactions.

    The transactional id and the record of the last published batch are the checkpoint's
    (:meth:`open`): a run on the same checkpoint fences the one it replaces, and a batch that
    runs again after its transaction committed publishes nothing.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        stopping: threading.Event,
        notify: Callable[[str], None],
    ) -> None:
        self.settings = settings
        self.closed_topic = settings.bars_topic
        # Tick, volume and dollar bars go in the closed bars' transactions (whose record of the
        # last published batch is on BARS_TOPIC): only with BARS_TOPIC on, and a kind on.
        self.activity_topic = (
            settings.activity_bars_topic
            if settings.bars_topic and settings.activity_kinds
            else None
        )
        self.live_topic = settings.bars_live_topic
        self.stopping = stopping
        self.notify = notify
        self.published = 0
        self.forming_failed = 0
        self.last_published: int | None = None  # set by open(): -1 when none yet
        self._failed: list[Message] = []
        self._fatal: KafkaError | None = None  # the closed bars' producer's, if it failed
        self._headers: list[tuple[str, str | bytes | None]] = []
        self._closed: Producer | None = None
        self._name = ""  # the closed bars' transactional id
        self._generation = 0  # of the closed bars' producer, replaced if it hangs
        self._marker: Consumer | None = None
        self._forming = Producer(forming_producer_config(settings)) if self.live_topic else None

    @property
    def topics(self) -> list[str]:
        return [t for t in (self.closed_topic, self.activity_topic, self.live_topic) if t]

    @property
    def opened(self) -> bool:
        return self.last_published is not None

    def check_topics(self, timeout: float = 15.0) -> None:
        """One line, before the query starts, for a bars topic that does not exist."""
        if not self.topics:
            return
        lister = Consumer(reader_config(self.settings, "tickstream-bars-check"))
        try:
            existing = lister.list_topics(timeout=timeout).topics
        except Exception as exc:  # KafkaException: no broker answered
            raise TickstreamError(
                f"cannot list the topics at {self.settings.kafka_bootstrap_servers}: {exc}",
                "check KAFKA_BOOTSTRAP_SERVERS and that the broker runs",
            ) from None
        finally:
            lister.close()
        for name in self.topics:
            info = existing.get(name)
            if info is None or info.error is not None:
                which = {
                    self.closed_topic: "BARS_TOPIC",
                    self.activity_topic: "ACTIVITY_BARS_TOPIC",
                }.get(name, "BARS_LIVE_TOPIC")
                raise TickstreamError(
                    f"topic '{name}' ({which}) does not exist on "
                    f"{self.settings.kafka_bootstrap_servers}",
                    f"create it with `tickstream kafka create-topics`, or set {which}=off",
                )

    def open(self, checkpoint_id: str) -> None:
        """Take the checkpoint's transactional id (fencing any producer that held it, and
        finishing or aborting its open transaction), then read which batch last committed."""
        if not self.closed_topic:
            self.last_published = -1
            return
        name = transactional_id(checkpoint_id)
        self._closed = self._transactional_producer(name)
        self._headers = [(CHECKPOINT_HEADER, checkpoint_id.encode())]
        self._marker = Consumer(reader_config(self.settings, name))
        marker = self._marker
        mark = TopicPartition(self.closed_topic, MARK_PARTITION)
        found = self._until_done(
            lambda: marker.committed([mark], timeout=5.0)[0], "read its last published batch"
        )
        self.last_published = found.offset - 1 if found.offset >= 0 else -1

    def _transactional_producer(self, name: str) -> Producer:
        """A producer holding the transactional id ``name``: its ``init_transactions`` fences
        any other holder and finishes or aborts that one's open transaction."""
        self._generation += 1
        generation = self._generation

        def on_error(err: KafkaError) -> None:  # an abandoned producer's errors are not ours
            if generation == self._generation:
                self._on_error(err)

        self._fatal = None
        producer = Producer(bars_producer_config(self.settings, name, on_error))
        self._until_done(lambda: producer.init_transactions(5.0), "start its Kafka transactions")
        self._name = name
        return producer

    def publish_closed(
        self,
        bars: Sequence[Mapping[str, Any]],
        batch_id: int,
        activity: Sequence[ActivityBar] = (),
    ) -> None:
        """Send the batch's closed bars (and its tick, volume and dollar bars) in one
        transaction, committed with the batch's id.

        A batch whose transaction already committed (it runs again after a crash between the
        commit and the batch's record) publishes nothing. Waits through a broker outage
        (saying so once), aborting and retrying the transaction if it fails; raises
        :class:`BarsNotPublishedError` if the job is told to stop first (the batch is not
        recorded and runs again on restart), :class:`BarsFencedError` if another run of this
        checkpoint took the transactional id.
        """
        records = self._records(bars, activity, batch_id)
        if not records:
            return
        assert self._closed is not None, "open() first"
        assert self.last_published is not None
        if batch_id <= self.last_published:
            return  # committed before the crash that re-runs this batch
        started = time.monotonic()
        told = False
        while True:
            try:
                self._transaction(records, batch_id)
                break
            except KafkaException as exc:
                err: KafkaError = exc.args[0]
                self._give_up_on(err, batch_id)
            if self.stopping.is_set():
                self._abort(batch_id)
                raise BarsNotPublishedError(
                    f"stopping before the bars of batch {batch_id} reached {self.closed_topic}"
                )
            if not told and time.monotonic() - started > OUTAGE_NOTICE_S:
                self.notify(
                    f"waiting for Kafka to take the bars of batch {batch_id} "
                    f"({self.closed_topic} at {self.settings.kafka_bootstrap_servers})"
                )
                told = True
            self._abort(batch_id)
            time.sleep(0.5)
        if told:
            self.notify(f"Kafka took the bars of batch {batch_id} after {_since(started)}")
        self.last_published = batch_id
        self.published += len(bars)  # the time bars on BARS_TOPIC (the metric's meaning)

    def _records(
        self, bars: Sequence[Mapping[str, Any]], activity: Sequence[ActivityBar], batch_id: int
    ) -> list[Record]:
        """The batch's closed-bar messages: (topic, key, value)."""
        if not self.closed_topic:
            return []
        records = [
            Record(
                self.closed_topic,
                bar["symbol"],
                encode(bar_message(bar, provisional=False, batch_id=batch_id)),
            )
            for bar in bars
        ]
        if self.activity_topic:
            records += [
                Record(self.activity_topic, bar.symbol, encode(activity_message(bar, batch_id)))
                for bar in activity
            ]
        return records

    def _transaction(self, records: Sequence[Record], batch_id: int) -> None:
        """One attempt: begin, send every bar, commit the batch's id with them, commit."""
        producer, topic = self._closed, self.closed_topic
        assert producer is not None
        assert self._marker is not None
        assert topic is not None
        producer.begin_transaction()
        self._failed = []
        for record in records:
            self._produce_closed(producer, record)
        while self._flush(producer):  # each bar is delivered or fails within 60 s
            if self.stopping.is_set():
                raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "stopping"))
        if self._failed:  # the transaction cannot commit now: the caller aborts it
            first = self._failed[0].error()
            raise KafkaException(first or KafkaError(KafkaError._FAIL, "a bar was not sent"))
        # The batch's id goes into the same transaction, as the next "offset" of a consumer
        # group of this checkpoint: it becomes visible exactly when the bars do.
        mark = TopicPartition(topic, MARK_PARTITION, batch_id + 1)
        self._send_offsets(producer, mark, self._marker.consumer_group_metadata())
        producer.commit_transaction(TRANSACTION_CALL_S)

    def _send_offsets(self, producer: Producer, mark: TopicPartition, group: Any) -> None:
        """``send_offsets_to_transaction``, with the deadline librdkafka does not keep.

        librdkafka (2.16) ignores this call's timeout, and after a broker outage it can wait for
        ever for a group coordinator it still has cached as gone (librdkafka issues 5456 and
        5511; here, a broker stopped mid-transaction: tried). So the call runs in its own
        thread; if it outlives its timeout, the producer is left to that thread and replaced
        by a new one with the same transactional id, whose ``init_transactions`` fences the
        stuck one and aborts its transaction. The attempt then fails and is retried."""
        done = threading.Event()
        raised: list[BaseException] = []

        def call() -> None:
            try:
                producer.send_offsets_to_transaction([mark], group, TRANSACTION_CALL_S)
            except BaseException as exc:  # handed to the caller's thread
                raised.append(exc)
            finally:
                done.set()

        threading.Thread(target=call, name="bars-send-offsets", daemon=True).start()
        if not done.wait(TRANSACTION_CALL_S + HANG_MARGIN_S):
            self.notify(
                "the bars' Kafka producer did not return from send_offsets_to_transaction "
                f"within {TRANSACTION_CALL_S + HANG_MARGIN_S:.0f}s (a librdkafka bug after an "
                "outage); replaced it with a new one, which aborts the attempt; retrying"
            )
            self._closed = self._transactional_producer(self._name)
            raise KafkaException(
                KafkaError(KafkaError._TIMED_OUT, "send_offsets_to_transaction did not return")
            )
        if raised:
            raise raised[0]

    def _give_up_on(self, err: KafkaError, batch_id: int) -> None:
        """Raise for an error that another attempt cannot get past; return to retry."""
        if err.code() in _FENCED:
            raise BarsFencedError(self.closed_topic or "", batch_id)
        if err.fatal():
            raise TickstreamError(
                f"the producer of the bars of batch {batch_id} failed for good on "
                f"{self.closed_topic}: {err.str()}",
                "the batch was not recorded and runs again on restart",
            )
        if err.code() in _REFUSED:
            raise BarsNotPublishedError(
                f"the bars of batch {batch_id} were refused by {self.closed_topic}: {err.str()}"
            )

    def _abort(self, batch_id: int) -> None:
        """Abort the open transaction, if any (retried through an outage by the caller)."""
        assert self._closed is not None
        try:
            self._closed.abort_transaction(TRANSACTION_CALL_S)
        except KafkaException as exc:
            err: KafkaError = exc.args[0]
            if err.fatal() or err.code() in _FENCED:
                self._give_up_on(err, batch_id)
            # No transaction open, or the coordinator unreachable: the next attempt's
            # begin_transaction (or the broker's timeout) settles it.

    def _until_done(self, call: Callable[[], _T], what: str) -> _T:
        """``call`` retried through an outage; one line for an error Kafka will not retry."""
        started = time.monotonic()
        told = False
        while True:
            try:
                return call()
            except KafkaException as exc:
                err: KafkaError = exc.args[0]
                if err.code() == KafkaError.INVALID_TRANSACTION_TIMEOUT:
                    raise TickstreamError(
                        f"the brokers at {self.settings.kafka_bootstrap_servers} refuse a "
                        f"transaction timeout of {BARS_TRANSACTION_TIMEOUT_MS // 1000}s for "
                        f"the bars on {self.closed_topic}: their transaction.max.timeout.ms "
                        "is lower",
                        "raise the brokers' transaction.max.timeout.ms to at least "
                        f"{BARS_TRANSACTION_TIMEOUT_MS} (Kafka's default is 900000), or set "
                        "BARS_TOPIC=off",
                    ) from None
                if not err.retriable() or self.stopping.is_set():
                    raise TickstreamError(
                        f"the bars job could not {what} on {self.closed_topic}: {err.str()}",
                        "check the broker and the job's ACLs (transactional id and group "
                        "'tickstream-bars-*')",
                    ) from None
                if not told and time.monotonic() - started > OUTAGE_NOTICE_S:
                    self.notify(f"waiting for Kafka to {what} ({self.closed_topic})")
                    told = True

    def publish_forming(self, bars: Iterable[Mapping[str, Any]], batch_id: int) -> None:
        """Send the forming bars without waiting: the next batch's supersede them."""
        if self._forming is None or not self.live_topic:
            return
        for bar in bars:
            try:
                self._forming.produce(
                    self.live_topic,
                    encode(bar_message(bar, provisional=True, batch_id=batch_id)),
                    bar["symbol"],
                    on_delivery=self._on_forming,
                )
            except BufferError:
                self.forming_failed += 1
        self._forming.poll(0)

    def close(self, timeout: float = 5.0) -> None:
        if self._forming is not None:
            self._forming.flush(timeout)
        if self._marker is not None:
            self._marker.close()
            self._marker = None

    def _produce_closed(self, producer: Producer, record: Record) -> None:
        """Queue a closed bar, waiting for room in the client's queue if it is full."""
        while True:
            try:
                producer.produce(
                    record.topic,
                    record.value,
                    record.key,
                    headers=self._headers,
                    on_delivery=self._on_closed,
                )
                return
            except BufferError:
                producer.poll(0.1)

    def _flush(self, producer: Producer) -> int:
        """Wait up to a second for the queue to empty; how many messages are left."""
        try:
            return int(producer.flush(1.0))
        except SystemError:
            # confluent-kafka's flush() fails without an exception of its own once the
            # producer has a fatal error (fenced): the error callback has it.
            raise KafkaException(
                self._fatal or KafkaError(KafkaError._FATAL, "the producer failed")
            ) from None

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._fatal = err

    def _on_closed(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._failed.append(msg)

    def _on_forming(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.forming_failed += 1


def transactional_id(checkpoint_id: str) -> str:
    """The closed bars' transactional id (and the group that records the last published
    batch): one per checkpoint, the same for every run on it."""
    return f"tickstream-bars-{checkpoint_id}"


class BarsFencedError(TickstreamError):
    """Another run of this checkpoint took the bars' transactional id: this one stops."""

    def __init__(self, topic: str, batch_id: int) -> None:
        which = f" before publishing the bars of batch {batch_id}" if batch_id >= 0 else ""
        super().__init__(
            f"another job on this lake's checkpoint took over publishing to {topic}{which} "
            "(fenced by Kafka); this job stops and commits nothing more",
            "run one job per lake; the newer one goes on from the checkpoint",
        )


class BarsNotPublishedError(RuntimeError):
    """The batch's closed bars did not all reach the bars topic: the batch runs again."""


def _since(started: float) -> str:
    return f"{time.monotonic() - started:.0f}s"
