"""Accounting: every message on the topic is a tick in a bar, a tick still in an open window,
a duplicate, a late tick, a reject (with its reason) or a heartbeat. `tickstream reconcile`
adds them up from three independent places (Kafka's offsets, the job's own counters, and the
files in the lake read by DuckDB) and says whether they agree.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb
from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from tickstream.bars.publish import CHECKPOINT_HEADER
from tickstream.bars.state import NO_TIME, Snapshot, StateStore, Totals
from tickstream.config import Settings
from tickstream.errors import TickstreamError
from tickstream.kafka.clients import librdkafka_config, reader_config
from tickstream.lake.layout import ACTIVITY_TABLES, Lake
from tickstream.lake.read import connect, tables_in
from tickstream.ticks.schema import SYMBOL_RE


@dataclass
class Check:
    name: str
    left: int
    right: int

    @property
    def ok(self) -> bool:
        return self.left == self.right


@dataclass
class Report:
    topic_messages: int
    consumed: int
    lag: int
    totals: Totals
    open_ticks: int
    lake: dict[str, Any]
    checks: list[Check] = field(default_factory=list)
    window: tuple[datetime | None, datetime | None] = (None, None)

    @property
    def balanced(self) -> bool:
        return all(c.ok for c in self.checks)

    def lines(self) -> list[str]:
        t = self.totals
        conflicts = t.rejected.get("event_id_conflict", 0)
        out = [
            f"topic messages        {self.topic_messages:>12,}   "
            f"consumed {self.consumed:,}, lag {self.lag:,}",
            f"  ticks (valid)       {t.ticks_valid:>12,}",
            f"    in closed bars    {self.lake['ticks_in_bars']:>12,}   "
            f"({self.lake['bars']:,} bars)",
            f"    in open windows   {self.open_ticks:>12,}",
            f"    duplicates        {t.duplicates:>12,}   (dropped, counted once)",
            f"    late              {t.late:>12,}   (in late/)",
            f"    event_id conflict {conflicts:>12,}   (in rejects/)",
            f"  heartbeats          {t.heartbeats:>12,}",
            f"  rejected            {t.rejected_total - conflicts:>12,}   (in rejects/)",
        ]
        for reason, n in sorted(t.rejected.items(), key=lambda kv: -kv[1]):
            if reason != "event_id_conflict":
                out.append(f"    {reason:<24}{n:>6,}")
        if any(self.window):
            start, end = self.window
            out.append(
                f"event time {start or '-'} .. {end or '-'}: ticks archived "
                f"{self.lake['range_archive']:,}, in closed bars {self.lake['range_in_bars']:,}, "
                f"in open windows {self.lake['range_open']:,}, late {self.lake['range_late']:,}"
            )
        for c in self.checks:
            mark = "ok " if c.ok else "BAD"
            out.append(f"[{mark}] {c.name}: {c.left:,} vs {c.right:,}")
        out.append("everything adds up" if self.balanced else "the numbers do NOT add up")
        return out


def topic_offsets(settings: Settings) -> dict[int, tuple[int, int]]:
    """(low, high) offsets of each partition of the topic."""
    consumer = Consumer(
        {
            **librdkafka_config(settings),
            "group.id": "tickstream-reconcile",
            "enable.auto.commit": False,
        }
    )
    try:
        topic = consumer.list_topics(settings.kafka_topic, timeout=15).topics[settings.kafka_topic]
        return {
            p: consumer.get_watermark_offsets(TopicPartition(settings.kafka_topic, p), timeout=15)
            for p in sorted(topic.partitions)
        }
    finally:
        consumer.close()


def committed_offsets(lake: Lake, topic: str) -> dict[int, int]:
    """The next offset to read of each partition, as of the job's last committed batch."""
    done = sorted(int(name) for name in lake.names(*Lake.COMMITS) if name.isdigit())
    if not done:
        return {}
    text = lake.read_text(*Lake.OFFSETS, str(done[-1])) or ""
    # Line 1 is the log's version, line 2 the batch's metadata, then one line per source (the
    # job reads each partition with a source of its own).
    found: dict[int, int] = {}
    for line in text.splitlines()[2:]:
        if line.strip().startswith("{"):
            for p, o in json.loads(line).get(topic, {}).items():
                found[int(p)] = int(o)
    return found


def _count(
    con: duckdb.DuckDBPyConnection, table: str, expr: str = "count(*)", where: str = ""
) -> int:
    """``expr`` over the rows of a lake table (a view of ``con``, see :func:`lake.connect`);
    0 for a table with no commit yet."""
    if table not in tables_in(con):
        return 0
    row = con.execute(f"SELECT coalesce({expr}, 0) FROM {table} {where}").fetchone()  # noqa: S608
    return int(row[0]) if row else 0


