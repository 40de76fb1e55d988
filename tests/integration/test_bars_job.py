"""The bars job through the real broker and real Spark, held to an independent computation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from tests.helpers import wait_until
from tests.jobs import Jobs
from tests.kafka_helpers import TopicEnds, consume_all
from tests.reference import (
    LAKE_TABLES,
    as_row,
    check_bar_message,
    has_commit,
    lake_bars,
    lake_sql,
    reference_bars,
)
from tests.streams import es_ticks, send_heartbeat, send_hostile
from tickstream.bars.job import BarsJob
from tickstream.config import Settings, load_settings
from tickstream.ticks.schema import Tick

WINDOW_MS = 60_000


def settings_for(base: Settings, bootstrap: str, topic: str, out: Path, **more: Any) -> Settings:
    dumped = base.model_dump()
    for field in ("bars_topic", "bars_live_topic"):  # off stays off (None reads as "not given")
        if dumped[field] is None:
            dumped[field] = "off"
    values = {
        **dumped,
        "kafka_bootstrap_servers": bootstrap,
        "kafka_topic": topic,
        "output_path": out,
        "console_bars": False,
        **more,
    }
    return load_settings(values)


@dataclass
class BarsCase:
    """A bars-job test's setting: a fresh topic on the session's broker, a lake of its own."""

    bootstrap: str
    topic: str
    out: Path
    base: Settings

    def settings(self, **more: Any) -> Settings:
        return settings_for(self.base, self.bootstrap, self.topic, self.out, **more)


@pytest.fixture
def case(
    kafka_broker: str,
    make_topic: Callable[..., str],
    base_settings: Settings,
    tmp_path: Path,
) -> BarsCase:
    return BarsCase(kafka_broker, make_topic(partitions=3), tmp_path / "lake", base_settings)


def as_dicts(ticks: list[Tick]) -> list[dict[str, Any]]:
    return [
        {
            "symbol": t.symbol,
            "ts_epoch_ms": t.ts_epoch_ms,
            "price": t.price,
            "volume": t.volume,
            "seq": t.seq,
            "event_id": t.event_id,
        }
        for t in ticks
    ]


def duck(sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    return con.execute(sql).fetchall()


def assert_reconciled(settings: Settings) -> None:
    """Every message is accounted for, from Kafka, the job's counters and the lake alike."""
    from tickstream.reconcile import reconcile

    report = reconcile(settings)
    assert report.balanced, "\n".join(report.lines())
    assert report.lag == 0


def assert_tables_whole(out: Path) -> None:
    """Every data file a table's Delta log commits is on disk, whole (a reader goes by the log,
    so a killed batch's files, never committed, are not read); the CSV copy holds only
    published files, named by batch."""
    for table in LAKE_TABLES:
        path = out / table
        if has_commit(path):
            read = {Path(uri) for uri in DeltaTable(path.as_posix()).file_uris()}
            assert read, table
            assert all(p.is_file() and p.name.startswith("part-") for p in read), table
    csv = [p for p in (out / "bars_csv").rglob("*") if p.is_file()]
    assert csv
    assert all(p.name.startswith("part-") and p.suffix == ".csv" for p in csv)


