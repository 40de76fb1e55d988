"""Progress of long work: a live line on a terminal, nothing in between otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from tickstream.kafka.spool import format_size


class ProgressLine:
    """Rewrites one terminal line at most every ``interval`` seconds: count, rate, ETA."""

    def __init__(
        self,
        label: str,
        total: int | None = None,
        *,
        stream: TextIO | None = None,
        interval: float = 0.5,
        enabled: bool | None = None,
    ) -> None:
        self.label = label
        self.total = total
        self.stream = stream or sys.stderr
        self.interval = interval
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._started = time.monotonic()
        self._last_draw = 0.0
        self._window: tuple[float, int] = (self._started, 0)
        self._rate = 0.0
        self._drawn = False

    def update(self, done: int, extra: str = "") -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last_draw < self.interval:
            return
        t0, n0 = self._window
        if now - t0 >= 1.0 or self._rate == 0.0:
            self._rate = (done - n0) / max(now - t0, 1e-9)
            self._window = (now, done)
        self._last_draw = now
        text = f"{self.label}: {done:,}"
        if self.total:
            pct = 100.0 * done / self.total
            text += f"/{self.total:,} ({pct:.1f}%)"
        text += f"  {self._rate:,.0f}/s"
        if self.total and self._rate > 0 and done < self.total:
            text += f"  ETA {format_eta((self.total - done) / self._rate)}"
        if extra:
            text += f"  {extra}"
        self.stream.write("\r\x1b[K" + text)
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


def format_eta(seconds: float) -> str:
    """'42s', '3m05s', '2h07m'."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


class StatusLines:
    """A producer's status as a plain line every ``every_s`` seconds (for `tickstream up`, where
    a live line would be overwritten by the job's lines)."""

    def __init__(self, echo: Callable[[str], None], every_s: float) -> None:
        self.echo = echo
        self.every_s = every_s
        self._last = time.monotonic()
        self._sent = 0

    def update(self, stats: Any, queued: int) -> None:
        now = time.monotonic()
        if now - self._last < self.every_s:
            return
        rate = (stats.sent - self._sent) / (now - self._last)
        self._last, self._sent = now, stats.sent
        self.echo(status_text(stats, queued, rate))


def status_text(stats: Any, queued: int, rate: float) -> str:
    """A producer's state in one line."""
    text = (
        f"{rate:,.0f} ticks/s | sent {stats.sent:,} | queued {queued:,} | failed {stats.failed:,}"
    )
    spool = spool_text(stats)
    return f"{text} | {spool}" if spool else text


def spool_text(stats: Any) -> str:
    """With a spool: what it holds, and how long Kafka has been unreachable."""
    if stats.spool_path is None:
        return ""
    text = (
        f"spooled {stats.spooled:,} | spool {format_size(stats.spool_bytes)}, "
        f"{stats.spool_pending:,} unacknowledged"
    )
    if stats.down_s:
        text += f" | kafka down {format_eta(stats.down_s)}"
    if stats.dead_letters:
        text += f" | dead letters {stats.dead_letters:,}"
    return text
