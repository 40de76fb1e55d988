"""What the job prints: each closed bar as one line, and its progress every few seconds."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tickstream.bars.activity import ActivityBar
from tickstream.bars.report import BatchReport
from tickstream.bars.state import NO_TIME


def format_bar(bar: dict[str, Any]) -> str:
    """'ES     2013-09-01 22:00:00 O 1640.25 H 1641.00 L 1639.00 C 1639.75 V 3,940 n 893 -0.03%'."""
    start = bar["window_start"]
    when = start.strftime("%Y-%m-%d %H:%M:%S") if isinstance(start, datetime) else str(start)
    return (
        f"{bar['symbol']:<6} {when} O {bar['open']:.2f} H {bar['high']:.2f} L {bar['low']:.2f} "
        f"C {bar['close']:.2f} V {bar['volume']:,.0f} n {bar['trade_count']:,} "
        f"{bar['pct_change']:+.2f}%"
    )


def format_activity_bar(bar: ActivityBar) -> str:
    """'ES     dollar #5 2013-09-01 22:09:56.145 O 1640.50 ... n 367 value 2,552,697'."""
    when = datetime.fromtimestamp(bar.last_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return (
        f"{bar.symbol:<6} {bar.kind} #{bar.number} {when} O {bar.open:.2f} H {bar.high:.2f} "
        f"L {bar.low:.2f} C {bar.close:.2f} V {bar.volume:,.0f} n {bar.ticks:,} "
        f"value {bar.dollar:,.0f}"
    )


def format_time(ms: int) -> str:
    if ms <= NO_TIME:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def first_bar_note(report: BatchReport, watermark_ms: int) -> str | None:
    """Why no bar has appeared yet, and when the first one will: a window closes once the
    watermark (the newest event time minus WATERMARK) passes its end."""
    if report.totals.bars or report.first_open_end_ms is None or report.max_event_ms <= NO_TIME:
        return None
    closes_at = report.first_open_end_ms + watermark_ms
    wait_s = max(0.0, (closes_at - report.max_event_ms) / 1000)
    return (
        f"first bar closes when event time passes {format_time(closes_at)} "
        f"(its window's end + the watermark's delay): in about {format_duration(wait_s)} "
        "of event time"
    )


def format_duration(seconds: float) -> str:
    """'45s', '2m40s'."""
    s = round(seconds)
    return f"{s}s" if s < 60 else f"{s // 60}m{s % 60:02d}s"


class Console:
    def __init__(
        self,
        echo: Callable[[str], None] = print,
        show_bars: bool = True,
        every_s: float = 5.0,
        watermark_ms: int = 0,
    ) -> None:
        self.echo = echo
        self.show_bars = show_bars
        self.every_s = every_s
        self.watermark_ms = watermark_ms
        self._told_first = False
        self.report: BatchReport | None = None
        self._last = time.monotonic()
        self._ticks_since = 0

    def on_batch(self, report: BatchReport) -> None:
        self.report = report
        self._ticks_since += report.accepted + report.duplicates + report.late
        if not self._told_first:
            note = first_bar_note(report, self.watermark_ms)
            if note is not None:
                self.echo(f"job  {note}")
            self._told_first = note is not None or report.totals.bars > 0
        if self.show_bars:
            for bar in report.bars:
                self.echo(f"bar  {format_bar(bar)}")
            for activity in report.activity_bars:
                self.echo(f"bar  {format_activity_bar(activity)}")

    def tick(self, force: bool = False) -> None:
        """Print the progress line if it is time (call it often)."""
        now = time.monotonic()
        if not force and now - self._last < self.every_s:
            return
        rate = self._ticks_since / max(now - self._last, 1e-9)
        self._last, self._ticks_since = now, 0
        r = self.report
        if r is None:
            self.echo("job  waiting for the first micro-batch")
            return
        t = r.totals
        self.echo(
            f"job  {rate:,.0f} ticks/s | watermark {format_time(r.watermark_ms)} | "
            f"state {r.open_rows:,} ticks | bars {t.bars:,} | late {t.late:,} | "
            f"rejected {t.rejected_total:,} | duplicates {t.duplicates:,} | batch {r.batch_id}"
        )