def test_bars_equal_the_independent_computation(case: BarsCase, jobs: Jobs) -> None:
    topic = case.topic
    ticks = es_ticks()
    assert len(ticks) == 120_000
    sent = send_hostile(case.bootstrap, topic, ticks)
    assert sent.duplicates > 1000
    assert len(sent.rejects) > 250
    # The producer's clock moves past the end of the data: every window closes.
    send_heartbeat(case.bootstrap, topic, ticks[-1].ts_epoch_ms + 10 * WINDOW_MS)

    out = case.out
    settings = case.settings(max_offsets_per_trigger=60_000)
    job = jobs.drain(settings)

    expected = reference_bars(as_dicts(ticks), WINDOW_MS)
    got = lake_bars(str(out))
    assert len(got) == len(expected) > 1800
    assert got == expected  # every column of every bar, exactly

    # The CSV copy holds the same bars.
    csv_rows = duck(
        f"SELECT count(*), sum(trade_count) FROM read_csv('{out}/bars_csv/*/*.csv', header=true)"
    )
    assert csv_rows == [(len(expected), 120_000)]
    # The archive holds each tick once.
    archive = lake_sql(out, "SELECT count(*), count(DISTINCT event_id) FROM ticks")
    assert archive == [(120_000, 120_000)]
    # Every bad message is in rejects/ with its reason; nothing else is.
    rejects = lake_sql(out, "SELECT reason, count(*) FROM rejects GROUP BY reason")
    assert Counter(dict(rejects)) == Counter(sent.rejects)
    totals = job.latest_snapshot().totals
    assert totals.ticks_accepted == 120_000
    assert totals.duplicates == sent.duplicates
    assert totals.late == 0
    assert totals.rejected_total == len(sent.rejects)
    assert totals.bars == len(expected)
    assert_reconciled(settings)
    assert_tables_whole(out)


def test_late_ticks_are_recorded_not_lost(case: BarsCase, jobs: Jobs) -> None:
    topic = case.topic
    ticks = es_ticks(3000)
    early, straggler = ticks[:-1], ticks[0]
    send_hostile(case.bootstrap, topic, early, duplicate_share=0, garbage_every=10**9)
    send_heartbeat(case.bootstrap, topic, ticks[-1].ts_epoch_ms + 10 * WINDOW_MS)
    out = case.out
    settings = case.settings()
    jobs.drain(settings)

    # Now a tick for the first minute arrives: its bar was closed long ago.
    late_tick = Tick(
        straggler.symbol, straggler.ts_epoch_ms + 1, 1700.0, 5.0, 10**6, "late-one", "replay"
    )
    send_hostile(case.bootstrap, topic, [late_tick], duplicate_share=0, garbage_every=10**9)
    job = jobs.drain(settings)

    late = lake_sql(out, "SELECT event_id, late_by_ms, watermark FROM late")
    assert len(late) == 1
    assert late[0][0] == "late-one"
    assert late[0][1] == ticks[-1].ts_epoch_ms + 10 * WINDOW_MS - 120_000 - late_tick.ts_epoch_ms
    assert lake_bars(str(out)) == reference_bars(as_dicts(early), WINDOW_MS)
    assert job.latest_snapshot().totals.late == 1
    assert_reconciled(settings)


def send_es_hostile(bootstrap: str, topic: str) -> list[Tick]:
    """The 120,000 real ES ticks as the whole-job tests send them: shuffled within the
    watermark over 3 partitions, with duplicates and garbage (seed 7), then a heartbeat that
    closes every window. Returns the ticks."""
    ticks = es_ticks()
    sent = send_hostile(bootstrap, topic, ticks, seed=7)
    assert sent.duplicates > 1000
    assert len(sent.rejects) > 250
    send_heartbeat(bootstrap, topic, ticks[-1].ts_epoch_ms + 10 * WINDOW_MS)
    return ticks


def replay_args(bars_topic: str, *more: str) -> tuple[str, ...]:
    """`tickstream stream`'s flags in the whole-job tests: batches of 8,000 messages, closed bars
    to ``bars_topic``, no forming bars. (Smaller batches, 4,000, cover more event time than the
    watermark in this input's quiet night hours, across partitions read unevenly: 15 of its
    ticks came after the watermark and were rightly late, which the references ignore.)"""
    return (
        "--max-offsets-per-trigger",
        "8000",
        "--processing-trigger",
        "1 second",
        "--bars-topic",
        bars_topic,
        "--bars-live-topic",
        "off",
        *more,
    )


