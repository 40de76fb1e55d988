"""The streaming input of the bars job: Kafka, parsed, with Spark's watermark and the dedup index.

One Kafka source per partition of the topic, each parsed (:mod:`tickstream.bars.parse`) and
given its own Spark event-time watermark; Spark keeps the smallest of them (its default
``multipleWatermarkPolicy`` is ``min``), so Spark's watermark follows the slowest partition and
never runs ahead of the job's own (:func:`tickstream.bars.steps.next_watermark`). The union goes
through the keyed dedup index, ``io.tickstream.engine.EventIdIndex`` (``jvm/engine``): a
``transformWithState`` processor in the JVM whose state lives in Spark's RocksDB state store
with changelog checkpoints, so each batch touches only its own event_ids.
"""

from __future__ import annotations

import json
from functools import reduce

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from tickstream.bars.parse import Rules, parse_events
from tickstream.config import Settings
from tickstream.kafka_admin import spark_kafka_security

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
# The dedup index's keys: event_ids hashed into this many buckets (fixed by the checkpoint).
BUCKETS = 4096


def window_start_ms(ts_ms: Column, window_ms: int) -> Column:
    """The start of the tumbling window holding ``ts_ms`` (windows aligned to the epoch)."""
    return ts_ms - F.pmod(ts_ms, F.lit(window_ms))


def kafka_options(settings: Settings, partition: int, partitions: int) -> dict[str, str]:
    """Options of the Kafka source that reads one partition of the topic."""
    options = {
        "kafka.bootstrap.servers": settings.kafka_bootstrap_servers,
        "assign": json.dumps({settings.kafka_topic: [partition]}),
        "startingOffsets": settings.starting_offsets,
        "failOnDataLoss": str(settings.fail_on_data_loss).lower(),
        "includeHeaders": "false",
    }
    if settings.max_offsets_per_trigger is not None:
        share = -(-settings.max_offsets_per_trigger // partitions)  # the cap is for all of them
        options["maxOffsetsPerTrigger"] = str(max(1, share))
    options.update(spark_kafka_security(settings))
    return options


def keyed(events: DataFrame, window_ms: int) -> DataFrame:
    """Parsed events with what the dedup index needs: its key, the content hash, the window."""
    tick = F.col("kind") == F.lit("tick")
    start = window_start_ms(F.col("ts_epoch_ms"), window_ms)
    import os

    carried = [F.col(c) for c in CARRIED]
    if os.environ.get("TS_NO_RAW"):
        carried = [
            F.when(~tick, F.col("raw")).alias("raw") if c == "raw" else F.col(c) for c in CARRIED
        ]
    return events.select(
        *carried,
        F.when(tick, start).alias("window_start_ms"),
        F.when(tick, start + F.lit(window_ms)).otherwise(F.lit(0)).alias("window_end_ms"),
        F.when(tick, F.xxhash64(*CONTENT)).otherwise(F.lit(0)).alias("content"),
        F.when(tick, F.pmod(F.xxhash64("event_id"), F.lit(BUCKETS)).cast("int"))
        .otherwise(F.lit(-1))
        .alias("dedup_bucket"),
    )


def watermarked(events: DataFrame, delay: str) -> DataFrame:
    """Give Spark the event time of ticks and heartbeats for its watermark, then hide it.

    The column is dropped after ``withWatermark``: the watermark stays in the plan, but the
    stateful processor then has no event-time column to filter late rows by. Late rows must
    reach the batch, which records them in ``late/`` (Spark would drop them silently).
    """
    timed = F.when(F.col("kind").isin("tick", "heartbeat"), F.timestamp_millis("ts_epoch_ms"))
    return (
        events.withColumn("_event_time", timed)
        .withWatermark("_event_time", delay)
        .drop("_event_time")
    )


def classify(spark: SparkSession, events: DataFrame) -> DataFrame:
    """Every event with its ``copy`` class from the JVM dedup index (see EventIdIndex)."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    classified = jvm.io.tickstream.engine.EventIdIndex.classify(events._jdf)
    return DataFrame(classified, spark)


def read_events(
    spark: SparkSession, settings: Settings, rules: Rules, partitions: int
) -> DataFrame:
    """The job's streaming input: every message of the topic, parsed and classified."""
    frames = []
    for partition in range(partitions):
        kafka = (
            spark.readStream.format("kafka")
            .options(**kafka_options(settings, partition, partitions))
            .load()
        )
        parsed = keyed(parse_events(kafka, rules), settings.window_ms)
        frames.append(watermarked(parsed, f"{settings.watermark_ms} milliseconds"))
    return classify(spark, reduce(DataFrame.unionByName, frames))
