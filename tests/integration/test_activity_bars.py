"""Tick, volume and dollar bars from the real job, held to mlfinpy's bars of the same ticks.

The 120,000 real ES ticks go to the topic shuffled within the watermark, with duplicates and
garbage; the job is SIGKILLed three times (once the moment its activity bars reach Kafka:
mid-publish) and restarted, then drains the topic. Each kind's table, and what a
read_committed consumer of ACTIVITY_BARS_TOPIC sees, equal mlfinpy's bars of the ticks the job
accepted, in (event time, seq, event_id) order, bar by bar: open, high, low, close, volume,
dollar value, tick count and the last tick's time as mlfinpy gives them, and the first tick's
time from the same ordered ticks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deltalake import DeltaTable

from tests.helpers import wait_until
from tests.integration.test_bars_job import (
    assert_published_exactly_once,
    assert_reconciled,
    committed_batches,
    drain_once,
    replay_args,
    send_es_hostile,
    sigkill,
)
from tests.kafka_helpers import TopicEnds, consume_all
from tests.mlfinpy.reference import mlfinpy_bars
from tests.reference import check_activity_bar_message, lake_sql
from tickstream.config import load_settings
from tickstream.lake import read_bars
from tickstream.reconcile import reconcile
from tickstream.ticks.schema import Tick

# About 250-300 bars of each kind from the 120,000 ticks; the dollar bars' threshold is given
# by symbol, with a default that no symbol here uses.
SETTINGS = {"tick": "400", "volume": "1500", "dollar": "ES=2500000,*=1e9"}
THRESHOLDS = {"tick": 400.0, "volume": 1500.0, "dollar": 2_500_000.0}
KINDS = tuple(SETTINGS)


def expected_bars(ticks: list[Tick]) -> dict[str, list[tuple[Any, ...]]]:
    """mlfinpy's bars of each kind, with each bar's first tick's time and its number."""
    ordered = sorted(ticks, key=lambda t: (t.ts_epoch_ms, t.seq, t.event_id))
    rows = [(t.ts_epoch_ms, t.price, t.volume) for t in ordered]
    cases = [(kind, THRESHOLDS[kind], rows) for kind in KINDS]
    expected = {}
    for kind, bars in zip(KINDS, mlfinpy_bars(cases), strict=True):
        first, found = 0, []
        for number, (last_ms, o, h, lo, c, volume, dollar, count) in enumerate(bars, 1):
            first_ms = ordered[first].ts_epoch_ms
            found.append((number, first_ms, last_ms, o, h, lo, c, volume, dollar, count))
            first += count
        expected[kind] = found
    return expected


def has_late(out: Path) -> bool:
    return (out / "late" / "_delta_log").is_dir()


def table_bars(out: Path, kind: str) -> list[tuple[Any, ...]]:
    """A kind's table, read through its Delta log, in the order of the bars' numbers."""
    rows = DeltaTable(str(out / f"{kind}_bars")).to_pyarrow_table().to_pylist()
    assert {r["symbol"] for r in rows} == {"ES"}
    assert {r["threshold"] for r in rows} == {THRESHOLDS[kind]}
    assert all(r["date"] == r["last_time"].strftime("%Y-%m-%d") for r in rows)
    return sorted(
        (
            r["number"],
            int(r["first_time"].timestamp() * 1000),
            int(r["last_time"].timestamp() * 1000),
            r["open"],
            r["high"],
            r["low"],
            r["close"],
            r["volume"],
            r["dollar_value"],
            r["trade_count"],
        )
        for r in rows
    )


def topic_bars(bootstrap: str, topic: str) -> dict[str, Counter[tuple[Any, ...]]]:
    """What a read_committed consumer of the activity bars topic sees, by kind."""
    seen: dict[str, Counter[tuple[Any, ...]]] = {kind: Counter() for kind in KINDS}
    for record in consume_all(bootstrap, topic):
        bar = json.loads(record.value)
        check_activity_bar_message(bar)
        assert record.key == b"ES"
        seen[bar["kind"]][
            (
                bar["number"],
                bar["first_time_ms"],
                bar["last_time_ms"],
                bar["open"],
                bar["high"],
                bar["low"],
                bar["close"],
                bar["volume"],
                bar["dollar_value"],
                bar["trade_count"],
            )
        ] += 1
    return seen