def sigkill(proc: subprocess.Popen[str]) -> None:
    """Kill a `tickstream stream` process and its Spark JVM (its process group) at once."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(60)


def drain_once(proc: subprocess.Popen[str]) -> str:
    """Wait for a `tickstream stream --once` to drain its topic and exit 0; its output."""
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output
    return output


def committed_batches(out: Path) -> int:
    commits = out / "_checkpoints" / "bars" / "commits"
    return len([p for p in commits.glob("*") if p.name.isdigit()]) if commits.is_dir() else 0


def test_killed_at_random_points_the_output_is_still_exact(
    kafka_broker: str,
    make_topic: Callable[..., str],
    stream_proc: Callable[..., subprocess.Popen[str]],
    tmp_path: Path,
) -> None:
    """A graceful stop, then SIGKILL at 5 points of a replay (3 the moment the job's bars reach
    the bars topic, mid-publish; 2 at random), a restart each time: the lake is exact, and a
    read_committed consumer of the bars topic sees each of the lake's bars exactly once."""
    import random
    import time

    topic = make_topic(partitions=3)
    bars_topic = make_topic(partitions=3)
    ticks = send_es_hostile(kafka_broker, topic)
    out = tmp_path / "lake"
    args = replay_args(bars_topic)

    # A graceful stop: SIGTERM lets the batch finish, exit 0.
    first = stream_proc(topic, out, *args)
    wait_until(lambda: committed_batches(out) >= 1, timeout=240, message="a committed batch")
    first.send_signal(signal.SIGTERM)
    output, _ = first.communicate(timeout=120)
    assert first.returncode == 0, output
    assert "SIGTERM received: finishing the current micro-batch" in output
    assert "stopped; a restart resumes from the checkpoint" in output

    # Five crashes: three as soon as the bars topic grows (records of an open transaction, or
    # its commit marker: mid-publish, or between the commit and the batch's record), two at
    # random moments (start-up, mid-batch, between batches).
    rng = random.Random(2026)
    ends = TopicEnds(kafka_broker, bars_topic)
    for crash in range(5):
        proc = stream_proc(topic, out, *args)
        done = committed_batches(out)
        if crash % 2 == 0:
            before = ends.total()
            wait_until(
                lambda: ends.total() > before,  # noqa: B023
                timeout=240,
                interval=0.02,
                message="bars published",
            )
        else:
            wait_until(lambda: committed_batches(out) > done, timeout=240, message="progress")  # noqa: B023
            time.sleep(rng.uniform(0.0, 2.5))
        sigkill(proc)
    ends.close()

    drain_once(stream_proc(topic, out, "--once", *args))  # a restart drains the topic

    assert lake_bars(str(out)) == reference_bars(as_dicts(ticks), WINDOW_MS)
    dupes = lake_sql(out, "SELECT count(*) - count(DISTINCT (symbol, window_start)) FROM bars")
    assert dupes == [(0,)]
    archive = lake_sql(out, "SELECT count(*), count(DISTINCT event_id) FROM ticks")
    assert archive == [(120_000, 120_000)]
    assert_tables_whole(out)
    settings = load_settings(
        {
            "kafka_bootstrap_servers": kafka_broker,
            "kafka_topic": topic,
            "output_path": out,
            "bars_topic": bars_topic,
        }
    )
    assert_reconciled(settings)  # with the bars topic's checks: each once, as many as the lake
    assert_published_exactly_once(kafka_broker, bars_topic, out)


def assert_published_exactly_once(bootstrap: str, bars_topic: str, out: Path) -> None:
    """A read_committed consumer of the bars topic sees each of the lake's bars exactly once,
    and no other; each message matches the bar schema."""
    published: Counter[tuple[Any, ...]] = Counter()
    for record in consume_all(bootstrap, bars_topic):
        bar = json.loads(record.value)
        check_bar_message(bar)
        published[as_row(bar)] += 1
    assert [row for row, n in published.items() if n > 1] == []
    assert sorted(published) == sorted(lake_bars(str(out)))


