"""The steps of one micro-batch, each a small function tested on its own.

The batch arrives parsed and classified by the dedup index (:mod:`tickstream.bars.source`):

1. :func:`with_outcome` — each message's outcome: ``reject``, ``heartbeat``, or the dedup
   index's ``late`` (its window was closed by the watermark in force) / ``accepted`` /
   ``duplicate`` / ``conflict``;
2. :func:`summarize` — one Spark job for every count the batch needs and the partial aggregates
   of its accepted ticks per (symbol, window): a handful of rows to the driver;
3. :func:`next_watermark` — the slowest partition's event time minus WATERMARK;
4. the driver merges the partials into the open windows' state and closes the windows behind
   the new watermark (:mod:`tickstream.bars.partials`);
5. :func:`accepted_ticks`, :func:`late_ticks`, :func:`reject_rows` — the rows of the archive,
   ``late/`` and ``rejects/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from tickstream.bars.partials import Partial, merge_into
from tickstream.bars.schema import TICK
from tickstream.bars.source import CARRIED
from tickstream.bars.state import NO_TIME
from tickstream.bars.watermark import next_watermark

__all__ = [
    "BatchSummary",
    "accepted_ticks",
    "late_ticks",
    "next_watermark",
    "partial_aggregates",
    "partial_of",
    "reject_rows",
    "summarize",
    "with_outcome",
]

OUTCOME = "outcome"
TICK_OUTCOMES = ("accepted", "duplicate", "conflict", "late")


def with_outcome(classified: DataFrame) -> DataFrame:
    """Each message's outcome: a reject, a heartbeat, or what the dedup index made of a tick
    (late first: a tick of a closed window is late, whatever the index holds)."""
    kind = F.col("kind")
    outcome = (
        F.when(kind == F.lit("reject"), F.lit("reject"))
        .when(kind == F.lit("heartbeat"), F.lit("heartbeat"))
        .otherwise(F.col("copy"))
    )
    # Only the columns later steps read, and the raw bytes only where a reject keeps them: the
    # batch is cached, and caching every tick's payload costs more than the rest together.
    kept = [c for c in CARRIED if c not in ("kind", "raw")]
    return classified.withColumn(OUTCOME, outcome).select(
        OUTCOME,
        *kept,
        F.when(F.col(OUTCOME).isin("reject", "conflict"), F.col("raw")).alias("raw"),
        "window_start_ms",
        "batch_id",
    )


@dataclass
class BatchSummary:
    """What the driver learns of a batch from one small aggregation."""

    counts: dict[str, int] = field(default_factory=dict)  # by outcome
    rejected: dict[str, int] = field(default_factory=dict)  # by reason, conflicts included
    partition_max_ms: dict[str, int] = field(default_factory=dict)  # ticks and heartbeats
    partials: list[Partial] = field(default_factory=list)

    @property
    def messages(self) -> int:
        return sum(self.counts.values())

    def count(self, outcome: str) -> int:
        return self.counts.get(outcome, 0)

    @property
    def valid_ticks(self) -> int:
        return sum(self.count(o) for o in TICK_OUTCOMES)


def summarize(tagged: DataFrame) -> BatchSummary:
    """Counts by outcome and reason, each partition's largest event time, and the partial
    aggregate of the accepted ticks of each (symbol, window): one Spark job."""
    accepted = F.col(OUTCOME) == F.lit("accepted")
    timed = F.col(OUTCOME) != F.lit("reject")
    rows = (
        tagged.groupBy(
            OUTCOME,
            "reason",
            "kafka_partition",
            F.when(accepted, F.col("symbol")).alias("symbol"),
            F.when(accepted, F.col("window_start_ms")).alias("window_start_ms"),
        )
        .agg(F.max(F.when(timed, F.col("ts_epoch_ms"))).alias("max_ts"), *partial_aggregates())
        .collect()
    )
    summary = BatchSummary()
    accepted_parts: list[Partial] = []
    for row in rows:
        outcome = row[OUTCOME]
        summary.counts[outcome] = summary.counts.get(outcome, 0) + row["n"]
        if outcome in ("reject", "conflict"):
            reason = row["reason"] or "event_id_conflict"
            summary.rejected[reason] = summary.rejected.get(reason, 0) + row["n"]
        if row["max_ts"] is not None:
            key = str(row["kafka_partition"])
            summary.partition_max_ms[key] = max(
                summary.partition_max_ms.get(key, NO_TIME), row["max_ts"]
            )
        if outcome == "accepted":
            accepted_parts.append(partial_of(row))
    # A window's accepted ticks can come from several Kafka partitions: one partial each.
    summary.partials = list(merge_into({}, accepted_parts).values())
    return summary


def partial_aggregates() -> list[Column]:
    """The aggregates a group of ticks (one symbol, one window) reduces to, as :func:`partial_of`
    reads them: the count, the first and last tick in (event time, seq, event_id) order with
    their prices, high, low, volume, sum(price * volume) and sum(price). The live job's batches
    and `tickstream lake rebuild` (:mod:`tickstream.bars.rebuild`) both aggregate with these."""
    order = F.struct("ts_epoch_ms", "seq", "event_id", "price")
    return [
        F.count(F.lit(1)).alias("n"),
        F.min(order).alias("first"),
        F.max(order).alias("last"),
        F.max("price").alias("high"),
        F.min("price").alias("low"),
        F.sum("volume").alias("volume"),
        F.sum(F.col("price") * F.col("volume")).alias("pv"),
        F.sum("price").alias("price_sum"),
    ]


def partial_of(row: Any) -> Partial:
    """A row of :func:`partial_aggregates` with its symbol and window_start_ms (a pyspark Row)
    as a Partial."""
    first, last = row["first"], row["last"]
    return Partial(
        symbol=row["symbol"],
        window_start_ms=row["window_start_ms"],
        first=(first["ts_epoch_ms"], first["seq"], first["event_id"]),
        open=first["price"],
        last=(last["ts_epoch_ms"], last["seq"], last["event_id"]),
        close=last["price"],
        high=row["high"],
        low=row["low"],
        volume=row["volume"],
        pv=row["pv"],
        count=row["n"],
        price_sum=row["price_sum"],
    )


def _ticks(tagged: DataFrame, outcome: str) -> DataFrame:
    return (
        tagged.filter(F.col(OUTCOME) == F.lit(outcome))
        .withColumn("ts", F.timestamp_millis(F.col("ts_epoch_ms")))
        .select(*TICK.fieldNames())
    )


def accepted_ticks(tagged: DataFrame) -> DataFrame:
    """The rows of the ``ticks/`` archive: each accepted tick once, with its batch."""
    return (
        _ticks(tagged, "accepted")
        .withColumn("date", F.date_format("ts", "yyyy-MM-dd"))
        .drop("window_start_ms")
    )


def late_ticks(tagged: DataFrame, watermark_ms: int) -> DataFrame:
    """The rows of ``late/``: the tick, the watermark that had closed its window, how late.
    (Only a batch with late ticks compiles this plan, whose literal is the watermark.)"""
    return (
        _ticks(tagged, "late")
        .withColumn("watermark", F.timestamp_millis(F.lit(watermark_ms)))
        .withColumn("late_by_ms", F.lit(watermark_ms) - F.col("ts_epoch_ms"))
        .withColumn("date", F.date_format("ts", "yyyy-MM-dd"))
    )


def reject_rows(tagged: DataFrame, topic: str, max_message_bytes: int) -> DataFrame:
    """The rows of ``rejects/``: bad messages and event_id conflicts, with where they came from."""
    raw_text: Column = F.when(
        F.length(F.col("raw")) <= F.lit(max_message_bytes), F.col("raw").cast("string")
    )
    return tagged.filter(F.col(OUTCOME).isin("reject", "conflict")).select(
        F.coalesce(F.col("reason"), F.lit("event_id_conflict")).alias("reason"),
        "raw",
        raw_text.alias("raw_text"),
        F.lit(topic).alias("topic"),
        F.col("kafka_partition").alias("partition"),
        F.col("kafka_offset").alias("offset"),
        "kafka_timestamp",
        "batch_id",
        F.date_format("kafka_timestamp", "yyyy-MM-dd").alias("date"),
    )
