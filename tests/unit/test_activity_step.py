"""The job's activity step on a real (driver-written) lake, without Spark: which ticks a batch
cuts, what a restart and a re-run see, and a kind turned on late or off and on again."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from tickstream.bars.activity import OpenBar
from tickstream.bars.activity_step import ActivityStep
from tickstream.bars.state import NO_TIME, Snapshot
from tickstream.bars.writer import LakeWriter
from tickstream.config import load_settings
from tickstream.lake.layout import Lake

MINUTE = 60_000
BASE = 1_378_072_800_000  # 2013-09-01T22:00:00Z


def lake_with_ticks(path: Path, minutes: int, per_minute: int = 10) -> Lake:
    """An archive of ``per_minute`` ES ticks a minute (price = their number, volume 1), one file
    per minute, as the job's batches append them."""
    for minute in range(minutes):
        rows: list[dict[str, Any]] = []
        for i in range(per_minute):
            ms = BASE + minute * MINUTE + i * 1000
            rows.append(
                {
                    "symbol": "ES",
                    "ts": datetime.fromtimestamp(ms / 1000, UTC),
                    "ts_epoch_ms": ms,
                    "price": float(minute * per_minute + i + 1),
                    "volume": 1.0,
                    "seq": minute * per_minute + i,
                    "event_id": f"p-{minute * per_minute + i}",
                    "date": "2013-09-01",
                }
            )
        write_deltalake(
            str(path / "ticks"), pa.Table.from_pylist(rows), mode="append", partition_by=["date"]
        )
    return Lake(path)


def step(lake: Lake, notes: list[str], **kinds: str) -> ActivityStep:
    settings = load_settings({"output_path": str(lake), **kinds})
    return ActivityStep(settings, LakeWriter(lake), notes.append)


def test_a_batch_cuts_through_the_oldest_open_window_and_a_rerun_cuts_the_same(
    tmp_path: Path,
) -> None:
    lake = lake_with_ticks(tmp_path, minutes=5)
    notes: list[str] = []
    job = step(lake, notes, tick_bars="4")
    # Watermark 2.5 minutes in: windows before minute 2 are closed; F = minute 2.
    first, state = job.run(Snapshot(), BASE + 2 * MINUTE + 30_000)
    assert [(b.number, b.first_ms, b.last_ms, b.ticks) for b in first] == [
        (1, BASE, BASE + 3000, 4),
        (2, BASE + 4000, BASE + 7000, 4),
        (3, BASE + 8000, BASE + MINUTE + 1000, 4),
        (4, BASE + MINUTE + 2000, BASE + MINUTE + 5000, 4),
        (5, BASE + MINUTE + 6000, BASE + MINUTE + 9000, 4),
    ]
    assert state["tick"].cut_to_ms == BASE + 2 * MINUTE
    assert state["tick"].open["ES"] == OpenBar(number=5)  # minute 2 not cut: still open
    again, same = job.run(Snapshot(), BASE + 2 * MINUTE + 30_000)  # the batch run again
    assert (again, same) == (first, state)
    # The next batch, from the record: minute 2 is cut, going on from the open bar.
    before = Snapshot(batch_id=0, watermark_ms=BASE + 2 * MINUTE + 30_000, activity=state)
    more, _ = job.run(before, BASE + 3 * MINUTE)
    assert [(b.number, b.first_ms, b.ticks) for b in more] == [
        (6, BASE + 2 * MINUTE, 4),
        (7, BASE + 2 * MINUTE + 4000, 4),
    ]
    assert notes == []
    job.write(first, batch_id=0)
    job.write(first, batch_id=0)  # a re-run finds the batch's commit: nothing twice
    assert DeltaTable(str(tmp_path / "tick_bars")).to_pyarrow_table().num_rows == 5


def test_a_kind_turned_on_late_or_off_and_on_starts_afresh_and_numbers_on(
    tmp_path: Path,
) -> None:
    lake = lake_with_ticks(tmp_path, minutes=6)
    notes: list[str] = []
    # The lake has history (a watermark) when volume bars are turned on: they start at F.
    history = Snapshot(batch_id=7, watermark_ms=BASE + 2 * MINUTE + 10_000)
    late = step(lake, notes, volume_bars="5")
    bars, state = late.run(history, BASE + 4 * MINUTE)
    assert notes == [
        "volume bars start with the ticks of 2013-09-01T22:02:00Z; the earlier ticks of this "
        "lake are not cut into them"
    ]
    assert [(b.number, b.first_ms) for b in bars] == [
        (1, BASE + 2 * MINUTE),
        (2, BASE + 2 * MINUTE + 5000),
        (3, BASE + 3 * MINUTE),
        (4, BASE + 3 * MINUTE + 5000),
    ]
    assert state["volume"].since_ms == BASE + 2 * MINUTE
    # Turned off for a while (its state kept as it was), then on again: it starts afresh at
    # the new F, its numbers going on.
    off = step(lake, notes)
    _, kept = off.run(Snapshot(watermark_ms=BASE + 4 * MINUTE, activity=state), BASE + 5 * MINUTE)
    assert kept["volume"] == state["volume"]
    notes.clear()
    again = Snapshot(watermark_ms=BASE + 5 * MINUTE, activity=kept)
    bars, state = late.run(again, BASE + 6 * MINUTE)
    assert len(notes) == 1
    assert [(b.number, b.first_ms) for b in bars] == [
        (5, BASE + 5 * MINUTE),
        (6, BASE + 5 * MINUTE + 5000),
    ]
    assert NO_TIME < state["volume"].since_ms == BASE + 5 * MINUTE
