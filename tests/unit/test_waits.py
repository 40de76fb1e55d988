"""The test suite's progress-following wait: a stall deadline, not a total one."""

from __future__ import annotations

import itertools
import time

import pytest

from tests.helpers import await_progress


def test_waits_past_the_stall_deadline_while_progress_continues() -> None:
    started = time.monotonic()
    ticks = itertools.count()
    # Progress every poll, done after 0.6 s: three times the stall deadline.
    await_progress(
        lambda: time.monotonic() - started >= 0.6,
        lambda: next(ticks),
        stall=0.2,
        what=lambda: "never shown",
        interval=0.01,
    )
    assert time.monotonic() - started >= 0.6


def test_fails_after_the_stall_deadline_saying_what_it_saw() -> None:
    seen = {"batches": 3}
    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"no progress for 0.2 s waiting for 3 batches done"):
        await_progress(
            lambda: False,
            lambda: seen["batches"],
            stall=0.2,
            what=lambda: f"{seen['batches']} batches done",
            interval=0.01,
        )
    assert 0.2 <= time.monotonic() - started < 5


def test_a_stall_is_counted_from_the_last_progress() -> None:
    values = iter([0, 1, 2] + [2] * 10_000)
    started = time.monotonic()
    with pytest.raises(AssertionError):
        await_progress(
            lambda: False, lambda: next(values), stall=0.2, what=lambda: "x", interval=0.05
        )
    assert time.monotonic() - started >= 0.25  # changes at 0 and 0.05 s, then 0.2 s without