def reconcile(
    settings: Settings, start: datetime | None = None, end: datetime | None = None
) -> Report:
    where = Lake.from_settings(settings)
    try:
        snapshot: Snapshot = StateStore.read_latest(where)
        committed = committed_offsets(where, settings.kafka_topic)
    except OSError as exc:  # a wrong endpoint or key, a missing bucket, an unreadable folder
        raise where.unreachable(exc) from None
    offsets = topic_offsets(settings)
    topic_messages = sum(high - low for low, high in offsets.values())
    consumed = sum(committed.get(p, low) - low for p, (low, _high) in offsets.items())
    lag = sum(high - committed.get(p, low) for p, (low, high) in offsets.items())

    con = connect(where)
    lake = {
        "bars": _count(con, "bars"),
        "ticks_in_bars": _count(con, "bars", "sum(trade_count)"),
        "archive": _count(con, "ticks"),
        "rejects": _count(con, "rejects"),
        "late": _count(con, "late"),
    }
    open_ticks = snapshot.open_rows
    t = snapshot.totals
    conflicts = t.rejected.get("event_id_conflict", 0)
    checks = [
        Check("messages the job counted = messages it consumed from Kafka", t.messages, consumed),
        Check(
            "messages = valid ticks + heartbeats + rejects (conflicts are valid ticks)",
            t.messages,
            t.ticks_valid + t.heartbeats + t.rejected_total - conflicts,
        ),
        Check(
            "valid ticks = accepted + duplicates + late + conflicts",
            t.ticks_valid,
            t.ticks_accepted + t.duplicates + t.late + conflicts,
        ),
        Check("accepted ticks = rows in the ticks/ archive", t.ticks_accepted, lake["archive"]),
        Check(
            "accepted ticks = ticks in closed bars + ticks in open windows",
            t.ticks_accepted,
            lake["ticks_in_bars"] + open_ticks,
        ),
        Check("rejects counted = rows in rejects/", t.rejected_total, lake["rejects"]),
        Check("late ticks counted = rows in late/", t.late, lake["late"]),
        Check("bars counted = rows in bars/", t.bars, lake["bars"]),
    ]
    checks += activity_checks(snapshot, con)
    if settings.bars_topic:
        checks += bars_topic_checks(settings, where, con)
        if settings.activity_bars_topic and snapshot.activity:
            checks += activity_topic_checks(settings, where, con)
    report = Report(topic_messages, consumed, lag, t, open_ticks, lake, checks, (start, end))
    if start is not None or end is not None:
        _range_checks(report, con, snapshot, settings, start, end)
    return report


def activity_checks(snapshot: Snapshot, con: duckdb.DuckDBPyConnection) -> list[Check]:
    """Each kind of activity bar the job has cut: its bars counted = rows in its table, and
    the ticks it cut (the archive's, in the event-time range it has cut, of the symbols it has
    bars for) = ticks in its closed bars + ticks in its open bars."""
    checks = []
    for kind, state in sorted(snapshot.activity.items()):
        table = ACTIVITY_TABLES[kind]
        counted = snapshot.totals.activity_bars.get(kind, 0)
        checks.append(Check(f"{kind} bars counted = rows in {table}/", counted, _count(con, table)))
        symbols = sorted(s for s, bar in state.open.items() if bar.number or bar.ticks)
        if not symbols or "ticks" not in tables_in(con):
            continue
        names = ", ".join(f"'{s}'" for s in symbols if SYMBOL_RE.match(s))
        since = f"ts_epoch_ms >= {int(state.since_ms)} AND " if state.since_ms != NO_TIME else ""
        cut = _count(
            con,
            "ticks",
            where=f"WHERE {since}ts_epoch_ms < {int(state.cut_to_ms)} AND symbol IN ({names})",
        )
        in_bars = _count(con, table, "sum(trade_count)")
        open_ticks = sum(bar.ticks for bar in state.open.values())
        checks.append(
            Check(
                f"ticks cut into {kind} bars = ticks in closed {kind} bars + in open ones",
                cut,
                in_bars + open_ticks,
            )
        )
    return checks


def bars_topic_checks(
    settings: Settings, where: Lake, con: duckdb.DuckDBPyConnection
) -> list[Check]:
    """The closed bars this lake's job published to BARS_TOPIC, as a read_committed consumer
    sees them: each once, and as many as the lake's bars from the first window the topic
    still holds (older ones may have passed the topic's retention). Bars of other lakes on the
    same topic are told apart by their checkpoint header."""
    assert settings.bars_topic is not None
    published = lake_messages(settings, where, settings.bars_topic)
    if published is None:
        return []
    seen = Counter((bar["symbol"], int(bar["window_start_ms"])) for bar in published)
    first = min((ms for _symbol, ms in seen), default=None)
    since = "" if first is None else f"WHERE epoch_ms(window_start) >= {first}"
    in_lake = _count(con, "bars", "count(*)", since) if seen else 0
    repeats = sum(n - 1 for n in seen.values())
    return [
        Check(f"closed bars on {settings.bars_topic} published more than once", repeats, 0),
        Check(
            f"closed bars on {settings.bars_topic} = rows in bars/ from its first window",
            len(seen),
            in_lake,
        ),
    ]


