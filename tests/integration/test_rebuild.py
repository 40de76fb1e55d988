"""`tickstream lake rebuild` on a lake the real job wrote: the job's bars again, other windows
and kinds held to independent computations, --replace seen whole, bad input refused.

The lake: the 120,000 real ES ticks, shuffled within the watermark with duplicates and garbage,
through `tickstream stream --once` with tick bars on, and **no closing heartbeat**: the job's
last windows stay open, so the rebuild must leave the same windows open.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable, write_deltalake
from pyspark.sql import SparkSession

from tests.helpers import run_tickstream
from tests.integration.test_activity_bars import table_bars
from tests.integration.test_bars_job import replay_args
from tests.reference import assert_same_bars, lake_bars, lake_sql, reference_bars
from tests.streams import es_ticks, send_hostile
from tickstream.bars import rebuild as R
from tickstream.bars.state import StateStore
from tickstream.config import Settings
from tickstream.config.forms import Thresholds
from tickstream.kafka.admin import TopicSpec, ensure_topics
from tickstream.lake.layout import Lake
from tickstream.lake.lock import LakeLock

MINUTE = 60_000
TICK_BARS = "400"


@pytest.fixture(scope="module")
def job_lake(
    kafka_broker: str, base_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A lake the job wrote from the hostile ES ticks (time bars of 1 minute, tick bars of
    400), its last windows left open."""
    topic = f"t-rebuild-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_broker, [TopicSpec(topic, 3)])
    send_hostile(kafka_broker, topic, es_ticks(), seed=7)
    out = tmp_path_factory.mktemp("rebuild") / "lake"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tickstream",
            "stream",
            "--once",
            *replay_args("off", "--tick-bars", TICK_BARS),
        ],
        env=_env(out, base_settings, KAFKA_BOOTSTRAP_SERVERS=kafka_broker, KAFKA_TOPIC=topic),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def _env(out: Path | str, settings: Settings, **more: str) -> dict[str, str]:
    return {
        **os.environ,
        "OUTPUT_PATH": str(out),
        "TICKSTREAM_HOME": str(settings.tickstream_home),
        "TICKSTREAM_JARS_DIR": str(settings.jars_dir),
        "SPARK_MASTER": "local[2]",
        "CONSOLE_BARS": "false",
        **more,
    }


