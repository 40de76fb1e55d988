"""The bars job inside the test process, and the guard that no streaming query outlives its test.

Every job a test starts goes through :class:`Jobs`, whose owner (the ``jobs`` fixture, or a
module fixture) stops it on the way out, on failure and on pytest-timeout too. The ``spark``
fixture's guard (:func:`stop_leftovers`) then stops any query still active that no one owns and
says which test left it: one test's failure never fails the tests after it.

Waits follow the job's progress, not the clock: :func:`await_end` waits as long as micro-batches
keep completing, and fails after ``stall`` seconds without one, saying what it saw.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.helpers import await_progress
from tickstream.bars.job import BarsJob
from tickstream.config import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from pyspark.sql.streaming.query import StreamingQuery

# How long a job may go without completing a micro-batch before a wait gives up on it. A first
# micro-batch of 120,000 ticks on a cold JVM on a busy 2-core machine takes ~60 s.
STALL_SECONDS = 240.0

# Queries owned by a fixture broader than one test (query id -> owner): not a test's leftovers.
OWNED: dict[str, str] = {}


class Jobs:
    """Starts bars jobs for one owner and stops every one of them in :meth:`stop_all`."""

    def __init__(self, spark: SparkSession, owner: str, *, shared: bool = False) -> None:
        self.spark = spark
        self.owner = owner
        self.shared = shared  # owned by a module fixture: its queries outlive single tests
        self.started: list[BarsJob] = []

    def start(self, settings: Settings, *, once: bool = False, **kwargs: Any) -> BarsJob:
        """A started job; ``once`` processes what the topic holds now, then ends."""
        job = BarsJob(settings, self.spark, **kwargs)
        self.started.append(job)
        query = job.start(once=once)
        if self.shared:
            OWNED[query.id] = self.owner
        return job

    def drain(self, settings: Settings, *, stall: float = STALL_SECONDS, **kwargs: Any) -> BarsJob:
        """Run a job over what the topic holds now to its end; fails if it fails or stalls."""
        job = self.start(settings, once=True, **kwargs)
        await_end(job, stall=stall)
        assert job.failure() is None, job.failure()
        job.stop()  # as `tickstream stream --once` does: it lets go of the lake's lock
        return job

    def __enter__(self) -> Jobs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def stop_all(self) -> None:
        for job in self.started:
            if job.query is not None:
                OWNED.pop(job.query.id, None)
                if job.query.isActive:
                    job.stop(timeout=60)
            job.lock.release()  # an ended job's too: the lake is free for the next test's


def batches_done(job: BarsJob) -> int:
    """The id of the job's last completed micro-batch, -1 before the first."""
    report = job.last_report
    return report.batch_id if report is not None else -1


def describe(job: BarsJob) -> str:
    """What a stalled job was doing, for the failure message."""
    query = job.query
    if query is None:
        return "the job's query never started"
    seen = f"last completed micro-batch: {batches_done(job)}"
    progress = query.lastProgress
    if progress:
        seen += (
            f"; Spark's last progress: batch {progress.get('batchId')}, "
            f"{progress.get('numInputRows')} rows, "
            f"{progress.get('durationMs', {}).get('triggerExecution')} ms"
        )
    return f"{seen}; status: {query.status.get('message')!r}, active: {query.isActive}"


def await_end(job: BarsJob, *, stall: float = STALL_SECONDS) -> None:
    """Wait for a ``once`` job's query to end for as long as it keeps completing micro-batches.

    Raises AssertionError after ``stall`` seconds without a completed batch, and re-raises the
    query's own exception if it failed.
    """
    query = job.query
    assert query is not None, "start the job first"
    await_progress(
        lambda: query.awaitTermination(1) is True,
        lambda: batches_done(job),
        stall=stall,
        what=lambda: f"the bars job to finish ({describe(job)})",
    )


def stop_leftovers(spark: SparkSession) -> list[str]:
    """Stop every active streaming query not owned by a live fixture; returns what it stopped."""
    stopped = []
    for query in spark.streams.active:
        if query.id in OWNED:
            continue
        stopped.append(_named(query))
        try:
            query.stop()
        except Exception as exc:  # a stop that times out (spark.sql.streaming.stopTimeout)
            stopped[-1] += f" (its stop failed: {str(exc).splitlines()[0]})"
    return stopped


def drop_thread_connection(spark: SparkSession) -> None:
    """Give this thread a new connection to the JVM at its next call.

    A test failed by pytest-timeout is interrupted inside a call to the JVM (say,
    ``awaitTermination``): the call's answer is still to come on this thread's connection, so
    the next call on it would wait for ever, or read that answer as its own. Closing it makes
    PySpark open a fresh one (its JVM thread ends when the stale call returns).
    """
    client = spark.sparkContext._gateway._gateway_client  # type: ignore[union-attr]
    current = getattr(client, "get_thread_connection", lambda: None)()
    if current is not None:
        current.close()


def _named(query: StreamingQuery) -> str:
    return f"query {query.name!r} ({query.id})"
