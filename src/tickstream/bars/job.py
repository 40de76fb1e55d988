"""The bars job: one read of the topic, one micro-batch function, an exactly-once lake.

For each micro-batch (``process``):

1. parse and validate every message (:mod:`tickstream.bars.parse`): rejects, heartbeats, ticks;
2. a tick whose window was already closed by the watermark in force is **late**: it goes to
   ``late/`` with how late it was;
3. the others are deduplicated by ``event_id``, within the batch and against the accepted
   ticks of the windows still open (the job's state): a duplicate is counted, not counted twice;
4. the watermark moves to (largest event time seen, ticks and heartbeats) - WATERMARK;
5. every open window whose end is at or behind the new watermark is closed: its bar is
   computed from all its ticks and written once to ``bars/`` and ``bars_csv/``;
6. accepted ticks go to the ``ticks/`` archive, rejects to ``rejects/`` (and the DLQ topic);
7. the new state snapshot is saved.

All of it depends only on the batch's Kafka offsets (fixed by Spark's offset log) and the
previous snapshot, so a batch re-run after a crash rewrites the same files.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from tickstream.bars.compute import compute_bars, window_start_ms
from tickstream.bars.lake import LakeWriter, local_path
from tickstream.bars.parse import Rules, parse_events
from tickstream.bars.schema import TICK
from tickstream.bars.state import NO_TIME, Snapshot, StateStore, Totals
from tickstream.config import Settings
from tickstream.kafka_admin import spark_kafka_security

if TYPE_CHECKING:
    from pyspark.sql.streaming.query import StreamingQuery


@dataclass
class BatchReport:
    batch_id: int
    messages: int
    accepted: int
    duplicates: int
    late: int
    rejected: int
    heartbeats: int
    bars: list[dict[str, Any]] = field(default_factory=list)
    watermark_ms: int = NO_TIME
    open_rows: int = 0
    seconds: float = 0.0
    totals: Totals = field(default_factory=Totals)


class StoppedError(RuntimeError):
    """Raised inside a batch that starts while the job is stopping: Spark will run it again."""


def kafka_options(settings: Settings) -> dict[str, str]:
    options = {
        "kafka.bootstrap.servers": settings.kafka_bootstrap_servers,
        "subscribe": settings.kafka_topic,
        "startingOffsets": settings.starting_offsets,
        "failOnDataLoss": str(settings.fail_on_data_loss).lower(),
        "includeHeaders": "false",
    }
    if settings.max_offsets_per_trigger is not None:
        options["maxOffsetsPerTrigger"] = str(settings.max_offsets_per_trigger)
    options.update(spark_kafka_security(settings))
    return options


class BarsJob:
    def __init__(
        self,
        settings: Settings,
        spark: SparkSession,
        *,
        on_batch: Callable[[BatchReport], None] | None = None,
    ) -> None:
        self.settings = settings
        self.spark = spark
        self.root = local_path(settings.output_path)
        self.lake = LakeWriter(self.root)
        self.state = StateStore(self.root / "_checkpoints" / "bars_state", spark)
        self.checkpoint = self.root / "_checkpoints" / "bars"
        self.rules = Rules(
            min_ts_ms=settings.tick_min_ms,
            max_ahead_ms=settings.tick_max_ahead_ms,
            max_message_bytes=settings.max_message_bytes,
        )
        self.window_ms = settings.window_ms
        self.on_batch = on_batch
        self.stopping = threading.Event()
        self._batch_lock = threading.Lock()
        self.query: StreamingQuery | None = None
        self.last_report: BatchReport | None = None

    # --- the query ----------------------------------------------------------------------------

    def start(self, *, once: bool = False) -> StreamingQuery:
        """Start the query; ``once`` processes what the topic holds now, then stops."""
        self.root.mkdir(parents=True, exist_ok=True)
        source = (
            self.spark.readStream.format("kafka").options(**kafka_options(self.settings)).load()
        )
        writer = (
            source.writeStream.foreachBatch(self.process)
            .option("checkpointLocation", self.checkpoint.as_posix())
            .queryName("tickstream-bars")
        )
        if once:
            writer = writer.trigger(availableNow=True)
        else:
            writer = writer.trigger(processingTime=self.settings.processing_trigger)
        self.query = writer.start()
        return self.query

    def stop(self, timeout: float = 120.0) -> None:
        """Let the running micro-batch finish, then stop the query (no batch is cut short)."""
        self.stopping.set()
        # Wait for the running batch to finish, then let go of the lock before stopping the
        # query: a batch that starts meanwhile must be able to take the lock, see `stopping`
        # and return at once (Spark re-runs it on restart). Holding the lock here would leave
        # that batch blocked inside Spark's callback and query.stop() waiting for it forever.
        if self._batch_lock.acquire(timeout=timeout):
            self._batch_lock.release()
        if self.query is not None:
            self.query.stop()

    # --- one micro-batch ----------------------------------------------------------------------

    def process(self, batch: DataFrame, batch_id: int) -> None:
        with self._batch_lock:
            if self.stopping.is_set():
                raise StoppedError("the job is stopping; this batch runs again on restart")
            report = self._process(batch, batch_id)
        self.last_report = report
        if self.on_batch is not None:
            self.on_batch(report)

    def _process(self, batch: DataFrame, batch_id: int) -> BatchReport:
        started = time.monotonic()
        snapshot, open_prev = self.state.load_before(batch_id)
        watermark = snapshot.watermark_ms
        parsed = parse_events(batch, self.rules)
        # Cache what every step needs, not the raw payloads: caching those costs more than
        # parsing again, and only rejects (rare) need them, read once more from the batch.
        events = parsed.drop("raw", "raw_text", "topic", "kafka_timestamp").persist()
        try:
            # One pass for every count the batch needs: by kind, reason and partition.
            window_end_of_ts = (
                window_start_ms(F.col("ts_epoch_ms"), self.window_ms) + self.window_ms
            )
            summary = (
                events.groupBy("kind", "reason", "kafka_partition")
                .agg(
                    F.count(F.lit(1)).alias("n"),
                    F.max("ts_epoch_ms").alias("max_ts"),
                    F.sum(
                        ((F.col("kind") == "tick") & (window_end_of_ts <= F.lit(watermark))).cast(
                            "long"
                        )
                    ).alias("late"),
                )
                .collect()
            )
            counts: dict[str, int] = {}
            rejected_by_reason: dict[str, int] = {}
            partition_max = dict(snapshot.partition_max_ms)
            n_late = 0
            for row in summary:
                counts[row["kind"]] = counts.get(row["kind"], 0) + row["n"]
                n_late += row["late"] or 0
                if row["kind"] == "reject":
                    rejected_by_reason[row["reason"]] = (
                        rejected_by_reason.get(row["reason"], 0) + row["n"]
                    )
                else:
                    key = str(row["kafka_partition"])
                    partition_max[key] = max(partition_max.get(key, NO_TIME), row["max_ts"])
            ticks = (
                events.filter(F.col("kind") == "tick")
                .withColumn(
                    "window_start_ms", window_start_ms(F.col("ts_epoch_ms"), self.window_ms)
                )
                .withColumn("ts", F.timestamp_millis(F.col("ts_epoch_ms")))
                .withColumn("batch_id", F.lit(batch_id).cast("long"))
            )
            window_end = F.col("window_start_ms") + F.lit(self.window_ms)
            late = ticks.filter(window_end <= F.lit(watermark))
            fresh = ticks.filter(window_end > F.lit(watermark))
            classified = classify_copies(fresh, open_prev).persist()
            copies = {
                row["_class"]: row["n"]
                for row in classified.groupBy("_class").agg(F.count(F.lit(1)).alias("n")).collect()
            }
            n_accepted = copies.get("accepted", 0)
            n_duplicates = copies.get("duplicate", 0)
            n_conflicts = copies.get("conflict", 0)
            if n_conflicts:
                rejected_by_reason["event_id_conflict"] = n_conflicts
            accepted = classified.filter(F.col("_class") == "accepted").select(*TICK.fieldNames())
            conflicts = parsed.join(
                classified.filter(F.col("_class") == "conflict").select(
                    "kafka_partition", "kafka_offset"
                ),
                ["kafka_partition", "kafka_offset"],
                "left_semi",
            )

            max_event = max([snapshot.max_event_ms, *partition_max.values()])
            new_watermark = next_watermark(watermark, partition_max, self.settings.watermark_ms)

            open_all = accepted if open_prev is None else open_prev.unionByName(accepted)
            closing = open_all.filter(window_end <= F.lit(new_watermark))
            remaining = open_all.filter(window_end > F.lit(new_watermark))
            bars = compute_bars(closing, self.window_ms).orderBy("window_start", "symbol").persist()
            bar_rows = [row.asDict() for row in bars.collect()]

            if n_late:
                self._write_late(late, watermark, batch_id)
            if rejected_by_reason:
                self._write_rejects(parsed, conflicts, batch_id)
            if n_accepted:
                self.lake.write(
                    accepted.withColumn("date", F.date_format("ts", "yyyy-MM-dd")).drop(
                        "window_start_ms"
                    ),
                    "ticks",
                    batch_id,
                )
            if bar_rows:
                self.lake.write(bars, "bars", batch_id)
                self.lake.write(bars, "bars_csv", batch_id, fmt="csv")

            remaining = remaining.persist()
            open_rows = remaining.count()
            valid = counts.get("tick", 0)
            totals = _add(
                snapshot.totals,
                messages=sum(counts.values()),
                ticks_valid=valid,
                ticks_accepted=n_accepted,
                duplicates=n_duplicates,
                late=n_late,
                heartbeats=counts.get("heartbeat", 0),
                bars=len(bar_rows),
                rejected=rejected_by_reason,
            )
            new_snapshot = Snapshot(
                batch_id=batch_id,
                watermark_ms=new_watermark,
                max_event_ms=max_event,
                partition_max_ms=partition_max,
                open_rows=open_rows,
                totals=totals,
            )
            self.state.save(new_snapshot, remaining)
            self.state.prune(keep_from=batch_id - 1)
            for frame in (remaining, bars, classified):
                frame.unpersist()
        finally:
            events.unpersist()
        return BatchReport(
            batch_id=batch_id,
            messages=sum(counts.values()),
            accepted=n_accepted,
            duplicates=n_duplicates,
            late=n_late,
            rejected=sum(rejected_by_reason.values()),
            heartbeats=counts.get("heartbeat", 0),
            bars=bar_rows,
            watermark_ms=new_watermark,
            open_rows=open_rows,
            seconds=time.monotonic() - started,
            totals=totals,
        )

    def _write_late(self, late: DataFrame, watermark: int, batch_id: int) -> None:
        self.lake.write(
            late.select(*TICK.fieldNames())
            .withColumn("watermark", F.timestamp_millis(F.lit(watermark)))
            .withColumn("late_by_ms", F.lit(watermark) - F.col("ts_epoch_ms"))
            .withColumn("date", F.date_format("ts", "yyyy-MM-dd")),
            "late",
            batch_id,
        )

    def _write_rejects(self, events: DataFrame, conflicts: DataFrame, batch_id: int) -> None:
        columns: list[Column | str] = [
            "reason",
            "raw",
            "raw_text",
            "topic",
            F.col("kafka_partition").alias("partition"),
            F.col("kafka_offset").alias("offset"),
            "kafka_timestamp",
            F.lit(batch_id).cast("long").alias("batch_id"),
            F.date_format("kafka_timestamp", "yyyy-MM-dd").alias("date"),
        ]
        rejects = (
            events.filter(F.col("kind") == "reject")
            .select(*columns)
            .unionByName(
                conflicts.withColumn("reason", F.lit("event_id_conflict")).select(*columns)
            )
        )
        self.lake.write(rejects, "rejects", batch_id)
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
                .options(**spark_kafka_security(self.settings))
                .option("kafka.bootstrap.servers", self.settings.kafka_bootstrap_servers)
                .option("topic", self.settings.dlq_topic)
                .option("includeHeaders", "true")
                .save()
            )

    def latest_snapshot(self) -> Snapshot:
        return self.state.latest()


def classify_copies(fresh: DataFrame, open_prev: DataFrame | None) -> DataFrame:
    """Mark each fresh tick ``accepted``, ``duplicate`` or ``conflict`` (column ``_class``).

    The first copy of an event_id (by Kafka partition, then offset; or the copy already in
    the state) is the tick. Another copy with the same content is a duplicate; one with other
    content under the same event_id is a conflict: a producer bug or tampering, rejected.
    """
    content = F.xxhash64("symbol", "ts_epoch_ms", "price", "volume", "seq", "source")
    copies = Window.partitionBy("event_id").orderBy("kafka_partition", "kafka_offset")
    ranked = (
        fresh.withColumn("_content", content)
        .withColumn("_copy", F.row_number().over(copies))
        .withColumn("_first", F.first("_content").over(copies))
    )
    if open_prev is not None:
        known = open_prev.select("event_id", content.alias("_prev"))
        ranked = ranked.join(known, "event_id", "left")
    else:
        ranked = ranked.withColumn("_prev", F.lit(None).cast("long"))
    reference = F.coalesce(F.col("_prev"), F.when(F.col("_copy") > 1, F.col("_first")))
    return ranked.withColumn(
        "_class",
        F.when(reference.isNull(), F.lit("accepted"))
        .when(F.col("_content") == reference, F.lit("duplicate"))
        .otherwise(F.lit("conflict")),
    )


def next_watermark(current: int, partition_max: dict[str, int], delay_ms: int) -> int:
    """The slowest partition's event time minus the delay; it never moves back.

    Following the slowest partition (as Flink and Kafka Streams do) keeps the result
    independent of how Spark splits partitions into micro-batches: a partition read ahead
    of the others cannot make their ticks late. Heartbeats reach every partition, so a
    partition without ticks still moves on.
    """
    if not partition_max:
        return current
    return max(current, min(partition_max.values()) - delay_ms)


def _add(totals: Totals, *, rejected: dict[str, int], **counts: int) -> Totals:
    merged = dict(totals.rejected)
    for reason, n in rejected.items():
        merged[reason] = merged.get(reason, 0) + n
    values = {name: getattr(totals, name) + n for name, n in counts.items()}
    return Totals(rejected=merged, **values)


def checkpoint_dir(settings: Settings) -> Path:
    return local_path(settings.output_path) / "_checkpoints"