def rebuild_cli(
    lake: Path | str, settings: Settings, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    done = run_tickstream(_env(lake, settings), "lake", "rebuild", *args)
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def archive_ticks(lake: Path) -> list[dict[str, Any]]:
    rows = lake_sql(lake, "SELECT symbol, ts_epoch_ms, price, volume, seq, event_id FROM ticks")
    names = ("symbol", "ts_epoch_ms", "price", "volume", "seq", "event_id")
    return [dict(zip(names, row, strict=True)) for row in rows]


def complete_through(lake: Path) -> int:
    """F: the start of the job's oldest open window (its state record)."""
    snapshot = StateStore.read_latest(Lake(lake))
    return (snapshot.watermark_ms // MINUTE) * MINUTE


def test_a_rebuild_with_the_jobs_window_gives_the_jobs_bars_and_leaves_its_open_windows(
    job_lake: Path, spark: SparkSession, tmp_path: Path
) -> None:
    lake = Lake(job_lake)
    snapshot = StateStore.read_latest(lake)
    assert snapshot.open_windows, "the fixture leaves windows open"
    request = R.Request(kind="time", window_ms=MINUTE)
    built = R.plan(lake, request, MINUTE)
    assert built.complete_ms == complete_through(job_lake)
    seen: list[int] = []
    outcome = R.run(spark, lake, built, into=Lake(tmp_path / "again"), progress=seen.append)

    job_bars = lake_bars(job_lake)
    assert len(job_bars) > 1500
    assert lake_bars(tmp_path / "again") == job_bars  # every column, to the last bit
    assert outcome.bars == len(job_bars)
    # The windows the job holds open are the rebuild's open ones, with the same ticks.
    assert outcome.open_bars == len(snapshot.open_windows)
    assert outcome.open_ticks == snapshot.open_rows
    assert outcome.ticks == built.ticks == len(archive_ticks(job_lake))
    assert seen == sorted(seen)
    assert seen[-1] == outcome.ticks
    assert len(seen) == len(built.chunks)
    # The CSV export of the new lake holds the same bars.
    csv_rows = sum(
        len(p.read_text().splitlines()) - 1
        for p in (tmp_path / "again" / "bars_csv").rglob("*.csv")
    )
    assert csv_rows == len(job_bars)


def test_a_30_second_rebuild_equals_an_independent_computation(
    job_lake: Path, base_settings: Settings, tmp_path: Path
) -> None:
    into = tmp_path / "bars-30s"
    done = rebuild_cli(
        job_lake, base_settings, "--window-duration", "30 seconds", "--into", str(into)
    )
    # 30-second windows that end at or before F are closed; the reference is DuckDB over the
    # archive's ticks.
    end = complete_through(job_lake)
    ticks = archive_ticks(job_lake)
    closed = [t for t in ticks if t["ts_epoch_ms"] - t["ts_epoch_ms"] % 30_000 + 30_000 <= end]
    want = reference_bars(closed, 30_000)
    assert len(want) > 3000
    assert_same_bars(lake_bars(into), want)
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"rebuilt {len(want):,} time bars (30s) from {len(ticks):,} ticks")
    assert "ticks/s, whole command" in lines[0]
    assert lines[1].startswith("left open: ")

    # Read like any lake; the stored 30 s bars roll up, and finer ones point to a rebuild.
    shown = subprocess.run(
        [sys.executable, "-m", "tickstream", "bars", "--resolution", "1m", "--format", "csv"],
        env=_env(into, base_settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert len(shown.stdout.splitlines()) - 1 == len(lake_bars(job_lake))
    finer = subprocess.run(
        [sys.executable, "-m", "tickstream", "bars", "--resolution", "10s"],
        env=_env(into, base_settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert finer.returncode != 0
    assert finer.stderr.count("\n") == 1
    assert "tickstream lake rebuild" in finer.stderr


def test_a_tick_bar_rebuild_gives_the_jobs_tick_bars(job_lake: Path, tmp_path: Path) -> None:
    lake = Lake(job_lake)
    request = R.Request(kind="tick", thresholds=Thresholds.parse(TICK_BARS))
    built = R.plan(lake, request, MINUTE)
    outcome = R.run(None, lake, built, into=Lake(tmp_path / "ticks"))
    job = table_bars(job_lake, "tick")
    assert len(job) > 200
    assert table_bars(tmp_path / "ticks", "tick") == job
    assert outcome.bars == len(job)
    assert outcome.open_bars == 1  # ES's unfinished bar, as the job holds it
    state = StateStore.read_latest(lake).activity["tick"].open["ES"]
    after = [t for t in archive_ticks(job_lake) if t["ts_epoch_ms"] >= built.complete_ms]
    assert outcome.open_ticks == state.ticks + len(after)


def _date_bars(lake: Path, date: str) -> list[tuple[Any, ...]]:
    return sorted(
        (r["window_start"], r["close"])
        for r in DeltaTable(str(lake / "bars")).to_pyarrow_table().to_pylist()
        if r["date"] == date
    )


def test_replace_over_one_date_is_seen_whole_and_refused_while_a_job_runs(
    job_lake: Path, base_settings: Settings, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    shutil.copytree(job_lake, lake)
    date = "2013-09-02"
    good = _date_bars(lake, date)
    others = [b for b in lake_bars(lake) if b[-1] != date]
    # Bars "from a buggy version": that date's closes are off by 1000.
    table = DeltaTable(str(lake / "bars"))
    rows = table.to_pyarrow_table(filters=[("date", "=", date)])
    damaged = rows.set_column(
        rows.schema.get_field_index("close"),
        "close",
        [[c + 1000 for c in rows.column("close").to_pylist()]],
    )
    write_deltalake(str(lake / "bars"), damaged, mode="overwrite", predicate=f"date = '{date}'")
    bad = _date_bars(lake, date)
    assert bad != good
    assert len(bad) == len(good) > 500

    # While a job holds the lake, --replace is refused in one line, and writes nothing.
    holder = LakeLock(Lake(lake))
    holder.acquire()
    try:
        refused = rebuild_cli(
            lake, base_settings, "--from", date, "--to", "2013-09-03", "--replace", check=False
        )
    finally:
        holder.release()
    assert refused.returncode != 0
    assert refused.stderr.count("\n") == 1
    assert "another job is running" in refused.stderr
    assert _date_bars(lake, date) == bad

    # A reader reading the date all along sees the damaged bars or the mended ones, never a mix.
    seen: set[tuple[Any, ...]] = set()
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            seen.add(tuple(_date_bars(lake, date)))

    reader = threading.Thread(target=read)
    version = DeltaTable(str(lake / "bars")).version()
    reader.start()
    try:
        done = rebuild_cli(lake, base_settings, "--from", date, "--to", "2013-09-03", "--replace")
    finally:
        stop.set()
        reader.join()
    assert seen <= {tuple(bad), tuple(good)}
    assert tuple(bad) in seen
    assert len(seen) >= 1
    assert _date_bars(lake, date) == good
    assert [b for b in lake_bars(lake) if b[-1] != date] == others
    assert DeltaTable(str(lake / "bars")).version() == version + 1  # one commit
    assert f"in place of {len(good):,} stored bars" in done.stdout


@pytest.mark.parametrize(
    ("case", "args", "says"),
    [
        (
            "window",
            ("--window-duration", "1.5 ms", "--into", "{new}"),
            "whole number of milliseconds",
        ),
        (
            "empty range",
            ("--from", "2020-01-01", "--to", "2020-01-02", "--into", "{new}"),
            "no ticks",
        ),
        ("no archive", ("--into", "{new}"), "no tick archive"),
        ("into a lake", ("--into", "{lake}"), "already holds a lake"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    job_lake: Path,
    base_settings: Settings,
    tmp_path: Path,
    case: str,
    args: tuple[str, ...],
    says: str,
) -> None:
    source = tmp_path / "empty" if case == "no archive" else job_lake
    source.mkdir(exist_ok=True)
    new = tmp_path / "new"
    given = [a.format(new=new, lake=job_lake) for a in args]
    before = sorted(p.name for p in job_lake.iterdir())
    done = rebuild_cli(source, base_settings, *given, check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert says in done.stderr, done.stderr
    assert not new.exists()
    assert sorted(p.name for p in job_lake.iterdir()) == before