def test_a_quiet_market_closes_its_last_bar(case: BarsCase, jobs: Jobs) -> None:
    """Ticks stop, heartbeats go on: the last bar lands within WATERMARK plus a few seconds."""
    import threading
    import time

    from confluent_kafka import Producer

    from tickstream.ticks.codec import encode_tick

    topic = case.topic
    out = case.out
    settings = case.settings(window_duration="5 seconds", watermark="5 seconds")
    job = jobs.start(settings)
    producer = Producer({"bootstrap.servers": case.bootstrap, "acks": "all", "linger.ms": 5})
    stop_beats = threading.Event()

    def heartbeats() -> None:
        while not stop_beats.wait(0.5):
            send_heartbeat(case.bootstrap, topic, int(time.time() * 1000))

    beating = threading.Thread(target=heartbeats, daemon=True)
    try:
        beating.start()
        last_ts = 0
        for seq in range(40):  # 4 seconds of ticks, then silence
            last_ts = int(time.time() * 1000)
            tick = Tick("QUIET", last_ts, 10.0 + seq / 100, 1.0, seq, f"quiet-{seq}", "simulate")
            producer.produce(topic, encode_tick(tick), key=b"QUIET")
            producer.poll(0)
            time.sleep(0.1)
        assert producer.flush(30) == 0
        window_end = last_ts - last_ts % 5000 + 5000

        def last_bar_published() -> bool:
            rows = lake_bars(out)
            return any(r[2].timestamp() * 1000 == window_end for r in rows)

        wait_until(last_bar_published, timeout=60, interval=0.2, message="the last bar")
        landed = time.time() * 1000
        assert landed - last_ts <= (window_end - last_ts) + 5000 + 8000  # WATERMARK + a few seconds
        assert landed >= window_end + 5000 - 1000  # and not before its window could close
        bars = lake_bars(str(out))
        assert sum(r[9] for r in bars) == 40  # every tick in exactly one bar
    finally:
        stop_beats.set()
        beating.join(5)
        job.stop()
        assert job.failure() is None


def test_a_batch_that_arrives_while_stopping_is_refused_and_runs_on_restart(
    case: BarsCase, jobs: Jobs
) -> None:
    """The stop race, made deterministic: a stop is requested, then a batch with data arrives.

    The batch is refused (Spark records the refusal and does not commit it), the job reports a
    clean stop, and a restart processes exactly those ticks: nothing lost, nothing twice.
    """
    topic = case.topic
    ticks = es_ticks(2000)
    out = case.out
    settings = case.settings()
    send_hostile(case.bootstrap, topic, ticks[:1000], duplicate_share=0, garbage_every=10**9)
    job = jobs.start(settings)
    query = job.query
    assert query is not None
    wait_until(lambda: committed_batches(out) >= 1, timeout=240, message="a first batch")
    job.stopping.set()  # as stop() does first; the query is left running so a batch arrives
    send_hostile(case.bootstrap, topic, ticks[1000:], duplicate_share=0, garbage_every=10**9)
    send_heartbeat(case.bootstrap, topic, ticks[-1].ts_epoch_ms + 10 * WINDOW_MS)
    with pytest.raises(Exception, match="StoppedError"):  # Spark records the refusal
        query.awaitTermination(120)
    assert job.refused_batch is not None
    assert job.failure() is None
    assert committed_batches(out) == job.refused_batch  # the refused batch left no commit
    job.stop()  # as the CLI does once the query ended: the lake's lock is let go

    jobs.drain(settings)
    assert lake_bars(str(out)) == reference_bars(as_dicts(ticks), WINDOW_MS)
    assert_reconciled(settings)


def test_a_lake_of_the_previous_engine_is_refused_at_start_with_one_line(
    spark: SparkSession, base_settings: Settings, tmp_path: Path
) -> None:
    """The previous engine kept open windows as ticks, in records without a format number."""
    from tickstream.errors import TickstreamError

    out = tmp_path / "lake"
    old = out / "_checkpoints" / "bars_state" / "batch=7"
    old.mkdir(parents=True)
    (old / "meta.json").write_text('{"batch_id": 7, "watermark_ms": 0, "totals": {}}')
    settings = settings_for(base_settings, "127.0.0.1:9", "ticks", out)
    job = BarsJob(settings, spark)
    with pytest.raises(TickstreamError, match="written by an earlier tickstream"):
        job.start()
    assert job.query is None
    assert not (out / "_checkpoints" / "bars_index.json").exists()
