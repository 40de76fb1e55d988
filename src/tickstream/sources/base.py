"""The interface every tick source implements."""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator

from tickstream.ticks.columnar import TickChunk

# While waiting for the next tick, a source yields an empty chunk at least this often, so the
# producer can serve delivery reports and send heartbeats in a quiet market.
IDLE_YIELD_S = 0.2


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class TickSource(ABC):
    """Yields chunks of ticks until exhausted or until ``stop`` is set.

    A source paces itself (real-time replay, a fixed rate) and may yield empty chunks
    while it waits. ``clock_ms`` is its current event time, which heartbeats carry.
    """

    name: str = "?"
    live: bool = False  # ticks that cannot be had again: the producer spools them by default

    def __init__(self, stop: threading.Event | None = None) -> None:
        self.stop = stop or threading.Event()

    @abstractmethod
    def chunks(self) -> Iterator[TickChunk]:
        """The ticks, in the order they are to be sent."""

    @abstractmethod
    def clock_ms(self) -> int | None:
        """The source's event-time clock now, or None before the first tick."""

    @property
    def total(self) -> int | None:
        """How many ticks the source will yield, if known (for progress and ETA)."""
        return None

    @property
    def bad_rows(self) -> int:
        """Input rows that were reported and skipped."""
        return 0

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, waking early on stop; True if stopped."""
        return self.stop.wait(max(0.0, seconds))
