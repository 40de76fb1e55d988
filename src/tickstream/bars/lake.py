"""Writing the lake so that any reader sees each micro-batch exactly once and whole.

Spark writes a batch's rows into a staging folder under ``_checkpoints/``, outside the
lake; then each staged file is renamed into place under a name fixed by the batch:
``<table>/date=YYYY-MM-DD/part-<batch id>.<ext>``. A rename is atomic, so readers
(DuckDB, pyarrow, pandas, Spark) never see a partial file, and a batch that runs again
after a crash writes the same names again: it replaces its files, it never adds to them.

The lake must be on a filesystem every Spark process sees at the same path (a local
folder in local mode; a shared mount on a cluster).
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame

EXTENSIONS = {"parquet": "parquet", "csv": "csv"}


def local_path(output_path: str | Path) -> Path:
    text = str(output_path)
    if "://" in text and not text.startswith("file://"):
        raise ValueError(
            f"OUTPUT_PATH {text} is not a local or mounted folder; the lake needs atomic renames "
            "on a filesystem that every Spark process sees at the same path"
        )
    return Path(text.removeprefix("file://")).resolve()


class LakeWriter:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.staging = root / "_checkpoints" / "staging"

    def write(self, df: DataFrame, table: str, batch_id: int, fmt: str = "parquet") -> list[Path]:
        """Publish ``df`` (with a ``date`` column) as this batch's files of ``table``."""
        stage = self.staging / table / f"batch={batch_id}"
        shutil.rmtree(stage, ignore_errors=True)
        writer = df.coalesce(1).write.mode("overwrite").partitionBy("date")
        if fmt == "csv":
            writer = writer.option("header", "true").option(
                "timestampFormat", "yyyy-MM-dd'T'HH:mm:ss.SSSXXX"
            )
        writer.format(fmt).save(stage.as_posix())
        published = []
        ext = EXTENSIONS[fmt]
        for part_dir in sorted(stage.glob("date=*")):
            files = sorted(part_dir.glob(f"part-*.{ext}")) or sorted(
                p for p in part_dir.glob("part-*") if not p.name.endswith(".crc")
            )
            for index, staged in enumerate(files):
                published.append(self._publish(staged, table, part_dir.name, batch_id, ext, index))
        shutil.rmtree(stage, ignore_errors=True)
        return published

    def _publish(
        self, staged: Path, table: str, partition: str, batch_id: int, ext: str, index: int = 0
    ) -> Path:
        """Rename a staged file into the lake under the name fixed by its batch (atomic)."""
        suffix = "" if index == 0 else f"-{index}"
        target = self.root / table / partition / f"part-{batch_id:012d}{suffix}.{ext}"
        target.parent.mkdir(parents=True, exist_ok=True)
        staged.replace(target)
        return target

    def write_rows(
        self,
        rows: Sequence[dict[str, Any]],
        columns: Sequence[str],
        table: str,
        batch_id: int,
        fmt: str = "parquet",
    ) -> list[Path]:
        """Publish a few rows computed on the driver (the bars of a batch) without a Spark job:
        the same files, names and atomic renames as :meth:`write`, Parquet and CSV alike.

        Timestamps go to Parquet as INT96, as Spark writes them, so that every file of a table
        has the same types whoever wrote it.
        """
        published = []
        by_date: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_date.setdefault(row["date"], []).append(row)
        stage = self.staging / table / f"batch={batch_id}"
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir(parents=True)
        fields = [c for c in columns if c != "date"]
        ext = EXTENSIONS[fmt]
        for date, group in sorted(by_date.items()):
            staged = stage / f"date={date}.{ext}"
            if fmt == "csv":
                _write_csv(staged, fields, group)
            else:
                arrow = pa.Table.from_pylist(
                    [{c: r[c] for c in fields} for r in group], schema=_arrow_schema(fields)
                )
                pq.write_table(arrow, staged, use_deprecated_int96_timestamps=True)
            published.append(self._publish(staged, table, f"date={date}", batch_id, ext))
        shutil.rmtree(stage, ignore_errors=True)
        return published


_ARROW_TYPES = {
    "symbol": pa.string(),
    "window_start": pa.timestamp("us", tz="UTC"),
    "window_end": pa.timestamp("us", tz="UTC"),
    "trade_count": pa.int64(),
}


def _arrow_schema(fields: Sequence[str]) -> pa.Schema:
    """The bar table's Parquet schema: its columns as Spark types them (doubles elsewhere)."""
    return pa.schema([pa.field(c, _ARROW_TYPES.get(c, pa.float64())) for c in fields])


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
