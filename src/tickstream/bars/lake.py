"""Writing the lake so that any reader sees each micro-batch exactly once and whole.

``bars``, ``ticks``, ``rejects`` and ``late`` are Delta Lake tables partitioned by ``date``. A
micro-batch appends to each table in one Delta commit, so a reader of the table (Spark, the
``deltalake`` package, anything that reads Delta's log) sees all of the batch's rows, across
every date it spans, or none of them. Each commit carries the job's id and the batch id in its
``commitInfo.userMetadata``: a batch that runs again after a crash finds its commit already
there and skips the table instead of appending the rows twice (see :meth:`LakeWriter.append`).

``bars_csv`` stays a folder of plain CSV files, one per date and batch: Spark writes a batch's
rows into a staging folder under ``_checkpoints/``, then each staged file is renamed into place
under a name fixed by the batch (``bars_csv/date=YYYY-MM-DD/part-<batch id>.csv``). A rename is
atomic, and a batch that runs again writes the same names: it replaces its files.

The lake must be on a filesystem every Spark process sees at the same path (a local folder in
local mode; a shared mount on a cluster).
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from tickstream.lake import DELTA_TABLES

# Marks the job's commits in each table's Delta log: ``<TXN_APP_ID>:<batch id>`` in their
# ``commitInfo.userMetadata`` (see LakeWriter.append).
TXN_APP_ID = "tickstream-bars-job"


def last_committed_batch(log: Path) -> int:
    """The batch id of the newest commit the job made to a table (-1 if none).

    Commits are read newest first; the job's are marked ``<TXN_APP_ID>:<batch id>`` in their
    ``commitInfo.userMetadata``. A commit by someone else (compaction) is stepped over.
    """
    if not log.is_dir():
        return -1
    for commit in sorted(log.glob("*.json"), reverse=True):
        for line in commit.read_text(encoding="utf-8").splitlines():
            info = json.loads(line).get("commitInfo") if line.strip() else None
            marker = (info or {}).get("userMetadata") or ""
            app, _, batch = marker.rpartition(":")
            if app == TXN_APP_ID and batch.isdigit():
                return int(batch)
    return -1


def parquet_tables(root: Path) -> list[str]:
    """Tables the previous tickstream wrote as plain Parquet files (``date=*/part-*.parquet``
    without a Delta log): the job refuses to add Delta commits beside them."""
    return [
        table
        for table in DELTA_TABLES
        if not (root / table / "_delta_log").is_dir()
        and any((root / table).glob("date=*/*.parquet"))
    ]


def delta_sql_path(root: Path, table: str) -> str:
    """The table's path as it goes between backquotes in Delta's SQL (``delta.`<path>```)."""
    return (root / table).as_posix().replace("`", "``")


def convert_to_delta(spark: SparkSession, root: Path) -> list[str]:
    """Make each plain-Parquet table of the lake a Delta table in place (Delta's ``CONVERT TO
    DELTA``: the files stay, a log that lists them is written). Returns the tables converted."""
    converted = parquet_tables(root)
    for table in converted:
        path = delta_sql_path(root, table)
        spark.sql(f"CONVERT TO DELTA parquet.`{path}` PARTITIONED BY (date STRING)")
    return converted


def local_path(output_path: str | Path) -> Path:
    text = str(output_path)
    if "://" in text and not text.startswith("file://"):
        raise ValueError(
            f"OUTPUT_PATH {text} is not a local or mounted folder; the lake needs a filesystem "
            "that every Spark process sees at the same path"
        )
    return Path(text.removeprefix("file://")).resolve()


class LakeWriter:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.staging = root / "_checkpoints" / "staging"
        self._committed: dict[str, int] = {}  # table -> the last batch it holds (read once)

    def append(self, df: DataFrame, table: str, batch_id: int, *, files: int = 1) -> None:
        """Append ``df`` (with a ``date`` column) to the Delta table ``table``, as this batch's
        one commit (``files`` files per date): skipped if the batch already committed to it (a
        re-run after a crash).

        The commit carries the batch id in its ``userMetadata``. Delta's own idempotent writes
        (``txnAppId``/``txnVersion``) cost a rebuild of the table's state at every append
        (measured: 0.4-0.5 s, see docs/lake.md); the job only needs the answer once a run, for
        its first batch, and reads it from the newest commits of the log.
        """
        if batch_id <= self.last_batch(table):
            return
        (
            df.coalesce(files)
            .write.format("delta")
            .mode("append")
            .partitionBy("date")
            .option("userMetadata", f"{TXN_APP_ID}:{batch_id}")
            .save((self.root / table).as_posix())
        )
        self._committed[table] = batch_id

    def last_batch(self, table: str) -> int:
        """The last micro-batch the table holds, from its newest commits (-1 for none)."""
        if table not in self._committed:
            self._committed[table] = last_committed_batch(self.root / table / "_delta_log")
        return self._committed[table]

    def append_rows(
        self,
        spark: SparkSession,
        rows: Sequence[dict[str, Any]],
        schema: T.StructType,
        table: str,
        batch_id: int,
    ) -> None:
        """Append a few rows computed on the driver (the bars of a batch), as :meth:`append`."""
        names = schema.fieldNames()
        frame = spark.createDataFrame([tuple(r[c] for c in names) for r in rows], schema)
        self.append(frame, table, batch_id)

    def _publish(self, staged: Path, table: str, partition: str, batch_id: int, ext: str) -> Path:
        """Rename a staged file into the lake under the name fixed by its batch (atomic)."""
        target = self.root / table / partition / f"part-{batch_id:012d}.{ext}"
        target.parent.mkdir(parents=True, exist_ok=True)
        staged.replace(target)
        return target

    def write_csv(
        self, rows: Sequence[dict[str, Any]], columns: Sequence[str], table: str, batch_id: int
    ) -> list[Path]:
        """Publish a few rows computed on the driver as this batch's CSV file of each date,
        without a Spark job: staged, then renamed into place under the name fixed by the batch.
        """
        fields = [c for c in columns if c != "date"]
        return self.publish_by_date(
            rows, table, batch_id, "csv", lambda path, group: _write_csv(path, fields, group)
        )

    def publish_by_date(
        self,
        rows: Sequence[dict[str, Any]],
        table: str,
        batch_id: int,
        ext: str,
        write: Callable[[Path, list[dict[str, Any]]], None],
    ) -> list[Path]:
        """Write each date's rows to a staged file with ``write``, then rename each into place
        under the name fixed by the batch."""
        published = []
        by_date: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_date.setdefault(row["date"], []).append(row)
        stage = self.staging / table / f"batch={batch_id}"
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir(parents=True)
        for date, group in sorted(by_date.items()):
            staged = stage / f"date={date}.{ext}"
            write(staged, group)
            published.append(self._publish(staged, table, f"date={date}", batch_id, ext))
        shutil.rmtree(stage, ignore_errors=True)
        return published


def _write_csv(path: Path, fields: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    """CSV with a header, as Spark writes it: ISO-8601 UTC times in milliseconds, empty for null."""

    def text(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
        return "" if value is None else value

    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(fields)
        for row in rows:
            writer.writerow([text(row[c]) for c in fields])
