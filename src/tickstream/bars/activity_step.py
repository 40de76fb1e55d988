"""The job's step for tick, volume and dollar bars: cut the ticks the watermark has made final.

A tick is accepted while its time window is open, so once a batch's watermark is w, no tick
before F = the start of the oldest open window (``floor(w / WINDOW) * WINDOW``) can still be
accepted, and every tick accepted later is late for the cutting too (``late/``). Each batch
cuts the archive's ticks with a window start in [F of the batch before, F of this batch): after
its own archive commit if it accepted ticks in that range, else beside its writes (``job.py``,
``ActivityCut``); in (event time, seq, event_id) order per symbol
(:func:`~tickstream.bars.activity.in_order`, then
:func:`~tickstream.bars.activity.cut_ticks`). The ticks still waiting for F are the archive's
own: the step keeps only each (kind, symbol)'s open bar and the F it cut through, in the
driver's batch record. A batch run again after a crash starts from the same record and reads
the same ticks (its own archive commit is there or is made again), so it cuts the same bars.
See docs/activity-bars.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import pyarrow as pa

from tickstream.bars.activity import (
    ActivityBar,
    NeedsEventIdsError,
    OpenBar,
    OrderedTicks,
    Thresholds,
    bar_row,
    cut_ticks,
    in_order,
)
from tickstream.bars.schema import ACTIVITY_BAR
from tickstream.bars.state import NO_TIME, ActivityState, Snapshot
from tickstream.bars.writer import LakeWriter
from tickstream.config import Settings
from tickstream.lake.layout import ACTIVITY_TABLES
from tickstream.lake.read import TickArchive


def cut_through(watermark_ms: int, window_ms: int) -> int:
    """F: the start of the oldest window still open at ``watermark_ms`` (NO_TIME before any
    watermark). No tick before it can be accepted any more."""
    if watermark_ms == NO_TIME:
        return NO_TIME
    return (watermark_ms // window_ms) * window_ms


def ordered_between(
    archive: TickArchive, lo_ms: int | None, hi_ms: int, *, symbols: Sequence[str] = ()
) -> tuple[pa.Table, OrderedTicks]:
    """The archive's ticks of [lo_ms, hi_ms) (of ``symbols``, default all) in cutting order:
    read without their event_ids, and again with them only if some tie on symbol, time and
    seq."""
    ticks = archive.between(lo_ms, hi_ms, symbols=symbols)
    try:
        return ticks, in_order(ticks)
    except NeedsEventIdsError:
        ticks = archive.between(lo_ms, hi_ms, event_ids=True, symbols=symbols)
        return ticks, in_order(ticks)


class ActivityStep:
    def __init__(
        self, settings: Settings, writer: LakeWriter, notify: Callable[[str], None]
    ) -> None:
        self.window_ms = settings.window_ms
        self.thresholds: dict[str, Thresholds] = {}
        for kind in settings.activity_kinds:
            found = settings.thresholds(kind)
            assert found is not None
            self.thresholds[kind] = found
        self.writer = writer
        self.archive = TickArchive(writer.lake)
        self.notify = notify
        # Seconds the last batch spent reading the archive, ordering, cutting and writing
        # (bench/soak.py prints them for its slowest batch).
        self.timings: dict[str, float] = {}

    @property
    def on(self) -> bool:
        return bool(self.thresholds)

    def run(
        self, before: Snapshot, watermark_ms: int
    ) -> tuple[list[ActivityBar], dict[str, ActivityState]]:
        """The bars the batch closes, and the state after it (the kinds turned off keep
        theirs, untouched, so their numbers go on if they are turned on again)."""
        state = dict(before.activity)
        start = cut_through(before.watermark_ms, self.window_ms)
        for kind in self.thresholds:
            state[kind] = self._resumed(kind, state.get(kind), start)
        end = cut_through(watermark_ms, self.window_ms)
        self.timings = {}
        if not self.thresholds or end <= start:
            return [], state
        clock = time.monotonic()
        ticks, ordered = ordered_between(self.archive, None if start == NO_TIME else start, end)
        self.timings["read and order"] = time.monotonic() - clock
        opens = {kind: state[kind].open for kind in self.thresholds}
        closed, opens = cut_ticks(ordered, self.thresholds, opens)
        self.timings["cut"] = time.monotonic() - clock - sum(self.timings.values())
        self.timings["ticks"] = ticks.num_rows
        for kind in self.thresholds:
            state[kind] = ActivityState(end, opens[kind], state[kind].since_ms)
        return closed, state

    def _resumed(self, kind: str, found: ActivityState | None, start: int) -> ActivityState:
        """The kind's state, going on from ``start``. A kind that was off (or new to a lake
        with history) starts at ``start`` with empty bars, numbered on from its last: the
        ticks it missed are not cut."""
        if found is not None and found.cut_to_ms == start:
            return found
        if start != NO_TIME:
            when = datetime.fromtimestamp(start / 1000, UTC).isoformat().replace("+00:00", "Z")
            self.notify(
                f"{kind} bars start with the ticks of {when}; the earlier ticks of this lake "
                "are not cut into them"
            )
        old = found.open if found is not None else {}
        fresh = {s: OpenBar(number=b.number) for s, b in old.items()}
        return ActivityState(cut_to_ms=start, open=fresh, since_ms=start)

    def write(self, bars: list[ActivityBar], batch_id: int) -> None:
        """Each kind's closed bars, one commit to its table (skipped on a re-run that finds
        it)."""
        clock = time.monotonic()
        for kind, table in ACTIVITY_TABLES.items():
            rows = [bar_row(bar) for bar in bars if bar.kind == kind]
            if rows:
                self.writer.append_rows(rows, ACTIVITY_BAR, table, batch_id)
        if bars:
            self.timings["write"] = time.monotonic() - clock
