"""Explicit schemas: what the job parses, and every table it writes. Nothing is inferred."""

from __future__ import annotations

from pyspark.sql import types as T

from tickstream.lake.columns import ACTIVITY_BAR_COLUMNS, BAR_COLUMNS

__all__ = [
    "ACTIVITY_BAR",
    "ACTIVITY_BAR_COLUMNS",
    "BAR",
    "BAR_COLUMNS",
    "EVENT_JSON",
    "FAST_FIELDS",
    "LATE",
    "REJECT",
    "TICK",
]

# The JSON of a message, as parsed. Numbers must be JSON numbers; a type mismatch fills
# _corrupt_record, which makes the message a reject.
EVENT_JSON = T.StructType(
    [
        T.StructField("type", T.StringType()),
        T.StructField("schema_version", T.IntegerType()),
        T.StructField("event_id", T.StringType()),
        T.StructField("symbol", T.StringType()),
        T.StructField("seq", T.LongType()),
        T.StructField("ts", T.StringType()),
        T.StructField("ts_epoch_ms", T.LongType()),
        T.StructField("price", T.DoubleType()),
        T.StructField("volume", T.DoubleType()),
        T.StructField("source", T.StringType()),
        T.StructField("producer_id", T.StringType()),
        T.StructField("_corrupt_record", T.StringType()),
    ]
)

# A valid tick, as the archive (lake/ticks) and the job's state keep it.
TICK = T.StructType(
    [
        T.StructField("symbol", T.StringType(), False),
        T.StructField("ts", T.TimestampType(), False),
        T.StructField("ts_epoch_ms", T.LongType(), False),
        T.StructField("price", T.DoubleType(), False),
        T.StructField("volume", T.DoubleType(), False),
        T.StructField("seq", T.LongType(), False),
        T.StructField("event_id", T.StringType(), False),
        T.StructField("source", T.StringType(), False),
        T.StructField("window_start_ms", T.LongType(), False),
        T.StructField("kafka_partition", T.IntegerType(), False),
        T.StructField("kafka_offset", T.LongType(), False),
        T.StructField("batch_id", T.LongType(), False),
    ]
)

# What the parser's fast path returns for a valid tick (io.tickstream.engine.TickParser.FIELDS).
FAST_FIELDS = T.StructType(
    [
        TICK[name]
        for name in ("event_id", "symbol", "seq", "ts_epoch_ms", "price", "volume", "source")
    ]
)

# One closed bar. The column order (BAR_COLUMNS) is part of the contract.
BAR = T.StructType(
    [
        T.StructField("symbol", T.StringType(), False),
        T.StructField("window_start", T.TimestampType(), False),
        T.StructField("window_end", T.TimestampType(), False),
        T.StructField("open", T.DoubleType(), False),
        T.StructField("high", T.DoubleType(), False),
        T.StructField("low", T.DoubleType(), False),
        T.StructField("close", T.DoubleType(), False),
        T.StructField("volume", T.DoubleType(), False),
        T.StructField("vwap", T.DoubleType(), True),  # null when the bar's volume is 0
        T.StructField("trade_count", T.LongType(), False),
        T.StructField("price_avg", T.DoubleType(), False),
        T.StructField("pct_change", T.DoubleType(), False),
        T.StructField("date", T.StringType(), False),
    ]
)

# One tick, volume or dollar bar (lake/<kind>_bars). The column order (ACTIVITY_BAR_COLUMNS) is
# part of the contract.
ACTIVITY_BAR = T.StructType(
    [
        T.StructField("symbol", T.StringType(), False),
        T.StructField("number", T.LongType(), False),
        T.StructField("first_time", T.TimestampType(), False),
        T.StructField("last_time", T.TimestampType(), False),
        T.StructField("open", T.DoubleType(), False),
        T.StructField("high", T.DoubleType(), False),
        T.StructField("low", T.DoubleType(), False),
        T.StructField("close", T.DoubleType(), False),
        T.StructField("volume", T.DoubleType(), False),
        T.StructField("dollar_value", T.DoubleType(), False),
        T.StructField("trade_count", T.LongType(), False),
        T.StructField("vwap", T.DoubleType(), True),  # null when the bar's volume is 0
        T.StructField("threshold", T.DoubleType(), False),
        T.StructField("date", T.StringType(), False),
    ]
)
assert tuple(ACTIVITY_BAR.names) == ACTIVITY_BAR_COLUMNS

# A rejected message: why, and where it came from, with its raw bytes.
REJECT = T.StructType(
    [
        T.StructField("reason", T.StringType(), False),
        T.StructField("raw", T.BinaryType(), True),
        T.StructField("raw_text", T.StringType(), True),
        T.StructField("topic", T.StringType(), False),
        T.StructField("partition", T.IntegerType(), False),
        T.StructField("offset", T.LongType(), False),
        T.StructField("kafka_timestamp", T.TimestampType(), True),
        T.StructField("batch_id", T.LongType(), False),
        T.StructField("date", T.StringType(), False),
    ]
)

# A valid tick that arrived after its bar was closed.
LATE = T.StructType(
    [
        *TICK.fields,
        T.StructField("watermark", T.TimestampType(), False),
        T.StructField("late_by_ms", T.LongType(), False),
        T.StructField("date", T.StringType(), False),
    ]
)
