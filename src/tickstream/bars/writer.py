"""Writing the lake so that any reader sees each micro-batch exactly once and whole.

``bars``, ``ticks``, ``rejects`` and ``late`` are Delta Lake tables partitioned by ``date``. A
micro-batch appends to each table in one Delta commit, so a reader of the table (Spark, the
``deltalake`` package, anything that reads Delta's log) sees all of the batch's rows, across
every date it spans, or none of them. Each commit carries the job's id and the batch id in its
``commitInfo.userMetadata``: a batch that runs again after a crash finds its commit already
there and skips the table instead of appending the rows twice (see :meth:`LakeWriter.append`).

``bars_csv`` stays a folder of plain CSV files, one per date and batch, under a name fixed by
the batch (``bars_csv/date=YYYY-MM-DD/part-<batch id>.csv``). Each file is written whole or not
at all (:meth:`~tickstream.lake.layout.Lake.write`: renamed into place on a local disk, one
upload on S3), and a batch that runs again writes the same names: it replaces its files.

The lake is a local folder every Spark process sees at the same path (a shared mount on a
cluster) or an S3 location (:mod:`tickstream.lake.layout`).
"""

from __future__ import annotations

import csv
import io
import json
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from typing import Any

import pyarrow as pa
from deltalake import CommitProperties, write_deltalake
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from tickstream.lake.layout import (
    ACTIVITY_TABLES,
    DELTA_LOG,
    DELTA_TABLES,
    PARTITION_PREFIX,
    Lake,
    batch_file,
    partition_dir,
)

# Marks the job's commits in each table's Delta log: ``<TXN_APP_ID>:<batch id>`` in their
# ``commitInfo.userMetadata`` (see LakeWriter.append).
TXN_APP_ID = "tickstream-bars-job"

# Tables the driver writes itself through the ``deltalake`` package (a few rows a batch), and
# compacts the same way: each Delta table has one kind of writer, Spark or the driver.
DRIVER_TABLES = ("bars", *ACTIVITY_TABLES.values())
# The driver's commits to those tables, one at a time (a batch's append, a compaction): on S3
# nothing else stops two commits from taking the same version number.
DRIVER_COMMITS = threading.Lock()

