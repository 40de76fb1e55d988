"""Bars at every resolution, read from the lake the job wrote, against an independent
computation straight from its tick archive (DuckDB SQL) over the real ES ticks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from pyspark.sql import SparkSession

from tests.integration.test_bars_job import settings_for
from tests.jobs import Jobs
from tests.reference import lake_sql, reference_bars, reference_session_bars
from tests.streams import es_ticks, send_heartbeat, send_hostile
from tests.unit.test_resample import assert_same_bars
from tickstream.config import Settings
from tickstream.kafka.admin import TopicSpec, ensure_topics
from tickstream.lake import read_bars

HOUR_MS = 3_600_000
RESOLUTIONS = ["1m", "5m", "15m", "30m", "1h", "4h", "1d"]
MS = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000, "1h": HOUR_MS}


@pytest.fixture(scope="module")
def es_lake(
    kafka_broker: str,
    spark: SparkSession,
    base_settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """The job's lake over the 120,000 real ES ticks (1-minute bars), drained once."""
    topic = f"resolutions-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_broker, [TopicSpec(topic, 3)])
    out = tmp_path_factory.mktemp("resolutions") / "lake"
    settings = settings_for(base_settings, kafka_broker, topic, out)
    ticks = es_ticks()
    send_hostile(kafka_broker, topic, ticks, duplicate_share=0, garbage_every=10**9)
    send_heartbeat(kafka_broker, topic, ticks[-1].ts_epoch_ms + 10 * HOUR_MS)
    with Jobs(spark, "test_resolutions.es_lake") as jobs:
        jobs.drain(settings)
    return out


def archive(out: Path) -> list[dict[str, Any]]:
    """The tick archive, read through its Delta log (the job's own record of each tick)."""
    rows = lake_sql(out, "SELECT symbol, ts_epoch_ms, price, volume, seq, event_id FROM ticks")
    keys = ("symbol", "ts_epoch_ms", "price", "volume", "seq", "event_id")
    return [dict(zip(keys, row, strict=True)) for row in rows]


@pytest.mark.parametrize("text", RESOLUTIONS)
def test_every_resolution_equals_the_computation_from_the_tick_archive(
    es_lake: Path, text: str
) -> None:
    ticks = archive(es_lake)
    assert len(ticks) == 120_000
    window = {"4h": 4 * HOUR_MS, "1d": 24 * HOUR_MS}.get(text) or MS[text]
    got = read_bars(es_lake, symbol="ES", resolution=text)
    assert_same_bars(got, reference_bars(ticks, window))


def test_cme_trading_days_equal_the_computation_from_the_tick_archive(es_lake: Path) -> None:
    """ES trades in CME days: 17:00 Chicago the evening before to 16:00. The ticks run from
    Sunday 2013-09-01 17:00 over Labor Day (Monday 09-02, a CME holiday with an early close)
    into Tuesday's session."""
    got = read_bars(es_lake, symbol="ES", resolution="1d", session="cme-futures")
    expected = reference_session_bars(archive(es_lake), "cme-futures")
    assert_same_bars(got, expected)
    assert list(got["date"]) == ["2013-09-02", "2013-09-03"]
    # Labor Day's session closes at noon Chicago (17:00 UTC): the evening's ticks count in
    # Tuesday's session, which opens at 17:00 Chicago (22:00 UTC).
    ends, starts = [str(t) for t in got["window_end"]], [str(t) for t in got["window_start"]]
    assert (ends[0], starts[1]) == ("2013-09-02 17:00:00+00:00", "2013-09-02 22:00:00+00:00")


def test_the_python_api_and_the_cli_agree(es_lake: Path, tmp_path: Path) -> None:
    api = read_bars(es_lake, symbol=["ES"], resolution="1h", start="2013-09-02T00:00")
    env = {**os.environ, "OUTPUT_PATH": str(es_lake)}
    cli = [sys.executable, "-m", "tickstream", "bars", "--symbol", "ES", "--resolution", "1h"]
    shown = subprocess.run(
        [*cli, "--from", "2013-09-02T00:00", "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    rows = [json.loads(line) for line in shown.stdout.splitlines()]
    assert len(rows) == len(api) > 20
    assert [r["close"] for r in rows] == list(api["close"])
    assert rows[0]["window_start"] == "2013-09-02 00:00:00"

    parquet = tmp_path / "hourly.parquet"
    subprocess.run(
        [*cli, "--format", "parquet", "--output", str(parquet)],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    table = pq.read_table(parquet).to_pandas()
    whole = read_bars(es_lake, symbol="ES", resolution="1h")
    assert list(table.columns) == list(whole.columns)
    assert list(table["close"]) == list(whole["close"])
    assert list(table["trade_count"]) == list(whole["trade_count"])

    arrow = read_bars(es_lake, symbol="ES", resolution="4h", output="arrow")
    assert arrow.num_rows == len(read_bars(es_lake, symbol="ES", resolution="4h"))

    finer = subprocess.run([*cli[:-1], "30s"], env=env, capture_output=True, text=True, timeout=120)
    assert finer.returncode == 2
    assert finer.stderr.strip() == (
        "tickstream: error: resolution 30s is finer than the stored bars (1m); use a whole "
        "multiple of 1m, or make 30s bars from the tick archive: tickstream lake rebuild "
        "--window-duration 30s --into PATH"
    )
