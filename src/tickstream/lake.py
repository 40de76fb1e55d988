"""Reading the lake with DuckDB: what analysts and `tickstream bars` see.

Only published files are read (``<table>/date=*/part-*.parquet``); the staging area under
``_checkpoints/`` is never matched.

>>> rows = read_bars(Path("data/output"), symbol="AAPL")  # doctest: +SKIP
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from tickstream.bars_columns import BAR_COLUMNS


def table_glob(root: Path, table: str) -> str:
    return str(root / table / "date=*" / "*.parquet")


def has_files(root: Path, table: str) -> bool:
    return any((root / table).glob("date=*/*.parquet"))


def read_bars(
    root: Path,
    *,
    symbol: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int | None = None,
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Bars ordered by window and symbol, filtered by symbol and [start, end) on window_start."""
    if not has_files(root, "bars"):
        return list(BAR_COLUMNS), []
    where: list[str] = []
    params: list[object] = []
    if symbol:
        where.append("symbol = ?")
        params.append(symbol.upper())
    if start:
        where.append("window_start >= ?")
        params.append(start)
    if end:
        where.append("window_start < ?")
        params.append(end)
    # Only fixed column names and placeholders are formatted in; values are bound parameters.
    filters = f" WHERE {' AND '.join(where)}" if where else ""
    tail = " ORDER BY window_start, symbol" + (f" LIMIT {int(limit)}" if limit else "")
    source = "read_parquet(?, hive_partitioning = true, hive_types = {'date': VARCHAR})"
    sql = f"SELECT {', '.join(BAR_COLUMNS)} FROM {source}{filters}{tail}"  # noqa: S608
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    rows = con.execute(sql, [table_glob(root, "bars"), *params]).fetchall()
    return list(BAR_COLUMNS), rows
