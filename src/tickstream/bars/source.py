"""The input of the bars job: Kafka, parsed, and the keyed dedup index of each micro-batch.

One Kafka source for the topic, parsed (:mod:`tickstream.bars.parse`) and given what the dedup
index needs (:func:`keyed`). The index, ``io.tickstream.engine.DedupIndex`` (``jvm/engine``),
runs inside each micro-batch (:func:`classify`): Spark's state store (RocksDB with changelog
checkpoints) read at the batch's version, so each batch touches only its own event_ids, and
entries leave when the job's own watermark passes the end of their window.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from tickstream.bars.parse import Rules, parse_events
from tickstream.config import Settings
from tickstream.kafka.clients import spark_kafka_options

# The columns that go through the dedup index (the raw text of a reject is derived later).
CARRIED = (
    "kind",
    "reason",
    "symbol",
    "ts_epoch_ms",
    "price",
    "volume",
    "seq",
    "event_id",
    "source",
    "raw",
    "kafka_partition",
    "kafka_offset",
    "kafka_timestamp",
)
CONTENT = ("symbol", "ts_epoch_ms", "price", "volume", "seq", "source")
# Spark's Kafka source splits a batch's offset ranges only while there are fewer non-empty ones
# than its minPartitions, in proportion to their sizes. Heartbeats make every partition
# non-empty, so with minPartitions = cores a topic of 3 partitions whose ticks sit in one (the
# ES ticks: one symbol) was read by one task, and 3 even partitions on 2 cores left one core
# idle for a third of the read. Three tasks a core splits both evenly (measured in
# docs/engine.md: "Where the time goes at 2M open-window ticks").
READ_TASKS_PER_CORE = 3


def window_start_ms(ts_ms: Column, window_ms: int) -> Column:
    """The start of the tumbling window holding ``ts_ms`` (windows aligned to the epoch)."""
    return ts_ms - F.pmod(ts_ms, F.lit(window_ms))


def is_tick() -> Column:
    return F.col("kind") == F.lit("tick")


def kafka_options(settings: Settings, min_partitions: int = 1) -> dict[str, str]:
    """Options of the Kafka source that reads the topic, in at least ``min_partitions`` tasks."""
    return {
        **spark_kafka_options(settings),
        "subscribe": settings.kafka_topic,
        "startingOffsets": settings.starting_offsets,
        "failOnDataLoss": str(settings.fail_on_data_loss).lower(),
        "includeHeaders": "false",
        # Spark's tasks fetch offset ranges that the driver already knows to hold data; the
        # consumer's default 500 ms wait for more bytes cost ~1 s per micro-batch (measured: a
        # 23-message batch's read stage 1.1 s -> 0.16 s), and small batches are the common case.
        "kafka.fetch.max.wait.ms": "10",
        # Reading and parsing are a large part of a batch's work: a partition holding most of
        # the batch (one symbol sits in one partition) is read in slices on every core.
        "minPartitions": str(min_partitions),
        "maxOffsetsPerTrigger": str(settings.max_offsets_per_trigger),
    }


def keyed(events: DataFrame, window_ms: int) -> DataFrame:
    """Parsed events with what the dedup index reads: the tick's window and its content hash."""
    tick = is_tick()
    start = window_start_ms(F.col("ts_epoch_ms"), window_ms)
    return events.select(
        *CARRIED,
        F.when(tick, start).alias("window_start_ms"),
        F.when(tick, start + F.lit(window_ms)).alias("window_end_ms"),
        F.when(tick, F.xxhash64(*CONTENT)).alias("content"),
    )


def read_events(spark: SparkSession, settings: Settings, rules: Rules) -> DataFrame:
    """The job's streaming input: every message of the topic, parsed and keyed."""
    options = kafka_options(settings, READ_TASKS_PER_CORE * spark.sparkContext.defaultParallelism)
    kafka = spark.readStream.format("kafka").options(**options).load()
    return keyed(parse_events(kafka, rules), settings.window_ms)


@dataclass(frozen=True)
class Index:
    """Where the dedup index lives and how it is split (fixed for the life of the index)."""

    location: str  # a path or URI Spark's filesystems understand
    partitions: int
    run_id: str  # this run of the query: a new one at each start
    # The producer's event_ids (<16 hex digits>-<n>) in chunks of sequence numbers, one state
    # entry per 64 numbers instead of one per id; any other event_id is kept whole. Recorded
    # with the index (bars.job.index_layout): an index made before chunks has them whole.
    sequences: bool


def classify(batch: DataFrame, index: Index, batch_id: int, watermark_ms: int) -> DataFrame:
    """Every message of a micro-batch with its ``copy`` class from the dedup index, and the
    ``batch_id``.

    A tick whose window ``watermark_ms`` has closed is ``late``, first: neither looked up nor
    kept. Ticks of open windows are looked up and, when new, added; entries of windows the
    watermark has closed are removed first. The state is read at version ``batch_id`` and
    written as the next one, so a batch run again classifies the same. (The watermark and the
    batch id are applied by the index, not as literals in Spark's expressions: a plan that
    changes at each batch is compiled again at each batch.)
    """
    jvm = batch.sparkSession.sparkContext._jvm
    assert jvm is not None
    marked = batch.withColumn("tick", is_tick())
    classified = jvm.io.tickstream.engine.DedupIndex.classify(
        marked._jdf,
        index.location,
        index.run_id,
        batch_id,
        watermark_ms,
        index.partitions,
        index.sequences,
    )
    return DataFrame(classified, batch.sparkSession).drop("tick")
