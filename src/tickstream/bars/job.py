"""The bars job: one streaming query, one micro-batch function, an exactly-once lake.

The query (:mod:`tickstream.bars.source`) reads the topic and parses each message. Each
micro-batch classifies its ticks against the keyed dedup index in Spark's state store, then runs
the steps of :mod:`tickstream.bars.steps`: outcomes (late first), one
summary with the partial aggregates of the accepted ticks, the new watermark, the windows it
closes (merged and turned into bars on the driver, :mod:`tickstream.bars.partials`), and the
lake's files. This module only orchestrates.

Everything depends only on the batch's Kafka offsets (fixed by Spark's offset log), the state
store's version of the batch before, and the driver's record of the batch before
(:mod:`tickstream.bars.state`), so a batch that runs again after a crash computes the same rows;
the lake's Delta tables skip a batch already committed (:mod:`tickstream.bars.writer`).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from tickstream.bars import partials as P
from tickstream.bars.activity import ActivityBar
from tickstream.bars.activity_step import ActivityStep, cut_through
from tickstream.bars.maintenance import Compactor
from tickstream.bars.metrics import JobMetrics
from tickstream.bars.parse import Rules
from tickstream.bars.publish import BarPublisher, BarsNotPublishedError
from tickstream.bars.report import BatchReport
from tickstream.bars.schema import BAR, BAR_COLUMNS
from tickstream.bars.source import Index, classify, read_events
from tickstream.bars.state import NO_TIME, ActivityState, Snapshot, StateStore, Totals
from tickstream.bars.steps import (
    accepted_ticks,
    late_ticks,
    next_watermark,
    reject_rows,
    summarize,
    with_outcome,
)
from tickstream.bars.writer import LakeWriter, parquet_tables
from tickstream.config import Settings
from tickstream.errors import TickstreamError
from tickstream.kafka.clients import spark_kafka_options
from tickstream.lake.layout import CSV_TABLE, Lake
from tickstream.lake.lock import UNLOCKED_NOTE, LakeLock

if TYPE_CHECKING:
    from pyspark.sql.streaming.query import StreamingQuery


# A batch's tick archive is written by one task per this many rows (up to one per core).
ARCHIVE_ROWS_PER_FILE = 100_000
SEQUENCES = "sequences"  # the index record's word for chunks of sequence numbers


class StoppedError(RuntimeError):
    """Raised inside a batch that starts while the job is stopping: Spark will run it again."""


# Spark's error class when a second query writes the same checkpoint log.
CONCURRENT_CHECKPOINT = "CONCURRENT_STREAM_LOG_UPDATE"


class BarsJob:
    def __init__(
        self,
        settings: Settings,
        spark: SparkSession,
        *,
        on_batch: Callable[[BatchReport], None] | None = None,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.spark = spark
        self.root = Lake.from_settings(settings)
        self.lake = LakeWriter(self.root)
        self.state = StateStore(self.root)
        self.lock = LakeLock(self.root)
        self.rules = Rules(
            min_ts_ms=settings.tick_min_ms,
            max_ahead_ms=settings.tick_max_ahead_ms,
            max_message_bytes=settings.max_message_bytes,
        )
        self.window_ms = settings.window_ms
        self.on_batch = on_batch
        self.notify = notify or (lambda message: None)
        self.compactor: Compactor | None = None
        self.activity = ActivityStep(settings, self.lake, self.notify)
        self.parallel_writes = True  # off: one table after the other (bench/stream_throughput)
        # Threads kept for the life of the job: each Python thread that calls Spark holds a
        # connection to the JVM of its own.
        self._writers = ThreadPoolExecutor(4, thread_name_prefix="lake-write")
        self.stopping = threading.Event()
        self._batch_lock = threading.Lock()
        self.query: StreamingQuery | None = None
        self.index: Index | None = None
        self.last_report: BatchReport | None = None
        self.refused_batch: int | None = None
        # Why a batch could not go on that a restart alone does not fix (another run of this
        # checkpoint fenced this one): the job's failure, said in one line.
        self.fatal: TickstreamError | None = None
        self._started = threading.Event()  # self.query is set
        self.metrics: JobMetrics | None = JobMetrics(self) if settings.metrics_port else None
        self.publisher = (
            BarPublisher(settings, stopping=self.stopping, notify=self.notify)
            if settings.bars_topic or settings.bars_live_topic
            else None
        )

    # --- the query ----------------------------------------------------------------------------

    def prepare(self) -> None:
        """Take the lake's lock, check the lake and the bars topics, serve the metrics, and open
        the dedup index: what :meth:`process` needs before a first micro-batch (``start`` calls
        it). A second job on the lake stops here, in one line (``lake/lock.py``)."""
        try:
            self._prepare()
        except BaseException:
            self.lock.release()  # a job that did not start leaves the lake to the next one
            raise

    def _prepare(self) -> None:
        try:
            if not self.lock.acquire():  # one job per lake: a second is refused in one line
                self.notify(UNLOCKED_NOTE)
            layout = self._prepare_lake()
        except OSError as exc:  # a wrong endpoint or key, a missing bucket, a read-only folder
            raise self.root.unreachable(exc) from None
        if self.publisher is not None:
            self.publisher.check_topics()
        if self.metrics is not None:
            self._serve_metrics(self.metrics)
        run_id = str(uuid.uuid4())
        self.index = Index(self.root.index(), layout.partitions, run_id, layout.sequences)

    def start(self, *, once: bool = False) -> StreamingQuery:
        """Start the query; ``once`` processes what the topic holds now, then stops."""
        self.prepare()
        try:
            source = read_events(self.spark, self.settings, self.rules)
            writer = (
                source.writeStream.foreachBatch(self.process)
                .option("checkpointLocation", self.root.checkpoint())
                .queryName("tickstream-bars")
            )
            if once:
                writer = writer.trigger(availableNow=True)
            else:
                writer = writer.trigger(processingTime=self.settings.processing_trigger)
            self.query = writer.start()
        except BaseException:
            self.lock.release()
            raise
        self._started.set()
        if self.settings.lake_compaction:
            self.compactor = Compactor(
                self.spark,
                self.root,
                self.settings.lake_compaction_seconds,
                watermark=self._watermark,
                active=lambda: self.query is not None and self.query.isActive,
                notify=self.notify,
            )
            self.compactor.start()
        return self.query

    def _serve_metrics(self, metrics: JobMetrics) -> None:
        host, port = self.settings.metrics_host, self.settings.metrics_port
        assert port is not None
        try:
            metrics.serve(host, port)
        except OSError as exc:
            raise TickstreamError(
                f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}",
                "set METRICS_PORT to a free port (or unset it to turn metrics off)",
            ) from None

    def _prepare_lake(self) -> IndexLayout:
        """Check the lake before the query starts; returns the dedup index's layout."""
        self.state.latest()  # a record this engine cannot read: one line now, not a failed batch
        old = parquet_tables(self.root)
        if old:
            raise TickstreamError(
                f"{self.root} holds tables written as plain Parquet files by an earlier "
                f"tickstream ({', '.join(old)}); the lake's tables are Delta tables now",
                "run `tickstream lake convert` to turn them into Delta tables in place",
            )
        self.root.make_root()
        return index_layout(self.root, self.spark.sparkContext.defaultParallelism)

    def _watermark(self) -> int | None:
        report = self.last_report
        return report.watermark_ms if report and report.watermark_ms != NO_TIME else None

    def stop(self, timeout: float = 120.0) -> None:
        """Let the running micro-batch finish, then stop the query (no batch is cut short)."""
        self.stopping.set()
        # Wait for the running batch to finish, then let go of the lock before stopping the
        # query: a batch that starts meanwhile must be able to take the lock, see `stopping`
        # and return at once (Spark re-runs it on restart). Holding the lock here would leave
        # that batch blocked inside Spark's callback and query.stop() waiting for it forever.
        if self._batch_lock.acquire(timeout=timeout):
            self._batch_lock.release()
        if self.compactor is not None:
            # A compaction cut short commits nothing: its files go with the next VACUUM.
            self.compactor.stop(timeout=10)
        if self.query is not None:
            self.query.stop()
        self._writers.shutdown(wait=False)
        if self.publisher is not None:
            self.publisher.close()
        if self.metrics is not None:
            self.metrics.close()
        self.lock.release()

    def failure(self) -> Exception | None:
        """Why the query ended, or None: stopped on request, or finished (``once``).

        A trigger already being planned when ``stop()`` is called reaches ``process`` after the
        stop was requested; it is refused (not committed, so it runs again on restart) and Spark
        records the refusal as the query's exception. That is a clean stop, not a failure.
        """
        if self.fatal is not None:
            return self.fatal
        if self.query is None:
            return None
        error = self.query.exception()
        if error is not None and self.refused_batch is not None:
            return None
        if error is not None and CONCURRENT_CHECKPOINT in str(error):
            return TickstreamError(  # two jobs on an unlocked (object-store) lake
                f"another job wrote this lake's checkpoint ({self.root.checkpoint()}) at the "
                "same time, and Spark stopped this one",
                "run one job per lake; start this one again once the other has stopped",
            )
        return error

    # --- one micro-batch ----------------------------------------------------------------------

    def process(self, batch: DataFrame, batch_id: int) -> None:
        with self._batch_lock:
            if self.stopping.is_set():
                self.refused_batch = batch_id
                raise StoppedError("the job is stopping; this batch runs again on restart")
            try:
                report = self._process(batch, batch_id)
            except TickstreamError as exc:  # fenced, or a broker that refuses transactions
                self.fatal = exc
                raise
            except BarsNotPublishedError:
                if self.stopping.is_set():  # a clean stop: the batch runs again on restart
                    self.refused_batch = batch_id
                raise
        self.last_report = report
        if self.metrics is not None:
            self.metrics.on_batch(report)
        if self.on_batch is not None:
            self.on_batch(report)

    def _process(self, batch: DataFrame, batch_id: int) -> BatchReport:
        started = time.monotonic()
        before = self.state.load_before(batch_id)
        watermark = before.watermark_ms
        # The batch is computed once (the dedup index writes its next version then); every step
        # below reads the cached rows.
        assert self.index is not None  # set by start()
        classified = classify(batch, self.index, batch_id, watermark)
        tagged = with_outcome(classified).persist()
        try:
            summary = summarize(tagged)
            partition_max = dict(before.partition_max_ms)
            for key, ms in summary.partition_max_ms.items():
                partition_max[key] = max(partition_max.get(key, NO_TIME), ms)
            new_watermark = next_watermark(watermark, partition_max, self.settings.watermark_ms)
            windows = P.merge_into(before.windows(), summary.partials)
            closed, still_open = P.split_closed(windows, new_watermark, self.window_ms)
            bars = [P.to_bar(p, self.window_ms) for p in closed]

            # Each table is its own Delta log: the batch's appends run at the same time, each
            # a Spark job of its own (the tick archive's is the long one; the others use the
            # cores it leaves idle). Each is skipped on a re-run that finds its commit.
            writes: list[Callable[[], None]] = []
            if summary.count("late"):
                late = late_ticks(tagged, watermark)
                writes.append(lambda: self.lake.append(late, "late", batch_id))
            if summary.rejected:
                writes.append(lambda: self._write_rejects(tagged, batch_id))
            if summary.count("accepted"):
                accepted = accepted_ticks(tagged)
                files = self._archive_files(summary.count("accepted"))
                writes.append(lambda: self.lake.append(accepted, "ticks", batch_id, files=files))
            if bars:
                writes.append(lambda: self._write_bars(bars, batch_id))
            # Tick, volume and dollar bars are cut from the tick archive through the start of
            # the oldest open window (bars/activity_step.py). A batch that adds no tick before
            # it cuts beside its own writes, from the archive as the batches before left it;
            # one that does, after its own archive commit.
            cutting = ActivityCut(self.activity, before, new_watermark, batch_id)
            if self.activity.on and not cutting.needs_batch(summary.partials):
                writes.append(cutting.run)
            self._run_all(writes)
        finally:
            tagged.unpersist()
        activity, activity_state = cutting.result()
        if self.publisher is not None:
            # After the lake's commits, before the batch is recorded as done, in one Kafka
            # transaction that records the batch's id: exactly once (docs/live-view.md).
            if not self.publisher.opened:
                self._started.wait()
                assert self.query is not None
                self.publisher.open(self.query.id)
            self.publisher.publish_closed(bars, batch_id, activity)
            changed = sorted({p.key for p in summary.partials} & still_open.keys(), key=_by_time)
            forming = [P.to_bar(still_open[key], self.window_ms) for key in changed]
            self.publisher.publish_forming(forming, batch_id)

        totals = _add(
            before.totals,
            messages=summary.messages,
            ticks_valid=summary.valid_ticks,
            ticks_accepted=summary.count("accepted"),
            duplicates=summary.count("duplicate"),
            late=summary.count("late"),
            heartbeats=summary.count("heartbeat"),
            bars=len(bars),
            rejected=summary.rejected,
            activity=activity,
        )
        open_rows = P.open_ticks(still_open)
        max_event_ms = max([before.max_event_ms, *partition_max.values()])
        self.state.save(
            Snapshot(
                batch_id=batch_id,
                watermark_ms=new_watermark,
                max_event_ms=max_event_ms,
                partition_max_ms=partition_max,
                open_rows=open_rows,
                totals=totals,
                open_windows=sorted(still_open.values(), key=lambda p: p.key),
                activity=activity_state,
                window_ms=self.window_ms,
            )
        )
        self.state.prune(keep_from=batch_id - 1)
        return BatchReport(
            batch_id=batch_id,
            messages=summary.messages,
            accepted=summary.count("accepted"),
            duplicates=summary.count("duplicate"),
            late=summary.count("late"),
            rejected=sum(summary.rejected.values()),
            heartbeats=summary.count("heartbeat"),
            bars=bars,
            watermark_ms=new_watermark,
            max_event_ms=max_event_ms,
            open_rows=open_rows,
            open_windows=len(still_open),
            first_open_end_ms=(
                min(p.window_start_ms for p in still_open.values()) + self.window_ms
                if still_open
                else None
            ),
            seconds=time.monotonic() - started,
            totals=totals,
            activity_bars=activity,
            activity_seconds=cutting.seconds,
        )

    def _archive_files(self, accepted: int) -> int:
        """Files per date of a batch's tick archive: one, or one per core for a large batch (a
        backlog), which one task would write alone; compaction merges them later."""
        if not self.parallel_writes:
            return 1
        cores = self.spark.sparkContext.defaultParallelism
        return max(1, min(cores, accepted // ARCHIVE_ROWS_PER_FILE))

    def _write_bars(self, bars: list[dict[str, Any]], batch_id: int) -> None:
        self.lake.append_rows(bars, BAR, "bars", batch_id)
        self.lake.write_csv(bars, BAR_COLUMNS, CSV_TABLE, batch_id)

    def _run_all(self, writes: list[Callable[[], None]]) -> None:
        """Run the batch's writes, at the same time unless ``parallel_writes`` is off; the first
        failure is raised once they have all ended (the batch then fails, and runs again)."""
        if not self.parallel_writes or len(writes) < 2:
            for write in writes:
                write()
            return
        futures = [self._writers.submit(write) for write in writes]
        wait(futures)
        for future in futures:
            future.result()

    def _write_rejects(self, tagged: DataFrame, batch_id: int) -> None:
        rejects = reject_rows(tagged, self.settings.kafka_topic, self.settings.max_message_bytes)
        self.lake.append(rejects, "rejects", batch_id)
        if self.settings.dlq_topic:
            (
                rejects.select(
                    F.col("raw").alias("value"),
                    F.array(
                        F.struct(
                            F.lit("reason").alias("key"),
                            F.col("reason").cast("binary").alias("value"),
                        )
                    ).alias("headers"),
                )
                .write.format("kafka")
                .options(**spark_kafka_options(self.settings))
                .option("topic", self.settings.dlq_topic)
                .option("includeHeaders", "true")
                .save()
            )

    def latest_snapshot(self) -> Snapshot:
        return self.state.latest()


class ActivityCut:
    """The batch's cutting of tick, volume and dollar bars, run once: beside the batch's
    writes, or after them (:meth:`result` runs it if it has not run)."""

    def __init__(
        self, step: ActivityStep, before: Snapshot, watermark_ms: int, batch_id: int
    ) -> None:
        self.step, self.before, self.watermark_ms, self.batch_id = (
            step,
            before,
            watermark_ms,
            batch_id,
        )
        self.seconds = 0.0
        self._done: tuple[list[ActivityBar], dict[str, ActivityState]] | None = None

    def needs_batch(self, partials: list[P.Partial]) -> bool:
        """Whether the batch accepted a tick the cut takes (so it must wait for the batch's
        archive commit)."""
        end = cut_through(self.watermark_ms, self.step.window_ms)
        return any(p.window_start_ms < end for p in partials)

    def run(self) -> None:
        clock = time.monotonic()
        bars, state = self.step.run(self.before, self.watermark_ms)
        self.step.write(bars, self.batch_id)
        self._done = (bars, state)
        self.seconds = time.monotonic() - clock

    def result(self) -> tuple[list[ActivityBar], dict[str, ActivityState]]:
        if self._done is None:
            self.run()
        assert self._done is not None
        return self._done


@dataclass(frozen=True)
class IndexLayout:
    """How the dedup index is laid out: fixed for the life of the index."""

    partitions: int
    sequences: bool  # the producer's event_ids kept in chunks of sequence numbers


def index_layout(lake: Lake, default: int) -> IndexLayout:
    """The dedup index's layout: ``default`` partitions and chunks for a new lake, then fixed.

    The default is one state partition per core Spark has at the first start: each
    partition's store costs a task and a commit per micro-batch, so more partitions than cores
    only add fixed cost. Event_ids are assigned to state partitions by a hash modulo this
    number, so it is recorded with the checkpoints on the first start and read back on every
    later one. So is where the producer's own event_ids (``<producer>-<n>``) are kept: in
    chunks of sequence numbers (``DedupIndex``), or, in an index recorded before chunks
    existed, whole like any other event_id (a chunk is looked up where the id is not).
    """
    record = lake.read_text(*Lake.INDEX_RECORD)
    if record is not None:
        recorded = json.loads(record)
        return IndexLayout(int(recorded["partitions"]), recorded.get("event_ids") == SEQUENCES)
    layout = {"partitions": default, "event_ids": SEQUENCES}
    lake.write_text(Lake.INDEX_RECORD, json.dumps(layout) + "\n")
    return IndexLayout(default, True)


def _by_time(key: P.Key) -> tuple[int, str]:
    return (key[1], key[0])


def _add(
    totals: Totals,
    *,
    rejected: dict[str, int],
    activity: list[ActivityBar],
    **counts: int,
) -> Totals:
    merged = dict(totals.rejected)
    for reason, n in rejected.items():
        merged[reason] = merged.get(reason, 0) + n
    kinds = dict(totals.activity_bars)
    for bar in activity:
        kinds[bar.kind] = kinds.get(bar.kind, 0) + 1
    values = {name: getattr(totals, name) + n for name, n in counts.items()}
    return Totals(rejected=merged, activity_bars=kinds, **values)
