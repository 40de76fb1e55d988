"""Keeping the lake's Delta tables cheap to read: compaction (OPTIMIZE) and retention (VACUUM).

The job appends one small file per table, date and micro-batch: at a 1-second trigger, up to
86,400 files a day in a date partition of ``ticks``. Delta's ``OPTIMIZE`` rewrites a partition's
small files into a few large ones in one commit that adds no rows (``dataChange=false``): a
reader sees the rows of the version it reads, before or after, never both or neither. The job's
appends are blind (they read nothing), so they never conflict with a compaction committing
between them (Delta's conflict rules for a commit that changes no data).

:class:`Compactor` runs ``OPTIMIZE`` in a thread of the job's driver, on a schedule, for the date
partitions no more rows are expected in (see :func:`finished_before`): ingestion goes on while
it runs, its Spark jobs sharing the cores with the micro-batches in a pool of their own.

``VACUUM`` deletes the files that compaction replaced (and those of a micro-batch that crashed
before its commit) once they are older than the retention: until then, a reader that started
before a compaction can still read the files its version lists.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from deltalake import DeltaTable
from pyspark.sql import SparkSession

from tickstream.bars.writer import DRIVER_COMMITS, DRIVER_TABLES, delta_sql_path
from tickstream.jvm.spark import MAINTENANCE_POOL
from tickstream.lake.layout import ACTIVITY_TABLES, DELTA_TABLES, Lake
from tickstream.lake.read import is_delta_table

# Z-ordering clusters rows with nearby values of these columns into the same files, so a read
# for one symbol and a time range skips the others (it needs several files per partition).
ZORDER_COLUMNS = {
    "ticks": ("symbol", "ts"),
    "late": ("symbol", "ts"),
    "bars": ("symbol", "window_start"),
    **dict.fromkeys(ACTIVITY_TABLES.values(), ("symbol", "number")),
}

# Delta refuses a VACUUM retention below 7 days unless its safety check is turned off.
DELTA_MIN_RETENTION_HOURS = 168.0


@dataclass(frozen=True)
class Compacted:
    """What one OPTIMIZE did to one table."""

    table: str
    files_removed: int
    files_added: int
    partitions: int


@dataclass(frozen=True)
class Vacuumed:
    table: str
    files_deleted: int


def optimize(
    spark: SparkSession,
    lake: Lake,
    *,
    tables: Iterable[str] = DELTA_TABLES,
    before: dict[str, str] | None = None,
    zorder: bool = False,
) -> list[Compacted]:
    """Compact each written table's small files (Delta ``OPTIMIZE``), optionally z-ordered.

    ``before`` maps a table to a date (``YYYY-MM-DD``): only its partitions before that date are
    compacted; a table missing from it is left alone. Without ``before``, every partition is.
    The tables Spark writes are compacted by Spark; those the driver writes (``bars``) by the
    ``deltalake`` package, as their appends are (one kind of writer per table).
    """
    done = []
    for table in tables:
        if not is_delta_table(lake, table):
            continue
        if before is not None and table not in before:
            continue
        until = before[table] if before is not None else None
        if until is not None:
            date.fromisoformat(until)  # a date, nothing else, goes into the SQL
        columns = ZORDER_COLUMNS.get(table) if zorder else None
        if table in DRIVER_TABLES:
            done.append(_optimize_driver_table(lake, table, until, columns))
            continue
        sql = f"OPTIMIZE delta.`{delta_sql_path(lake, table)}`"
        if until is not None:
            sql += f" WHERE date < '{until}'"
        if columns:
            sql += f" ZORDER BY ({', '.join(columns)})"
        metrics = spark.sql(sql).collect()[0]["metrics"]
        done.append(
            Compacted(
                table,
                files_removed=int(metrics["numFilesRemoved"]),
                files_added=int(metrics["numFilesAdded"]),
                partitions=int(metrics["partitionsOptimized"]),
            )
        )
    return done


def _optimize_driver_table(
    lake: Lake, table: str, until: str | None, columns: tuple[str, ...] | None
) -> Compacted:
    """OPTIMIZE by the ``deltalake`` package, a commit that changes no data as Spark's is."""
    filters = [("date", "<", until)] if until is not None else None
    with DRIVER_COMMITS:
        found = _driver_table(lake, table)
        if columns:
            metrics = found.optimize.z_order(columns, partition_filters=filters)
        else:
            metrics = found.optimize.compact(partition_filters=filters)
    return Compacted(
        table,
        files_removed=int(metrics["numFilesRemoved"]),
        files_added=int(metrics["numFilesAdded"]),
        partitions=int(metrics["partitionsOptimized"]),
    )


def _driver_table(lake: Lake, table: str) -> DeltaTable:
    """A table the driver writes, opened to write (see ``Lake.write_options``)."""
    return DeltaTable(lake.delta_uri(table), storage_options=lake.write_options)


