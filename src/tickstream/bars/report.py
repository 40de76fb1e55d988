"""What one micro-batch did, as plain data: for the console, the metrics and the tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tickstream.bars.activity import ActivityBar
from tickstream.bars.state import NO_TIME, Totals


@dataclass
class BatchReport:
    batch_id: int
    messages: int
    accepted: int
    duplicates: int
    late: int
    rejected: int
    heartbeats: int
    bars: list[dict[str, Any]] = field(default_factory=list)
    watermark_ms: int = NO_TIME
    max_event_ms: int = NO_TIME
    open_rows: int = 0
    open_windows: int = 0
    first_open_end_ms: int | None = None  # the end of the earliest open window
    seconds: float = 0.0
    totals: Totals = field(default_factory=Totals)
    activity_bars: list[ActivityBar] = field(default_factory=list)  # tick, volume, dollar
    activity_seconds: float = 0.0  # of ``seconds``: reading, cutting and writing them
