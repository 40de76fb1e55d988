"""Test helpers shared by both tiers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any, TypeVar

T = TypeVar("T")

ES_DATA = Path(__file__).resolve().parent / "data" / "es_ticks_2013-09_120k.csv.gz"
# The real ES ticks, replayed: add --speed, --count ... as a test needs.
REPLAY_ES = (
    "--source",
    "replay",
    "--file",
    str(ES_DATA),
    "--symbol",
    "ES",
    "--tz",
    "America/Chicago",
)


def produce_env(bootstrap: str, topic: str, **more: str) -> dict[str, str]:
    """This process's environment, pointed at a broker and a topic."""
    return {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "KAFKA_TOPIC": topic, **more}


def spawn_produce(
    env: Mapping[str, str],
    *args: str,
    stdout: int | IO[Any] | None = subprocess.PIPE,
    stderr: int | IO[Any] | None = subprocess.PIPE,
) -> subprocess.Popen[str]:
    """`tickstream produce ARGS` in a process of its own."""
    return subprocess.Popen(
        [sys.executable, "-m", "tickstream", "produce", *args],
        env=dict(env),
        stdout=stdout,
        stderr=stderr,
        text=True,
    )


def run_tickstream(
    env: Mapping[str, str], *args: str, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """`tickstream ARGS` run to its end in a process of its own, its output kept."""
    return subprocess.run(
        [sys.executable, "-m", "tickstream", *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_group(
    args: list[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command in a process group of its own and return what it printed; on a timeout
    (or any failure here) the whole group is killed, the JVMs it started too."""
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=None if env is None else dict(env),
        cwd=cwd,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return subprocess.CompletedProcess(args, proc.returncode, stdout, stderr)


def wait_until(
    condition: Callable[[], T],
    *,
    timeout: float = 30.0,
    interval: float = 0.1,
    message: str = "condition",
) -> T:
    """Poll ``condition`` until it returns a truthy value or ``timeout`` seconds pass.

    Returns that value; raises AssertionError naming ``message`` at the deadline.
    No bare sleeps in tests: wait for what you need, with a deadline.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {message}")
        time.sleep(interval)


def await_progress(
    done: Callable[[], bool],
    progress: Callable[[], object],
    *,
    stall: float,
    what: Callable[[], str],
    interval: float = 0.0,
) -> None:
    """Wait until ``done()``, for as long as ``progress()`` keeps changing.

    ``done`` may block for a while itself (``awaitTermination(1)``); ``interval`` adds a pause
    between polls that do not. Fails with ``what()`` (what was seen) after ``stall`` seconds in
    which ``progress()`` did not change.
    """
    mark, since = progress(), time.monotonic()
    while not done():
        now = progress()
        if now != mark:
            mark, since = now, time.monotonic()
        elif time.monotonic() - since >= stall:
            raise AssertionError(f"no progress for {stall:g} s waiting for {what()}")
        if interval:
            time.sleep(interval)
