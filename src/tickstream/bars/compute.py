"""OHLCV bars from the ticks of closed windows: a pure batch function.

open and close are the prices of the earliest and latest tick by (event time, seq,
event_id): never by arrival order. Sums are plain double sums (exact for prices on a
binary grid such as 0.25 with whole volumes; elsewhere equal to any other engine's
result up to floating-point rounding).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from tickstream.bars.schema import BAR_COLUMNS


def window_start_ms(ts_ms: Column, window_ms: int) -> Column:
    """The start of the tumbling window holding ``ts_ms`` (windows aligned to the epoch)."""
    return ts_ms - F.pmod(ts_ms, F.lit(window_ms))


def compute_bars(ticks: DataFrame, window_ms: int) -> DataFrame:
    """One bar per (symbol, window) of ``ticks`` (which must hold whole windows)."""
    order = F.struct("ts_epoch_ms", "seq", "event_id")
    grouped = ticks.groupBy("symbol", "window_start_ms").agg(
        F.min_by("price", order).alias("open"),
        F.max("price").alias("high"),
        F.min("price").alias("low"),
        F.max_by("price", order).alias("close"),
        F.sum("volume").alias("volume"),
        F.sum(F.col("price") * F.col("volume")).alias("pv"),
        F.count(F.lit(1)).alias("trade_count"),
        F.sum("price").alias("price_sum"),
    )
    start = F.timestamp_millis(F.col("window_start_ms"))
    return grouped.select(
        "symbol",
        start.alias("window_start"),
        F.timestamp_millis(F.col("window_start_ms") + F.lit(window_ms)).alias("window_end"),
        "open",
        "high",
        "low",
        "close",
        "volume",
        F.when(F.col("volume") > 0, F.col("pv") / F.col("volume")).alias("vwap"),
        F.col("trade_count").cast("long").alias("trade_count"),
        (F.col("price_sum") / F.col("trade_count")).alias("price_avg"),
        ((F.col("close") - F.col("open")) / F.col("open") * F.lit(100.0)).alias("pct_change"),
        F.date_format(start, "yyyy-MM-dd").alias("date"),
    ).select(*BAR_COLUMNS)
