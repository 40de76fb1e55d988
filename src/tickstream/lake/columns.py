"""The bar tables' columns, in order (shared by the Spark job and the DuckDB reader)."""

BAR_COLUMNS = (
    "symbol",
    "window_start",
    "window_end",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "vwap",
    "trade_count",
    "price_avg",
    "pct_change",
    "date",
)

# A tick, volume or dollar bar (lake/<kind>_bars): its symbol, its number among the symbol's
# bars of its kind (from 1), the times of its first and last tick, OHLCV, the traded value
# (sum of price x volume), the tick count, the vwap (null for zero volume), the threshold it
# closed on, and the date of its last tick (the partition).
ACTIVITY_BAR_COLUMNS = (
    "symbol",
    "number",
    "first_time",
    "last_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "dollar_value",
    "trade_count",
    "vwap",
    "threshold",
    "date",
)