def activity_topic_checks(
    settings: Settings, where: Lake, con: duckdb.DuckDBPyConnection
) -> list[Check]:
    """The tick, volume and dollar bars this lake's job published to ACTIVITY_BARS_TOPIC (as
    a read_committed consumer sees them): each once, and as many of each kind as its table
    holds from the first bar the topic still has of each symbol."""
    topic = settings.activity_bars_topic
    assert topic is not None
    published = lake_messages(settings, where, topic)
    if published is None:
        return []
    seen = Counter((bar["kind"], bar["symbol"], int(bar["number"])) for bar in published)
    checks = [Check(f"bars on {topic} published more than once", sum(seen.values()) - len(seen), 0)]
    for kind, table in ACTIVITY_TABLES.items():
        first: dict[str, int] = {}
        for k, symbol, number in seen:
            if k == kind:
                first[symbol] = min(number, first.get(symbol, number))
        in_lake = 0
        for symbol, number in sorted(first.items()):
            if SYMBOL_RE.match(symbol):
                where_sql = f"WHERE symbol = '{symbol}' AND number >= {number}"
                in_lake += _count(con, table, "count(*)", where_sql)
        on_topic = sum(1 for k, _s, _n in seen if k == kind)
        if on_topic or in_lake:
            checks.append(Check(f"{kind} bars on {topic} = rows in {table}/", on_topic, in_lake))
    return checks


def lake_messages(settings: Settings, where: Lake, topic: str) -> list[dict[str, Any]] | None:
    """The messages this lake's job published to ``topic`` (a bars topic), decoded, as a
    read_committed consumer sees them; None before the job's first start. Messages of other
    lakes on the same topic are told apart by their checkpoint header."""
    text = where.read_text(*Lake.QUERY)
    if text is None:
        return None
    checkpoint = str(json.loads(text)["id"]).encode()
    return [
        json.loads(message.value() or b"{}")
        for message in read_topic(settings, topic)
        if dict(message.headers() or []).get(CHECKPOINT_HEADER) == checkpoint
    ]


def read_topic(settings: Settings, topic: str, timeout: float = 60.0) -> list[Message]:
    """Every committed message of ``topic``, from the start of each partition to its end now."""
    consumer = Consumer(
        {
            **reader_config(settings, "tickstream-reconcile"),
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=15).topics[topic].partitions)
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=15)
            for p in partitions
        }
        remaining = {p for p, (low, high) in ends.items() if high > low}
        consumer.assign(
            [TopicPartition(topic, p, ends[p][0]) for p in partitions if p in remaining]
        )
        found: list[Message] = []
        deadline = time.monotonic() + timeout
        while remaining and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=10_000, timeout=1.0):
                p, error = message.partition(), message.error()
                if error is not None and error.code() == KafkaError._PARTITION_EOF:
                    remaining.discard(p)  # at its end (an open transaction's start, if any)
                elif error is None:
                    found.append(message)
        if remaining:
            raise TickstreamError(
                f"timed out reading {topic} at {settings.kafka_bootstrap_servers}",
                "check that the broker answers, then run reconcile again",
            )
        return found
    finally:
        consumer.close()


def _range_checks(
    report: Report,
    con: duckdb.DuckDBPyConnection,
    snapshot: Snapshot,
    settings: Settings,
    start: datetime | None,
    end: datetime | None,
) -> None:
    """Within an event-time range: archived ticks = ticks in closed bars + ticks still open."""

    def where(column: str) -> str:
        parts = []
        if start is not None:
            parts.append(f"{column} >= TIMESTAMP '{start:%Y-%m-%d %H:%M:%S}'")
        if end is not None:
            parts.append(f"{column} < TIMESTAMP '{end:%Y-%m-%d %H:%M:%S}'")
        return "WHERE " + " AND ".join(parts)

    window_ms = settings.window_ms
    # A bar belongs to the range when its window does; count archive ticks by their window too.
    tick_window = f"make_timestamp((ts_epoch_ms - ts_epoch_ms % {window_ms}) * 1000)"
    report.lake["range_archive"] = _count(con, "ticks", where=where(tick_window))
    report.lake["range_in_bars"] = _count(con, "bars", "sum(trade_count)", where("window_start"))
    report.lake["range_late"] = _count(con, "late", where=where("ts"))
    low, high = _epoch_ms(start), _epoch_ms(end)
    open_in_range = sum(
        p.count
        for p in snapshot.open_windows
        if (low is None or p.window_start_ms >= low) and (high is None or p.window_start_ms < high)
    )
    report.lake["range_open"] = open_in_range
    report.checks.append(
        Check(
            "in the range: archived ticks = ticks in closed bars + ticks in open windows",
            report.lake["range_archive"],
            report.lake["range_in_bars"] + open_in_range,
        )
    )


def _epoch_ms(moment: datetime | None) -> int | None:
    """Milliseconds since the epoch; a naive time is UTC (as in the SQL above)."""
    if moment is None:
        return None
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return int(aware.timestamp() * 1000)