def vacuum(
    spark: SparkSession,
    lake: Lake,
    retention_hours: float,
    *,
    tables: Iterable[str] = DELTA_TABLES,
) -> list[Vacuumed]:
    """Delete files no version newer than ``retention_hours`` ago still lists (Delta
    ``VACUUM``): files compaction replaced, files of micro-batches that crashed uncommitted."""
    check = "spark.databricks.delta.retentionDurationCheck.enabled"
    # The retention is the user's explicit setting (LAKE_RETENTION, validated); Delta's check
    # would refuse anything below its 7-day default.
    spark.conf.set(check, str(retention_hours >= DELTA_MIN_RETENTION_HOURS).lower())
    # VACUUM lists the table's folders with this many tasks (Spark's default: 10,000). Measured
    # on a lake of two small tables: 84 s with the default, 2 s with 8 (a task per folder).
    listing = "spark.sql.sources.parallelPartitionDiscovery.parallelism"
    spark.conf.set(listing, str(max(8, 4 * spark.sparkContext.defaultParallelism)))
    hours = f"{retention_hours:.6f}".rstrip("0").rstrip(".")
    done = []
    for table in tables:
        if not is_delta_table(lake, table):
            continue
        if table in DRIVER_TABLES:
            with DRIVER_COMMITS:
                # Whole hours, rounded up: never a file younger than the retention.
                deleted = _driver_table(lake, table).vacuum(
                    math.ceil(retention_hours), dry_run=False, enforce_retention_duration=False
                )
            done.append(Vacuumed(table, len(deleted)))
            continue
        path = delta_sql_path(lake, table)
        doomed = spark.sql(f"VACUUM delta.`{path}` RETAIN {hours} HOURS DRY RUN").count()
        spark.sql(f"VACUUM delta.`{path}` RETAIN {hours} HOURS").collect()
        done.append(Vacuumed(table, doomed))
    return done


def finished_before(watermark_ms: int, now_ms: int) -> dict[str, str]:
    """The date before which each table's partitions take no more rows in the normal run.

    ``ticks`` and ``bars`` are partitioned by event time and take nothing older than the
    watermark; ``rejects`` by the time Kafka received the message (about now). ``late`` takes a
    row for any old date, rarely: its partitions before the watermark's date are compacted again
    when a late tick lands there.
    """

    def day(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")

    by_event_time = day(watermark_ms)
    return {
        "ticks": by_event_time,
        "bars": by_event_time,
        "late": by_event_time,
        "rejects": day(now_ms),
        # An activity bar's date is its last tick's: cut only through the watermark.
        **dict.fromkeys(ACTIVITY_TABLES.values(), by_event_time),
    }


class Compactor:
    """Compacts each table's date partitions once they are finished, in a thread of the job.

    Every ``interval`` seconds it asks which dates are finished (:func:`finished_before`, from
    ``watermark``, the job's watermark in epoch ms, None before the first batch). A table is
    compacted when that date has moved since its last compaction: once a day in a steady run
    (``ticks`` and ``bars`` take no rows before it; ``late`` rows that land in older dates
    meanwhile are compacted at the next move). The thread ends when ``active`` (the query runs)
    turns false, or at :meth:`stop`. A compaction that fails (a full disk, a concurrent
    OPTIMIZE) is reported through ``notify`` and tried again at the next turn: the data is
    committed already, compaction only makes it cheaper to read.
    """

    def __init__(
        self,
        spark: SparkSession,
        lake: Lake,
        interval: float,
        watermark: Callable[[], int | None],
        active: Callable[[], bool],
        notify: Callable[[str], None],
        clock: Callable[[], float] = lambda: datetime.now(UTC).timestamp(),
    ) -> None:
        self.spark = spark
        self.lake = lake
        self.interval = interval
        self.watermark = watermark
        self.active = active
        self.notify = notify
        self.clock = clock
        self.compacted_before: dict[str, str] = {}  # table -> the date it was compacted up to
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lake-compactor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 300.0) -> None:
        """Stop after the running compaction (an OPTIMIZE cut short commits nothing anyway)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def due(self) -> dict[str, str]:
        """The tables whose finished dates moved since their last compaction, with the date."""
        watermark = self.watermark()
        if watermark is None:
            return {}
        finished = finished_before(watermark, int(self.clock() * 1000))
        return {t: d for t, d in finished.items() if self.compacted_before.get(t) != d}

    def run_once(self) -> list[Compacted]:
        due = self.due()
        if not due:
            return []
        done = optimize(self.spark, self.lake, before=due)
        self.compacted_before.update(due)  # written tables, and those without a commit yet
        for c in done:
            if c.files_removed:
                self.notify(
                    f"compacted {c.table} before {due[c.table]}: {c.files_removed} files into "
                    f"{c.files_added} ({c.partitions} date partition"
                    f"{'s' if c.partitions != 1 else ''})"
                )
        return done

    def _loop(self) -> None:
        self.spark.sparkContext.setLocalProperty("spark.scheduler.pool", MAINTENANCE_POOL)
        while not self._stop.wait(self.interval) and self.active():
            try:
                self.run_once()
            except Exception as exc:  # reported; the next turn tries again
                if self._stop.is_set():
                    return  # the job is stopping, Spark with it
                first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else repr(exc)
                self.notify(f"compaction failed, trying again in {self.interval:g} s: {first}")
