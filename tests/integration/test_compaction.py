"""Compaction and retention of the lake's Delta tables, while the job writes and a reader reads."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from tests.integration.test_bars_job import as_dicts, assert_reconciled, settings_for
from tests.jobs import Jobs
from tests.reference import has_commit, lake_bars, lake_sql, reference_bars
from tests.streams import es_ticks, send_heartbeat, send_hostile
from tickstream.bars.maintenance import optimize, vacuum
from tickstream.config import Settings
from tickstream.lake.layout import Lake

HOUR_MS = 3_600_000


class Reader:
    """Reads the ``ticks`` table through its Delta log (the deltalake package) over and over,
    and records every read that had a doubled row or lost a row an earlier read had."""

    def __init__(self, table: Path, pause: float = 0.25) -> None:
        self.table = table
        self.pause = pause
        self.reads: list[tuple[int, int]] = []  # (table version, rows)
        self.faults: list[str] = []
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Reader:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(120)
        self.read()  # and once more after the writer ended: the last read sees every row

    def _loop(self) -> None:
        while not self._stop.is_set():
            if not has_commit(self.table):
                self._stop.wait(0.2)
                continue
            self.read()
            self._stop.wait(self.pause)  # leave the cores to the writer most of the time

    def read(self) -> None:
        dt = DeltaTable(self.table.as_posix())
        ids = dt.to_pyarrow_table(columns=["event_id"]).column("event_id").to_pylist()
        now = set(ids)
        if len(now) != len(ids):
            self.faults.append(f"version {dt.version()}: {len(ids) - len(now)} doubled rows")
        if not self.seen <= now:
            lost = len(self.seen - now)
            self.faults.append(f"version {dt.version()}: {lost} rows an earlier read had")
        self.seen = now
        self.reads.append((dt.version(), len(ids)))


def files_per_date(table: Path) -> dict[str, int]:
    actions = pa.table(DeltaTable(table.as_posix()).get_add_actions(flatten=True)).to_pydict()
    return dict(Counter(actions["partition.date"]))


def data_files(table: Path) -> set[Path]:
    """The table's Parquet data files on disk (not its log's checkpoints)."""
    return set(table.glob("date=*/*.parquet"))


def optimize_versions(table: Path) -> list[int]:
    history = DeltaTable(table.as_posix()).history()
    return sorted(h["version"] for h in history if h["operation"] == "OPTIMIZE")


def all_ticks(out: Path) -> list[tuple[Any, ...]]:
    return lake_sql(out, "SELECT * FROM ticks ORDER BY event_id")


def test_the_job_compacts_the_dates_it_has_finished_while_it_runs(
    kafka_broker: str,
    make_topic: Callable[..., str],
    jobs: Jobs,
    base_settings: Settings,
    tmp_path: Path,
) -> None:
    """Over 50 micro-batches, the job compacts each date partition the watermark has left, by
    itself, while ingestion goes on; a reader running all along never sees a row twice or
    loses one, and the bars still equal the independent computation."""
    topic = make_topic(partitions=3)
    ticks = es_ticks()[::24]  # 5,000 real ticks over three dates (2013-09-01 to 09-03, UTC)
    send_hostile(kafka_broker, topic, ticks, duplicate_share=0, garbage_every=10**9)
    send_heartbeat(kafka_broker, topic, ticks[-1].ts_epoch_ms + 2 * HOUR_MS)
    out = tmp_path / "lake"
    settings = settings_for(
        base_settings,
        kafka_broker,
        topic,
        out,
        max_offsets_per_trigger=100,  # about 50 micro-batches, each a commit to ticks
        window_duration="1 hour",
        lake_compaction_interval="1 second",
    )
    ticks_table = out / "ticks"
    with Reader(ticks_table) as reader:
        job = jobs.drain(settings)
    assert job.latest_snapshot().batch_id >= 49

    # Two compactions of ticks, each as the watermark left a date; the date the watermark is
    # still in keeps its small files.
    compactions = optimize_versions(ticks_table)
    assert len(compactions) == 2
    per_date = files_per_date(ticks_table)
    assert per_date["2013-09-01"] == 1
    assert per_date["2013-09-02"] == 1
    assert per_date["2013-09-03"] > 10
    # The reader read before and after the job's compactions, and never saw a fault.
    versions = [v for v, _ in reader.reads]
    assert min(versions) < compactions[0] < compactions[-1] < max(versions)
    assert reader.faults == []
    assert len(reader.seen) == len(ticks)

    assert lake_bars(str(out)) == reference_bars(as_dicts(ticks), HOUR_MS)
    assert_reconciled(settings)


# Micro-batches of the job before `lake optimize`: each a commit to ``ticks`` and one small file
# (or two, across midnight). 100 make ten Delta checkpoints (one per ten commits) and a hundred
# files over three dates, which is what compaction and VACUUM work through; the test ran 500
# until issue 21, at about a second a micro-batch (7 to 15 minutes of CI) for the same property.
BATCHES = 100


def test_many_micro_batches_compacted_then_vacuumed_while_a_reader_reads(
    kafka_broker: str,
    make_topic: Callable[..., str],
    spark: SparkSession,
    jobs: Jobs,
    base_settings: Settings,
    tmp_path: Path,
) -> None:
    """The job runs 100 micro-batches, each a commit to ``ticks``; then `lake optimize` leaves
    one file per date with the same rows, a reader running during the compaction never sees a
    row twice or misses one, and VACUUM deletes only replaced files."""
    topic = make_topic(partitions=3)
    ticks = es_ticks()[::24][:5000]
    send_hostile(kafka_broker, topic, ticks, duplicate_share=0, garbage_every=10**9, seed=5)
    send_heartbeat(kafka_broker, topic, ticks[-1].ts_epoch_ms + 2 * HOUR_MS)
    settings = settings_for(
        base_settings,
        kafka_broker,
        topic,
        tmp_path,
        # 5,000 ticks and 3 heartbeats: BATCHES micro-batches, each a commit to ticks
        max_offsets_per_trigger=len(ticks) // BATCHES,
        window_duration="1 hour",
        lake_compaction=False,  # compacted by hand below
    )
    job = jobs.drain(settings)
    assert job.latest_snapshot().batch_id >= BATCHES - 1

    ticks_table = tmp_path / "ticks"
    assert len(DeltaTable(ticks_table.as_posix()).history()) >= BATCHES
    small = files_per_date(ticks_table)
    assert sum(small.values()) >= BATCHES
    before = all_ticks(tmp_path)
    assert len(before) == 5000

    with Reader(ticks_table, pause=0.05) as reader:
        done = {c.table: c for c in optimize(spark, Lake(tmp_path))}
    assert done["ticks"].files_removed == sum(small.values())
    assert files_per_date(ticks_table) == {"2013-09-01": 1, "2013-09-02": 1, "2013-09-03": 1}
    assert all_ticks(tmp_path) == before
    (compaction,) = optimize_versions(ticks_table)
    versions = [v for v, _ in reader.reads]
    assert min(versions) < compaction <= max(versions)  # read before and after it
    assert reader.faults == []

    # VACUUM with no retention deletes every replaced file; what the log lists stays.
    on_disk = data_files(ticks_table)
    listed = {Path(uri) for uri in DeltaTable(ticks_table.as_posix()).file_uris()}
    assert listed < on_disk
    deleted = {v.table: v.files_deleted for v in vacuum(spark, Lake(tmp_path), 0.0)}
    assert deleted["ticks"] == len(on_disk - listed)
    assert data_files(ticks_table) == listed
    assert all_ticks(tmp_path) == before
