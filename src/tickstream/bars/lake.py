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

import shutil
from pathlib import Path

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
                suffix = "" if index == 0 else f"-{index}"
                target = self.root / table / part_dir.name / f"part-{batch_id:012d}{suffix}.{ext}"
                target.parent.mkdir(parents=True, exist_ok=True)
                staged.replace(target)
                published.append(target)
        shutil.rmtree(stage, ignore_errors=True)
        return published
