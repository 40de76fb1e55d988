"""The lake's job lock (a real flock on a real file): one holder, a second refused in one line
that names the first, and a holder's death, however it comes, frees the lake."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tickstream.lake.layout import Lake
from tickstream.lake.lock import LakeInUseError, LakeLock


def test_a_second_lock_on_the_lake_is_refused_in_one_line_naming_the_first(
    tmp_path: Path,
) -> None:
    lake = Lake(tmp_path / "lake")
    first = LakeLock(lake)
    assert first.acquire()
    with pytest.raises(LakeInUseError) as refused:
        LakeLock(lake).acquire()
    line = str(refused.value)
    assert "\n" not in line
    assert re.fullmatch(
        rf"another job is running on the lake {re.escape(str(lake))} \(pid {os.getpid()} on "
        r"\S+, since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC; it holds "
        rf"{re.escape(str(tmp_path / 'lake' / '_checkpoints' / 'bars.lock'))}\); stop it "
        r"first, or give this job its own OUTPUT_PATH",
        line,
    ), line
    first.release()
    again = LakeLock(lake)
    assert again.acquire()
    again.release()


def test_a_killed_holder_frees_the_lake(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from tickstream.lake.layout import Lake
                from tickstream.lake.lock import LakeLock
                assert LakeLock(Lake({str(tmp_path / "lake")!r})).acquire()
                print("held", flush=True)
                time.sleep(600)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LakeInUseError, match=rf"\(pid {holder.pid} on "):
            LakeLock(Lake(tmp_path / "lake")).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
    lock = LakeLock(Lake(tmp_path / "lake"))
    assert lock.acquire()  # no stale lock after a SIGKILL
    lock.release()


def test_an_object_store_lake_is_not_locked() -> None:
    lock = LakeLock(Lake("s3a://bucket/lake"))
    assert lock.path is None
    assert lock.acquire() is False
    lock.release()
