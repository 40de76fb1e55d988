"""Clean shutdown on Ctrl-C and SIGTERM: the first signal asks to stop, a second one insists."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType


@contextmanager
def stop_on_signals(
    stop: threading.Event, notify: Callable[[str], None], what: str = "finishing"
) -> Iterator[threading.Event]:
    """Set ``stop`` on SIGINT/SIGTERM; a second signal raises KeyboardInterrupt."""

    def handle(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        notify(f"{signal.Signals(signum).name} received: {what} (again to abort)")

    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
