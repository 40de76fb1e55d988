"""The driver's part of the job's state: one small record per micro-batch, next to Spark's
checkpoint.

A record holds the event-time watermark, each partition's largest event time, running totals
and the partial aggregates of the open windows (one per open (symbol, window), see
:mod:`tickstream.bars.partials`): its size grows with the symbols, never with the ticks. The
dedup index, which does grow with the ticks, lives in Spark's state store
(:mod:`tickstream.bars.source`). Batch N reads the record of the latest batch before N and writes
its own; a batch that runs again after a crash starts from the same state and computes the same
output. ``meta.json`` is written whole (:meth:`~tickstream.lake.layout.Lake.write`), so a
half-written record never counts.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from tickstream.bars.activity import OpenBar
from tickstream.bars.partials import Key, Partial
from tickstream.errors import TickstreamError
from tickstream.lake.layout import Lake

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
    activity_bars: dict[str, int] = field(default_factory=dict)  # tick, volume, dollar bars

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
    # The activity bars' cutting, by kind: the window start through which the ticks were cut
    # (``cut_to_ms``, NO_TIME before any) and each symbol's open bar.
    activity: dict[str, ActivityState] = field(default_factory=dict)
    # The job's WINDOW_DURATION in ms (0 in records written before it was kept): with the
    # watermark, where the archive is complete (`tickstream lake rebuild`).
    window_ms: int = 0
    format: int = FORMAT

    def windows(self) -> dict[Key, Partial]:
        return {p.key: p for p in self.open_windows}


@dataclass
class ActivityState:
    """One kind's cutting: the ticks with a window start in [since_ms, cut_to_ms) are cut
    (NO_TIME: from the first), and each symbol's open bar."""

    cut_to_ms: int = NO_TIME
    open: dict[str, OpenBar] = field(default_factory=dict)
    since_ms: int = NO_TIME

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ActivityState:
        bars = {symbol: OpenBar.from_json(bar) for symbol, bar in data["open"].items()}
        return cls(int(data["cut_to_ms"]), bars, int(data["since_ms"]))


_BATCH_DIR = re.compile(r"^batch=(\d+)$")


def complete_batches(lake: Lake) -> list[int]:
    """Batch ids whose record is complete (meta.json written), ascending."""
    found = []
    for name in lake.names(*Lake.STATE):
        match = _BATCH_DIR.match(name)
        if match and lake.exists(*Lake.STATE, name, "meta.json"):
            found.append(int(match.group(1)))
    return sorted(found)


def read_meta(lake: Lake, batch_id: int) -> Snapshot:
    text = lake.read_text(*Lake.STATE, f"batch={batch_id}", "meta.json")
    if text is None:
        raise FileNotFoundError(f"no record of batch {batch_id} in {lake.url(*Lake.STATE)}")
    meta = json.loads(text)
    if meta.get("format", 1) != FORMAT:
        raise TickstreamError(
            f"the job state in {lake.url(*Lake.STATE)} was written by an earlier tickstream "
            "(open windows kept as ticks, not as partial aggregates)",
            "let that version drain its open windows, or start a new lake (another OUTPUT_PATH)",
        )
    totals = Totals(**meta.pop("totals"))
    windows = [Partial.from_json(p) for p in meta.pop("open_windows")]
    activity = {k: ActivityState.from_json(v) for k, v in meta.pop("activity", {}).items()}
    return Snapshot(**meta, totals=totals, open_windows=windows, activity=activity)


class StateStore:
    """The records under ``_checkpoints/bars_state/batch=<id>/meta.json``."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake

    def load_before(self, batch_id: int) -> Snapshot:
        """The latest complete record of a batch before ``batch_id``."""
        earlier = [b for b in complete_batches(self.lake) if b < batch_id]
        return read_meta(self.lake, earlier[-1]) if earlier else Snapshot()

    @staticmethod
    def read_latest(lake: Lake) -> Snapshot:
        """The latest complete record, read without Spark (for reconcile)."""
        done = complete_batches(lake)
        return read_meta(lake, done[-1]) if done else Snapshot()

    def save(self, snapshot: Snapshot) -> None:
        text = json.dumps(asdict(snapshot), separators=(",", ":"))
        self.lake.write_text((*Lake.STATE, f"batch={snapshot.batch_id}", "meta.json"), text)

    def prune(self, keep_from: int) -> None:
        """Delete records older than ``keep_from`` (they can no longer be needed)."""
        for name in self.lake.names(*Lake.STATE):
            match = _BATCH_DIR.match(name)
            if match and int(match.group(1)) < keep_from:
                self.lake.delete_dir(*Lake.STATE, name)

    def latest(self) -> Snapshot:
        return self.load_before(2**62)
