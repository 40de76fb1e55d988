"""The job's own state, one snapshot per micro-batch, next to Spark's checkpoint.

A snapshot holds the event-time watermark, the largest event time seen, running
totals, and the accepted ticks of the windows that are still open. Batch N reads the
snapshot of the latest batch before N and writes its own; a batch that runs again
after a crash therefore starts from the same state and computes the same output.
``meta.json`` is written last (atomically), so a snapshot without it never counts.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from tickstream.bars.schema import TICK

NO_TIME = -(2**62)  # before any event: nothing is late, no window is closed


@dataclass
class Totals:
    """Running counts since the pipeline started (what `reconcile` adds up)."""

    messages: int = 0
    ticks_valid: int = 0
    ticks_accepted: int = 0
    duplicates: int = 0
    late: int = 0
    heartbeats: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    bars: int = 0

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


@dataclass
class Snapshot:
    batch_id: int = -1
    watermark_ms: int = NO_TIME
    max_event_ms: int = NO_TIME
    # The largest event time seen in each Kafka partition: the watermark follows the slowest.
    partition_max_ms: dict[str, int] = field(default_factory=dict)
    open_rows: int = 0
    totals: Totals = field(default_factory=Totals)


_BATCH_DIR = re.compile(r"^batch=(\d+)$")


def complete_batches(root: Path) -> list[int]:
    """Batch ids whose snapshot is complete (meta.json written), ascending."""
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = _BATCH_DIR.match(child.name)
        if match and (child / "meta.json").is_file():
            found.append(int(match.group(1)))
    return sorted(found)


def read_meta(folder: Path) -> Snapshot:
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    totals = Totals(**meta.pop("totals"))
    return Snapshot(**meta, totals=totals)


class StateStore:
    def __init__(self, root: Path, spark: SparkSession) -> None:
        self.root = root
        self.spark = spark

    def _dir(self, batch_id: int) -> Path:
        return self.root / f"batch={batch_id}"

    def _complete_batches(self) -> list[int]:
        return complete_batches(self.root)

    def load_before(self, batch_id: int) -> tuple[Snapshot, DataFrame | None]:
        """The latest complete snapshot of a batch before ``batch_id``, and its open ticks."""
        earlier = [b for b in self._complete_batches() if b < batch_id]
        if not earlier:
            return Snapshot(), None
        folder = self._dir(earlier[-1])
        snapshot = read_meta(folder)
        if snapshot.open_rows == 0:
            return snapshot, None
        return snapshot, self.spark.read.schema(TICK).parquet((folder / "open").as_posix())

    @staticmethod
    def read_latest(root: Path) -> Snapshot:
        """The latest complete snapshot, read without Spark (for reconcile)."""
        done = complete_batches(root)
        return read_meta(root / f"batch={done[-1]}") if done else Snapshot()

    @staticmethod
    def latest_open_dir(root: Path) -> Path | None:
        """The open ticks of the latest complete snapshot, if it has any."""
        done = complete_batches(root)
        folder = root / f"batch={done[-1]}" / "open" if done else None
        return folder if folder is not None and folder.is_dir() else None

    def save(self, snapshot: Snapshot, open_ticks: DataFrame | None) -> None:
        folder = self._dir(snapshot.batch_id)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        if open_ticks is not None and snapshot.open_rows > 0:
            open_ticks.write.mode("overwrite").parquet((folder / "open").as_posix())
        tmp = folder / "meta.json.tmp"
        tmp.write_text(json.dumps(asdict(snapshot), indent=1), encoding="utf-8")
        tmp.replace(folder / "meta.json")

    def prune(self, keep_from: int) -> None:
        """Delete snapshots older than ``keep_from`` (they can no longer be needed)."""
        if not self.root.is_dir():
            return
        for child in self.root.iterdir():
            match = _BATCH_DIR.match(child.name)
            if match and int(match.group(1)) < keep_from:
                shutil.rmtree(child, ignore_errors=True)

    def latest(self) -> Snapshot:
        return self.load_before(2**62)[0]
