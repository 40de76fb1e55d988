"""Writing the lake so that any reader sees each micro-batch exactly once and whole.

``bars``, ``ticks``, ``rejects`` and ``late`` are Delta Lake tables partitioned by ``date``. A
micro-batch appends to each table in one Delta commit, so a reader of the table (Spark, the
``deltalake`` package, anything that reads Delta's log) sees all of the batch's rows, across
every date it spans, or none of them. Each commit carries the job's transaction id and the batch
id (Delta's ``txnAppId``/``txnVersion``): a batch that runs again after a crash finds its commit
already there, and Delta skips it instead of appending the rows twice.

``bars_csv`` stays a folder of plain CSV files, one per date and batch: Spark writes a batch's
rows into a staging folder under ``_checkpoints/``, then each staged file is renamed into place
under a name fixed by the batch (``bars_csv/date=YYYY-MM-DD/part-<batch id>.csv``). A rename is
atomic, and a batch that runs again writes the same names: it replaces its files.

The lake must be on a filesystem every Spark process sees at the same path (a local folder in
local mode; a shared mount on a cluster).
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

# The job's transaction id in every table's Delta log; the version is the micro-batch id.
TXN_APP_ID = "tickstream-bars-job"
DELTA_TABLES = ("bars", "ticks", "rejects", "late")


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

    def append(self, df: DataFrame, table: str, batch_id: int) -> None:
        """Append ``df`` (with a ``date`` column) to the Delta table ``table``, as this batch's
        one commit: skipped if the batch already committed to it (a re-run after a crash)."""
        (
            df.coalesce(1)
            .write.format("delta")
            .mode("append")
            .partitionBy("date")
            .option("txnAppId", TXN_APP_ID)
            .option("txnVersion", batch_id)
            .save((self.root / table).as_posix())
        )

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
        published = []
        by_date: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_date.setdefault(row["date"], []).append(row)
        stage = self.staging / table / f"batch={batch_id}"
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir(parents=True)
        fields = [c for c in columns if c != "date"]
        for date, group in sorted(by_date.items()):
            staged = stage / f"date={date}.csv"
            _write_csv(staged, fields, group)
            published.append(self._publish(staged, table, f"date={date}", batch_id, "csv"))
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
