"""One job per lake: an exclusive lock on a local lake, held while its job runs.

Two jobs on one lake share Spark's checkpoint and the job's state, and Spark does not keep
them apart: tried with two whole jobs, the newer fenced the older on Kafka, then stopped too,
on Spark's checkpoint log (both had planned the same batch), leaving no job running. So a job
takes an exclusive ``flock`` on ``_checkpoints/bars.lock`` before anything else,
and a second job is refused in one line naming the first. The operating system lets go of the
lock when its process ends, however it ends (SIGKILL too), so a crashed job never blocks its
restart.

An object-store lake (``s3a://``) has no such lock: the job runs there unlocked and says so.
Kafka still fences the older job's bars (``bars/publish.py``), but not its lake writes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path

from tickstream.errors import TickstreamError
from tickstream.lake.layout import Lake

UNLOCKED_NOTE = (
    "an object-store lake is not locked against a second job: run one job per lake "
    "(Kafka fences an older job's bars, not its writes to the lake's checkpoint)"
)


class LakeInUseError(TickstreamError):
    """Another job holds the lake's lock."""


class LakeLock:
    """The lake's job lock: :meth:`acquire` before the query starts, :meth:`release` at stop
    (``BarsJob.stop``; a job that ended by itself, ``--once``, holds it until then)."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake
        self._fd: int | None = None

    @property
    def path(self) -> Path | None:
        """The lock file, or None on an object store (not lockable)."""
        return None if self.lake.remote else Path(self.lake.key(*Lake.LOCK))

    def acquire(self) -> bool:
        """Take the lock; False on an object store. Raises :class:`LakeInUseError` (one line)
        while another job, in this process or another, holds it."""
        path = self.path
        if path is None:
            return False
        if self._fd is not None:
            return True
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise LakeInUseError(
                f"another job is running on the lake {self.lake} ({holder}; it holds {path})",
                "stop it first, or give this job its own OUTPUT_PATH",
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        os.pwrite(fd, json.dumps(owner).encode(), 0)
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # no stale owner for the next reader
        os.close(fd)  # closing the file lets go of the lock


def _holder(fd: int) -> str:
    """Who holds the lock, as its file says (written right after it was taken)."""
    try:
        owner = json.loads(os.pread(fd, 4096, 0) or b"{}")
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(owner["since"])))
        return f"pid {int(owner['pid'])} on {owner['host']}, since {since}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a job that is just starting"
