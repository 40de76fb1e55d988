"""The driver's part of the job's state: one small record per micro-batch, next to Spark's
checkpoint.

A record holds the event-time watermark, each partition's largest event time, running totals
and the partial aggregates of the open windows (one per open (symbol, window), see
:mod:`tickstream.bars.partials`): its size grows with the symbols, never with the ticks. The
dedup index, which does grow with the ticks, lives in Spark's state store
(:mod:`tickstream.bars.source`). Batch N reads the record of the latest batch before N and writes
its own; a batch that runs again after a crash starts from the same state and computes the same
output. ``meta.json`` is written atomically, so a half-written record never counts.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tickstream.bars.partials import Key, Partial
from tickstream.errors import TickstreamError

NO_TIME = -(2**62)  # before any event: nothing is late, no window is closed
FORMAT = 2  # 1: the open windows' ticks in Parquet (tickstream 0.1); 2: partial aggregates


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
    open_windows: list[Partial] = field(default_factory=list)
    format: int = FORMAT

    def windows(self) -> dict[Key, Partial]:
        return {p.key: p for p in self.open_windows}


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
    if meta.get("format", 1) != FORMAT:
        raise TickstreamError(
            f"the job state in {folder.parent} was written by an earlier tickstream "
            "(open windows kept as ticks, not as partial aggregates)",
            "let that version drain its open windows, or start a new lake (another OUTPUT_PATH)",
        )
    totals = Totals(**meta.pop("totals"))
    windows = [Partial.from_json(p) for p in meta.pop("open_windows")]
    return Snapshot(**meta, totals=totals, open_windows=windows)


class StateStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _dir(self, batch_id: int) -> Path:
        return self.root / f"batch={batch_id}"

    def load_before(self, batch_id: int) -> Snapshot:
        """The latest complete record of a batch before ``batch_id``."""
        earlier = [b for b in complete_batches(self.root) if b < batch_id]
        return read_meta(self._dir(earlier[-1])) if earlier else Snapshot()

    @staticmethod
    def read_latest(root: Path) -> Snapshot:
        """The latest complete record, read without Spark (for reconcile)."""
        done = complete_batches(root)
        return read_meta(root / f"batch={done[-1]}") if done else Snapshot()

    def save(self, snapshot: Snapshot) -> None:
        folder = self._dir(snapshot.batch_id)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / "meta.json.tmp"
        tmp.write_text(json.dumps(asdict(snapshot), separators=(",", ":")), encoding="utf-8")
        tmp.replace(folder / "meta.json")

    def prune(self, keep_from: int) -> None:
        """Delete records older than ``keep_from`` (they can no longer be needed)."""
        if not self.root.is_dir():
            return
        for child in self.root.iterdir():
            match = _BATCH_DIR.match(child.name)
            if match and int(match.group(1)) < keep_from:
                shutil.rmtree(child, ignore_errors=True)

    def latest(self) -> Snapshot:
        return self.load_before(2**62)
