"""Sources -> Kafka: idempotent, asynchronous, batched, and every message accounted for.

confluent-kafka (librdkafka) with ``enable.idempotence`` and ``acks=all``: retries
never duplicate or reorder a partition's messages. Messages are queued without
waiting; librdkafka batches and compresses them. Only failed deliveries call back
into Python, so after the final flush::

    acknowledged = sent - failed - still queued (0 once flush returned in time)

Heartbeats go to every partition of the topic at a fixed wall-clock interval, and
once more at the end, carrying the source's event-time clock.

With a spool (:mod:`tickstream.kafka.spool`), every chunk is written to the local disk before it
is handed to Kafka, and nothing is ever given up: messages wait in librdkafka as long as
it takes, the producer picks each tick's partition itself and counts acknowledgements per
partition (:mod:`tickstream.kafka.acks`), and the spool's cursor follows them. While Kafka is
down, new ticks go to the spool only; once it is back, the spool drains in order before
newer ticks, and a restart resends what Kafka had not acknowledged.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from tickstream.config import Settings
from tickstream.errors import EnvironmentProblem, TickstreamError
from tickstream.kafka.acks import AckTracker, Partitioner
from tickstream.kafka.admin import credentials_error
from tickstream.kafka.clients import producer_config
from tickstream.kafka.deadletters import DeadLetter, DeadLetters
from tickstream.kafka.spool import Block, Spool, SpoolFullError, SpoolReader, format_size
from tickstream.sources.base import TickSource, now_ms
from tickstream.ticks.codec import encode_heartbeat
from tickstream.ticks.schema import Heartbeat

log = logging.getLogger(__name__)

# Transport errors worth telling the user about while they last (the producer keeps retrying).
_OUTAGE_CODES = {KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._RESOLVE}
# A spool's backlog is handed to Kafka at most this many ticks per turn of the loop, so the
# source is read (and spooled) in between.
DRAIN_STEP = 200_000
# Started while Kafka does not answer: how often, and how long, the topic is looked up again.
LOOKUP_EVERY_S = 2.0
LOOKUP_TIMEOUT_S = 0.5
# Kafka's refusals of a record itself, whatever the state of the cluster: such a tick would be
# refused again at every try, so it goes to the dead letters (kafka/deadletters.py).
REFUSED_FOR_GOOD = {
    KafkaError.MSG_SIZE_TOO_LARGE,  # over the topic's max.message.bytes (or the client's)
    KafkaError.INVALID_RECORD,
    KafkaError.INVALID_MSG,  # a corrupt record
    KafkaError.INVALID_MSG_SIZE,
    KafkaError.INVALID_TIMESTAMP,
    KafkaError.RECORD_LIST_TOO_LARGE,
}
# The acknowledgement tracker's partition for a tick the client refused before sending it.
REFUSED_HERE = -1


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
    # With a spool:
    spooled: int = 0  # ticks the source gave, written to the spool
    resent: int = 0  # ticks an earlier run left in the spool, handed to Kafka again
    spool_pending: int = 0  # ticks in the spool Kafka has not acknowledged (kept)
    spool_bytes: int = 0
    spool_path: str | None = None
    down_s: float = 0.0  # how long Kafka has been unreachable, now
    dead_letters: int = 0  # ticks Kafka refused for good, moved to the dead letters

    @property
    def acknowledged(self) -> int:
        return self.sent - self.failed - self.undelivered

    @property
    def ok(self) -> bool:
        # With a spool, what Kafka has not acknowledged is kept for the next start, not lost.
        lost = self.undelivered if self.spool_path is None else 0
        return (
            self.failed == 0 and lost == 0 and self.heartbeats_failed == 0 and not self.dead_letters
        )

    def summary(self) -> str:
        rate = self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0
        if self.spool_path is None:
            text = (
                f"sent {self.sent:,} ticks, acknowledged {self.acknowledged:,}, "
                f"failed {self.failed + self.undelivered:,}, heartbeats {self.heartbeats:,}"
            )
        else:
            text = f"spooled {self.spooled:,} ticks, sent {self.sent:,}"
            if self.resent:
                text += f" ({self.resent:,} resent from an earlier run)"
            text += f", failed {self.failed:,}, heartbeats {self.heartbeats:,}"
        if self.bad_rows:
            text += f", bad rows skipped {self.bad_rows:,}"
        text += f" in {self.elapsed_s:.1f}s ({rate:,.0f} ticks/s)"
        if self.spool_path is not None:
            if self.spool_pending:
                text += (
                    f"; {self.spool_pending:,} ticks Kafka has not acknowledged stay in the spool "
                    f"at {self.spool_path}: the next `tickstream produce` sends them first"
                )
            else:
                text += "; the spool is empty (Kafka acknowledged every tick)"
            if self.dead_letters:
                text += (
                    f"; {self.dead_letters:,} tick{'' if self.dead_letters == 1 else 's'} Kafka "
                    "refused for good went to the dead letters (`tickstream produce --status`)"
                )
        return text


class TickProducer:
    """Publishes a source's ticks and heartbeats to one topic."""

    def __init__(
        self,
        settings: Settings,
        *,
        stop: threading.Event | None = None,
        notify: Callable[[str], None] = print,
        spool: Spool | None = None,
    ) -> None:
        self.settings = settings
        self.spool = spool
        self.topic = settings.kafka_topic
        self.stop = stop or threading.Event()
        self.notify = notify
        self.producer_id = uuid.uuid4().hex[:12]
        self.stats = ProduceStats()
        self._outage_since: float | None = None
        self._broker_up = False  # set by the statistics callback during an outage
        self._auth_failed = False
        self._producer = Producer(
            {
                **producer_config(settings, self._on_error, spooled=spool is not None),
                "stats_cb": self._on_stats,
            }
        )
        self.partitions: list[int] = []
        # With a spool:
        self._tracker: AckTracker | None = None
        self._partitioner: Partitioner | None = None
        self._reader: SpoolReader | None = None  # the backlog, when there is one
        self._rest: Block | None = None  # what is left of a block handed in part
        self._resend_end = 0  # ticks below this were spooled by an earlier run
        self._next_lookup = 0.0  # started offline: when to look the topic up again
        self._dead = DeadLetters(spool.folder) if spool is not None else None

    # --- callbacks (run inside poll/flush) ------------------------------------------------------

    def _on_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._AUTHENTICATION:
            self._auth_failed = True
            self.stop.set()
        elif err.code() in _OUTAGE_CODES:
            if self._outage_since is None:
                self._outage_since = time.monotonic()
                self._broker_up = False
                kept = (
                    f"ticks go to the spool at {self.spool.folder} "
                    f"(up to {format_size(self.spool.max_bytes)})"
                    if self.spool is not None
                    else f"messages are kept for {self.settings.send_timeout_sec:g}s"
                )
                self.notify(
                    f"kafka unreachable at {self.settings.kafka_bootstrap_servers} "
                    f"({err.str()}); retrying, {kept}"
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

    def _on_spooled_delivery(self, err: KafkaError | None, msg: Message) -> None:
        assert self._tracker is not None
        partition = msg.partition()
        assert partition is not None
        if err is None:
            self._tracker.delivered(partition)
            return
        if err.code() in (KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT):
            self._tracker.delivered(partition, ok=False)  # given up at exit: still spooled
            return
        if err.code() in REFUSED_FOR_GOOD:
            self._dead_letter(msg.key(), msg.value(), err.str())
            self._tracker.delivered(partition)  # kept in the dead letters: the spool goes on
            return
        # Never a timeout (a spooled tick is never given up), not the tick's fault (refused
        # credentials, a deleted topic): it stays in the spool, and so does everything after
        # it; stop and say why.
        self._tracker.delivered(partition, ok=False)
        self.stats.failed += 1
        self._record(
            f"kafka refused a tick for {msg.topic()}[{partition}]: {err.str()}; it stays in "
            "the spool, and the next start tries it again"
        )
        self.stop.set()

    def _dead_letter(self, key: bytes | str | None, value: bytes | str | None, why: str) -> None:
        """Keep a tick Kafka refused for good beside the spool, durably, before the spool's
        cursor can pass it."""
        assert self._dead is not None
        as_bytes = value.encode() if isinstance(value, str) else value or b""
        name = key.decode() if isinstance(key, bytes) else key or ""
        self._dead.add(DeadLetter(self.topic, name, as_bytes, why, now_ms()))
        self.stats.dead_letters += 1
        if self.stats.dead_letters == 1:
            self.notify(
                f"kafka refused a tick for good ({why}); it goes to the dead letters at "
                f"{self._dead.path}, and the spool goes on"
            )

    def _on_heartbeat_failed(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None and err.code() in (KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT):
            return  # given up at a stop with the spool: the next run sends its own clock
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
            found = self._lookup(max(0.5, min(2.0, remaining)))
            if found:
                self._adopt(found)
                self._outage_since = None
                return self.partitions
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

    def _lookup(self, timeout: float) -> list[int]:
        """One look at the topic: its partitions, or [] if Kafka does not answer. Raises, in
        one line, for refused credentials or a topic that does not exist."""
        try:
            metadata = self._producer.list_topics(self.topic, timeout=timeout)
        except KafkaException:
            metadata = None
        self._producer.poll(0)
        if self._auth_failed:
            raise credentials_error(self.settings)
        if metadata is None or not metadata.brokers:
            return []
        topic = metadata.topics.get(self.topic)
        if topic is not None and topic.error is None and topic.partitions:
            return sorted(topic.partitions)
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
                f"topic '{self.topic}' does not exist on {self.settings.kafka_bootstrap_servers}",
                "create it with `tickstream kafka create-topics` "
                "(`tickstream kafka start` does it for the local broker)",
            )
        return []

    def _adopt(self, partitions: list[int]) -> None:
        """Route by the topic's partitions. With a spool, check them against what the spool
        last saw of the topic, and keep them there."""
        self.partitions = partitions
        self._partitioner = Partitioner(len(partitions))
        if self.spool is None:
            return
        seen = self.spool.topic_record()
        if seen is not None and seen.topic != self.topic and self.spool.pending:
            raise TickstreamError(
                f"the spool at {self.spool.folder} holds {self.spool.pending:,} unsent "
                f"tick{'' if self.spool.pending == 1 else 's'} for topic '{seen.topic}', not "
                f"'{self.topic}'",
                f"send them with KAFKA_TOPIC={seen.topic}, or give this topic its own SPOOL_DIR",
            )
        if seen is not None and seen.topic == self.topic and seen.partitions != len(partitions):
            self.notify(
                f"topic '{self.topic}' has {len(partitions)} partitions, {seen.partitions} when "
                "this spool last saw it: ticks are routed by the new count from here (a "
                "symbol's earlier ticks stay in their partition)"
            )
        self.spool.save_topic_record(self.topic, len(partitions))

    def start_offline(self) -> None:
        """Start while Kafka does not answer (with a spool only): ticks go to the spool, and
        to Kafka once it answers (the topic is looked up every few seconds meanwhile)."""
        assert self.spool is not None, "only a spooled producer starts without Kafka"
        self._outage_since = time.monotonic()
        self._broker_up = False
        self._next_lookup = 0.0
        seen = self.spool.topic_record()
        known = f", {seen.partitions} partitions when last seen" if seen else ""
        self.notify(
            f"kafka unreachable at {self.settings.kafka_bootstrap_servers}: starting anyway; "
            f"ticks go to the spool at {self.spool.folder} (up to "
            f"{format_size(self.spool.max_bytes)}) and to '{self.topic}'{known} once it answers"
        )

    def _connect_late(self) -> None:
        """Started offline: look the topic up again, every LOOKUP_EVERY_S."""
        now = time.monotonic()
        if now < self._next_lookup:
            return
        self._next_lookup = now + LOOKUP_EVERY_S
        found = self._lookup(LOOKUP_TIMEOUT_S)
        if found:
            self._adopt(found)
            down = now - (self._outage_since or now)
            self.notify(
                f"kafka answered after {down:.1f}s: '{self.topic}' has {len(found)} "
                "partitions; sending the spool"
            )
            self._outage_since = None

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
                    if self.spool is not None and not self._can_hand():
                        return  # Kafka went down meanwhile: no heartbeat ahead of the spool
                    self._producer.poll(0.05)
            self.stats.heartbeats += 1

    def run(
        self,
        source: TickSource,
        on_progress: Callable[[ProduceStats, int], None] | None = None,
    ) -> ProduceStats:
        """Produce until the source ends or ``stop`` is set, then flush. Returns the counts."""
        if not self.partitions and self._outage_since is None:
            self.connect()
        if self.spool is not None:
            return self._run_spooled(source, on_progress)
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

    # --- with a spool ---------------------------------------------------------------------------

    def _can_hand(self) -> bool:
        """Kafka takes messages: its partitions known, not down, and no tick refused for
        good."""
        return (
            self._partitioner is not None
            and self._outage_since is None
            and not (self._tracker and self._tracker.frozen)
        )

    def _caught_up(self) -> bool:
        return self._reader is None and self._rest is None and self._can_hand()

    def _run_spooled(
        self, source: TickSource, on_progress: Callable[[ProduceStats, int], None] | None
    ) -> ProduceStats:
        spool = self.spool
        assert spool is not None
        self._tracker = AckTracker(spool.acked)
        self._resend_end = spool.next_seq
        self.stats.spool_path = str(spool.folder)
        if spool.pending:
            self.notify(
                f"{spool.pending:,} ticks an earlier run left in the spool at {spool.folder} "
                "go to Kafka first"
            )
            self._reader = spool.reader(spool.acked)
        interval = self.settings.heartbeat_interval_sec
        started = time.monotonic()
        next_beat = started + interval
        full: SpoolFullError | None = None
        try:
            for chunk in source.chunks():
                if len(chunk):
                    try:
                        block = self._spool(chunk.symbol, chunk.encode())
                    except SpoolFullError:
                        full = self._spool_full(len(chunk))
                        break
                    self.stats.spooled += len(block.values)
                    self._offer(block)
                self._drain()
                now = time.monotonic()
                # A heartbeat never passes ticks still in the spool: they would be late.
                if interval and now >= next_beat and self._caught_up():
                    self.heartbeat(source.clock_ms())
                    next_beat = now + interval
                self._service()
                if on_progress is not None:
                    on_progress(self.stats, len(self._producer))
                if self.stop.is_set():
                    break
            else:
                self._deliver_all(on_progress)
                if interval and self._caught_up():
                    self.heartbeat(source.clock_ms())
        finally:
            self.stats.bad_rows = source.bad_rows
            self._finish_spooled(started)
        if full is not None:
            raise full
        return self.stats

    def _spool(self, keys: Sequence[str], values: Sequence[bytes]) -> Block:
        """Append to the spool. At its budget while Kafka answers, wait (up to SEND_TIMEOUT_SEC)
        for acknowledgements to give segments back; full while Kafka is down is full."""
        assert self.spool is not None
        waited_until = time.monotonic() + self.settings.send_timeout_sec
        while True:
            try:
                return self.spool.append(keys, values)
            except SpoolFullError:
                if not self._can_hand() or self.stop.is_set() or time.monotonic() > waited_until:
                    raise
            self._drain()
            self._service()
            self.spool.sync()  # the cursor, and the segments below it go
            self._producer.poll(0.05)

    def _offer(self, block: Block) -> None:
        """A block just spooled: next in line, from memory, when nothing waits before it;
        otherwise the backlog's reader reaches it in turn, from the disk (``_drain`` hands
        both)."""
        assert self.spool is not None
        if self._rest is None and self._reader is None:
            self._rest = block
        elif self._reader is None:  # behind what is left of an earlier block
            self._reader = self.spool.reader(block.first_seq)

    def _drain(self, limit: int = DRAIN_STEP) -> None:
        """Hand the spool's backlog to Kafka, in order, while Kafka takes it."""
        handed = 0
        while handed < limit and self._can_hand() and not self.stop.is_set():
            block = self._rest
            self._rest = None
            if block is None:
                if self._reader is None:
                    return
                block = self._reader.next_block()
                if block is None:  # caught up with the source
                    self._reader.close()
                    self._reader = None
                    return
            n = self._hand(block)
            handed += n
            if n < len(block.values):
                self._rest = block.starting_at(block.first_seq + n)
                return

    def _hand(self, block: Block) -> int:
        """Give librdkafka as much of ``block`` as it takes; return how many ticks it took.

        A full local queue means Kafka is slow: wait for room (the source waits too). Kafka
        down, or a stop: the rest stays in the spool.
        """
        assert self._tracker is not None
        assert self._partitioner is not None
        keys, values = block.keys, block.values
        parts = self._partitioner(keys)
        produce = self._producer.produce
        topic = self.topic
        on_delivery = self._on_spooled_delivery
        n = len(values)
        done = 0
        while done < n:
            i = done
            refused: KafkaException | None = None
            try:
                for i in range(done, n):
                    produce(topic, values[i], keys[i], parts[i], on_delivery)
                i = n
            except BufferError:
                pass
            except KafkaException as exc:  # the client refused tick i before sending it
                refused = exc
            if i > done:
                # Registered before any poll: acknowledgements are served only inside poll.
                self._tracker.handed(block.first_seq + done, parts[done:i])
                done = i
            if refused is not None:
                error = refused.args[0]
                if not isinstance(error, KafkaError) or error.code() not in REFUSED_FOR_GOOD:
                    raise refused
                self._dead_letter(keys[i], values[i], error.str())
                self._tracker.handed(block.first_seq + i, [REFUSED_HERE])
                self._tracker.delivered(REFUSED_HERE)
                done = i + 1
                continue
            if done < n:
                if not self._can_hand() or self.stop.is_set():
                    break
                self._producer.poll(0.05)
                self._check_recovered()
        self.stats.sent += done
        if block.first_seq < self._resend_end:
            self.stats.resent += min(block.first_seq + done, self._resend_end) - block.first_seq
        return done

    def _service(self) -> None:
        """Serve acknowledgements, move the spool's cursor, sync it when due, refresh stats."""
        assert self.spool is not None
        assert self._tracker is not None
        self._producer.poll(0)
        if self._partitioner is None:
            self._connect_late()
        else:
            self._check_recovered()
        self.spool.ack(self._tracker.acked)
        self.spool.maybe_sync()
        self._spool_stats()
        since = self._outage_since
        self.stats.down_s = 0.0 if since is None else time.monotonic() - since

    def _deliver_all(self, on_progress: Callable[[ProduceStats, int], None] | None) -> None:
        """The source is done: deliver the whole spool, through an outage, until a stop."""
        assert self._tracker is not None
        told = False
        while not self.stop.is_set():
            self._drain()
            self._service()
            if on_progress is not None:
                on_progress(self.stats, len(self._producer))
            if self._caught_up() and self._tracker.in_flight == 0:
                return
            if not told and not self._can_hand():
                self.notify(
                    f"the source is done; waiting for Kafka to take the "
                    f"{self.stats.spool_pending:,} ticks in the spool "
                    "(a stop keeps them for the next start)"
                )
                told = True
            self._producer.poll(0.05)

    def _finish_spooled(self, started: float) -> None:
        assert self.spool is not None
        assert self._tracker is not None
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        # What librdkafka holds is in the spool too: wait for it only while Kafka answers.
        wait = self.settings.send_timeout_sec + 5 if self._can_hand() else 0.5
        self.stats.undelivered = self._producer.flush(wait)
        if self.stats.undelivered:
            self._producer.purge()
            self._producer.poll(0)
        self._service()
        self.spool.close()
        self._spool_stats()  # closing deletes what Kafka has
        self.stats.elapsed_s = time.monotonic() - started

    def _spool_stats(self) -> None:
        assert self.spool is not None
        self.stats.spool_pending = self.spool.pending
        self.stats.spool_bytes = self.spool.size_bytes

    def _spool_full(self, refused: int) -> SpoolFullError:
        spool = self.spool
        assert spool is not None
        since = self._outage_since
        why = (
            f"Kafka unreachable for {time.monotonic() - since:.0f}s"
            if since is not None
            else "Kafka takes ticks slower than the source gives them"
        )
        self.stop.set()
        return SpoolFullError(
            f"the spool at {spool.folder} is full: {format_size(spool.size_bytes)} of "
            f"SPOOL_MAX_BYTES={format_size(spool.max_bytes)} hold {spool.pending:,} ticks "
            f"Kafka has not acknowledged ({why}); stopped, without the {refused:,} ticks of "
            "the source's latest chunk",
            "the spool is kept and the next `tickstream produce` sends it first: bring Kafka "
            "back, or raise SPOOL_MAX_BYTES",
        )