def test_killed_three_times_the_activity_bars_equal_mlfinpys(
    kafka_broker: str,
    make_topic: Callable[..., str],
    stream_proc: Callable[..., subprocess.Popen[str]],
    tmp_path: Path,
) -> None:
    topic = make_topic(partitions=3)
    bars_topic = make_topic(partitions=3)
    activity_topic = make_topic(partitions=3)
    ticks = send_es_hostile(kafka_broker, topic)
    out = tmp_path / "lake"
    args = replay_args(
        bars_topic,
        "--activity-bars-topic",
        activity_topic,
        "--tick-bars",
        SETTINGS["tick"],
        "--volume-bars",
        SETTINGS["volume"],
        "--dollar-bars",
        SETTINGS["dollar"],
    )

    # Three crashes: the first the moment the activity bars topic grows (records of an open
    # transaction, or its commit marker), the others at moments after a batch committed.
    ends = TopicEnds(kafka_broker, activity_topic)
    for crash in range(3):
        proc = stream_proc(topic, out, *args)
        done = committed_batches(out)
        if crash == 0:
            wait_until(lambda: ends.total() > 0, timeout=240, interval=0.02, message="published")
        else:
            wait_until(lambda: committed_batches(out) > done, timeout=240, message="progress")  # noqa: B023
            time.sleep(0.7 * crash)
        sigkill(proc)
    ends.close()
    drain_once(stream_proc(topic, out, "--once", *args))

    # The reference: mlfinpy on the ticks the job accepted (every tick but a late one).
    late = (
        {row[0] for row in lake_sql(out, "SELECT event_id FROM late")} if has_late(out) else set()
    )
    expected = expected_bars([t for t in ticks if t.event_id not in late])
    published = topic_bars(kafka_broker, activity_topic)
    for kind in KINDS:
        assert len(expected[kind]) > 200, kind
        assert table_bars(out, kind) == expected[kind], kind
        assert [bar for bar, n in published[kind].items() if n > 1] == [], kind
        assert sorted(published[kind]) == expected[kind], kind

    # Read back as a user does; every tick and bar accounted for, the time bars exact on Kafka.
    dollar = read_bars(out, symbol="ES", kind="dollar")
    assert list(dollar["number"]) == list(range(1, len(expected["dollar"]) + 1))
    shown = subprocess.run(
        [sys.executable, "-m", "tickstream", "bars", "--kind", "dollar", "--format", "json"],
        env={**os.environ, "OUTPUT_PATH": str(out)},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    rows = [json.loads(line) for line in shown.stdout.splitlines()]
    assert [r["close"] for r in rows] == list(dollar["close"])
    assert [r["dollar_value"] for r in rows] == [bar[8] for bar in expected["dollar"]]
    refused = subprocess.run(
        [sys.executable, "-m", "tickstream", "bars", "--kind", "volume", "--resolution", "1h"],
        env={**os.environ, "OUTPUT_PATH": str(out)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode != 0
    assert refused.stderr.count("\n") == 1
    assert "volume bars are spaced by activity, not by the clock" in refused.stderr
    settings = load_settings(
        {
            "kafka_bootstrap_servers": kafka_broker,
            "kafka_topic": topic,
            "output_path": out,
            "bars_topic": bars_topic,
            "activity_bars_topic": activity_topic,
        }
    )
    assert_reconciled(settings)  # each kind's bars and ticks, and each bar once on Kafka
    checked = "\n".join(reconcile(settings).lines())
    for kind in KINDS:
        assert f"[ok ] {kind} bars on {activity_topic} = rows in {kind}_bars/" in checked
        assert f"[ok ] ticks cut into {kind} bars = ticks in closed {kind} bars" in checked
    assert_published_exactly_once(kafka_broker, bars_topic, out)
