"""The bar table's columns, in order (shared by the Spark job and the DuckDB reader)."""

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
