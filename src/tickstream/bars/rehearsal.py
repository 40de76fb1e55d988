"""A rehearsal of the bars job, run once at setup so that later starts are quicker.

The driver JVM of a Spark job spends most of its start-up loading and linking classes: Spark's,
Delta Lake's, Kafka's, the engine's. Java's class-data sharing (CDS) keeps them in an archive
that a later JVM maps instead (:mod:`tickstream.jvm.cds`); the archive holds the classes one run
loaded, so this module gives it a representative run: the bars job's micro-batch function on
a few hundred synthetic messages (valid ticks, a duplicate, a conflict, damaged messages, a
heartbeat) in two batches, the second closing windows, on a lake in a temporary folder. The
Kafka source is created (not started: no broker is needed), so its classes are loaded too.

Nothing of the rehearsal is kept but the archive.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import sys
import tempfile
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from tickstream.bars.job import BarsJob
from tickstream.bars.parse import parse_events
from tickstream.bars.source import kafka_options, keyed
from tickstream.config import Settings
from tickstream.ticks.codec import encode_heartbeat, encode_tick
from tickstream.ticks.schema import Heartbeat, Tick

# The columns of Spark's Kafka source that the job reads.
KAFKA_ROW = T.StructType(
    [
        T.StructField("key", T.BinaryType()),
        T.StructField("value", T.BinaryType()),
        T.StructField("topic", T.StringType()),
        T.StructField("partition", T.IntegerType()),
        T.StructField("offset", T.LongType()),
        T.StructField("timestamp", T.TimestampType()),
        T.StructField("timestampType", T.IntegerType()),
    ]
)
START_MS = 1_764_000_000_000  # 2025-11-24T16:00:00Z
TICKS_PER_BATCH = 300


def messages(batch: int) -> list[bytes]:
    """A batch's messages: ticks of two symbols over a minute, one of them twice, one of them
    changed (an event_id conflict), damaged messages and a heartbeat. Batch 1 moves event time
    on by five minutes, so the watermark closes the windows of batch 0."""
    base = START_MS + batch * 300_000
    ticks = [
        Tick(
            symbol=("ES", "NQ")[i % 2],
            ts_epoch_ms=base + i * 200,
            price=4500.25 + (i % 7) * 0.25,
            volume=float(1 + i % 3),
            seq=batch * TICKS_PER_BATCH + i,
            event_id=f"rehearsal-{batch * TICKS_PER_BATCH + i}",
            source="replay",
        )
        for i in range(TICKS_PER_BATCH)
    ]
    changed = dataclasses.replace(ticks[1], price=1.0)
    return [
        *(encode_tick(t) for t in ticks),
        encode_tick(ticks[0]),
        encode_tick(changed),
        b'{"type":"tick","symbol":"ES"',
        b"\xff\xfe not json",
        b'{"type":"tick","schema_version":1,"symbol":"ES","price":"high"}',
        encode_heartbeat(Heartbeat(producer_id="rehearsal", ts_epoch_ms=base + 60_000)),
    ]


def kafka_rows(spark: SparkSession, topic: str, batch: int, first_offset: int) -> DataFrame:
    """A batch of messages as Spark's Kafka source delivers them (one partition)."""
    when = dt.datetime(2025, 11, 24, 16, 0, tzinfo=dt.UTC)
    rows = [
        (None, value, topic, 0, first_offset + i, when, 0)
        for i, value in enumerate(messages(batch))
    ]
    return spark.createDataFrame(rows, KAFKA_ROW)


def rehearse(spark: SparkSession, settings: Settings) -> int:
    """Run the job's micro-batch function on two synthetic batches; returns the bars it closed."""
    with tempfile.TemporaryDirectory(prefix="tickstream-rehearsal-") as folder:
        quiet = settings.model_copy(
            update={
                "output_path": str(Path(folder) / "lake"),
                "bars_topic": "",
                "bars_live_topic": "",
                "dlq_topic": "",
                "metrics_port": None,
                "lake_compaction": False,
            }
        )
        # The Kafka source, created and not started: its classes are loaded, no broker is asked.
        spark.readStream.format("kafka").options(**kafka_options(quiet)).load()
        job = BarsJob(quiet, spark)
        job.prepare()
        bars = 0
        offset = 0
        try:
            for batch in range(2):
                kafka = kafka_rows(spark, quiet.kafka_topic, batch, offset)
                offset += kafka.count()
                events = keyed(parse_events(kafka, job.rules), quiet.window_ms)
                job.process(events, batch)
                assert job.last_report is not None
                bars += len(job.last_report.bars)
        finally:
            job.stop()
        return bars


def main(argv: list[str]) -> int:
    """``python -m tickstream.bars.rehearsal ARCHIVE``: rehearse in a JVM that writes the
    classes it loaded to ARCHIVE as it exits (run by :func:`tickstream.jvm.cds.make_archive`)."""
    from pyspark import SparkContext

    from tickstream.config import load_settings
    from tickstream.jvm.spark import build_spark

    settings = load_settings()
    spark = build_spark(settings, app_name="tickstream-rehearsal", class_archive_dump=Path(argv[0]))
    bars = rehearse(spark, settings)
    spark.stop()
    # The JVM writes the archive as it exits, which it does when its stdin closes: wait for it.
    gateway = SparkContext._gateway
    if gateway is not None:
        gateway.shutdown()
        process = gateway.proc
        process.stdin.close()
        process.wait(timeout=300)
    print(f"rehearsal: {bars} bars")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