_ARROW_TYPES = {
    "string": pa.string(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "double": pa.float64(),
    "bigint": pa.int64(),
}


def arrow_schema(schema: T.StructType) -> pa.Schema:
    """The Arrow schema of rows of a Spark schema (the types the lake's driver-written tables
    use; Delta's ``timestamp`` is microseconds since the epoch, UTC)."""
    return pa.schema(
        [pa.field(f.name, _ARROW_TYPES[f.dataType.simpleString()], f.nullable) for f in schema]
    )


def last_committed_batch(lake: Lake, table: str) -> int:
    """The batch id of the newest commit the job made to a table (-1 if none).

    Commits are read newest first; the job's are marked ``<TXN_APP_ID>:<batch id>`` in their
    ``commitInfo.userMetadata``. A commit by someone else (compaction) is stepped over.
    """
    commits = sorted(n for n in lake.names(table, DELTA_LOG) if n.endswith(".json"))
    for name in reversed(commits):
        text = lake.read_text(table, DELTA_LOG, name) or ""
        for line in text.splitlines():
            info = json.loads(line).get("commitInfo") if line.strip() else None
            marker = (info or {}).get("userMetadata") or ""
            app, _, batch = marker.rpartition(":")
            if app == TXN_APP_ID and batch.isdigit():
                return int(batch)
    return -1


def parquet_tables(lake: Lake) -> list[str]:
    """Tables the previous tickstream wrote as plain Parquet files (``date=*/part-*.parquet``
    without a Delta log): the job refuses to add Delta commits beside them."""
    found = []
    for table in DELTA_TABLES:
        if lake.is_dir(table, DELTA_LOG):
            continue
        partitions = [n for n in lake.names(table) if n.startswith(PARTITION_PREFIX)]
        if any(n.endswith(".parquet") for p in partitions[:3] for n in lake.names(table, p)):
            found.append(table)
    return found


def delta_sql_path(lake: Lake, table: str) -> str:
    """The table's path as it goes between backquotes in Delta's SQL (``delta.`<path>```)."""
    return lake.url(table).replace("`", "``")


def convert_to_delta(spark: SparkSession, lake: Lake) -> list[str]:
    """Make each plain-Parquet table of the lake a Delta table in place (Delta's ``CONVERT TO
    DELTA``: the files stay, a log that lists them is written). Returns the tables converted."""
    converted = parquet_tables(lake)
    for table in converted:
        path = delta_sql_path(lake, table)
        spark.sql(f"CONVERT TO DELTA parquet.`{path}` PARTITIONED BY (date STRING)")
    return converted


class LakeWriter:
    def __init__(self, lake: Lake) -> None:
        self.lake = lake
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
            .save(self.lake.url(table))
        )
        self._committed[table] = batch_id

    def last_batch(self, table: str) -> int:
        """The last micro-batch the table holds, from its newest commits (-1 for none)."""
        if table not in self._committed:
            self._committed[table] = last_committed_batch(self.lake, table)
        return self._committed[table]

    def append_rows(
        self,
        rows: Sequence[dict[str, Any]],
        schema: T.StructType,
        table: str,
        batch_id: int,
    ) -> None:
        """Append a few rows computed on the driver (the bars of a batch) as the batch's one
        commit, skipped on a re-run as :meth:`append` is, without a Spark job: the ``deltalake``
        package writes them from Arrow (measured: a Spark append of a few rows is a job and a
        commit, ~0.45 s, and took a core from the batch's other appends; docs/lake.md).

        The table is then written by the driver only, appends and compaction alike
        (:data:`DRIVER_TABLES`, under :data:`DRIVER_COMMITS`), never by Spark as well.
        """
        if batch_id <= self.last_batch(table):
            return
        data = pa.Table.from_pylist(list(rows), arrow_schema(schema))
        with DRIVER_COMMITS:
            write_deltalake(
                self.lake.delta_uri(table),
                data,
                mode="append",
                partition_by=["date"],
                storage_options=self.lake.write_options,
                commit_properties=CommitProperties(
                    custom_metadata={"userMetadata": f"{TXN_APP_ID}:{batch_id}"}
                ),
            )
        self._committed[table] = batch_id

    def write_csv(
        self, rows: Sequence[dict[str, Any]], columns: Sequence[str], table: str, batch_id: int
    ) -> list[str]:
        """Publish a few rows computed on the driver as this batch's CSV file of each date,
        without a Spark job."""
        fields = [c for c in columns if c != "date"]
        return self.publish_by_date(rows, table, batch_id, "csv", partial(_csv, fields))

    def publish_by_date(
        self,
        rows: Sequence[dict[str, Any]],
        table: str,
        batch_id: int,
        ext: str,
        encode: Callable[[list[dict[str, Any]]], bytes],
    ) -> list[str]:
        """Write each date's rows, encoded by ``encode``, whole, under the name fixed by the
        batch (``<table>/date=<date>/part-<batch id>.<ext>``). Returns the files' paths."""
        by_date: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_date.setdefault(row["date"], []).append(row)
        published = []
        for date, group in sorted(by_date.items()):
            parts = (table, partition_dir(date), batch_file(batch_id, ext))
            self.lake.write(parts, encode(group))
            published.append(self.lake.key(*parts))
        return published


def _csv(fields: Sequence[str], rows: Sequence[dict[str, Any]]) -> bytes:
    """CSV with a header, as Spark writes it: ISO-8601 UTC times in milliseconds, empty for null."""

    def text(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
        return "" if value is None else value

    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(fields)
    for row in rows:
        writer.writerow([text(row[c]) for c in fields])
    return out.getvalue().encode("utf-8")
