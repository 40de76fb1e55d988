"""Reading the lake without Spark: what analysts and `tickstream bars` see.

``bars``, ``ticks``, ``rejects`` and ``late`` are Delta Lake tables. They are read through their
Delta log with the ``deltalake`` package (Arrow), then queried with DuckDB. Globbing a table's
Parquet files is **not** a correct read: files of a micro-batch that crashed before its commit,
and files that compaction has replaced, stay on disk until ``VACUUM`` removes them, and a glob
would count their rows too.

>>> rows = read_bars(Path("data/output"), symbol="AAPL")  # doctest: +SKIP
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.dataset as ds
from deltalake import DeltaTable

from tickstream.bars_columns import BAR_COLUMNS

DELTA_TABLES = ("bars", "ticks", "rejects", "late")


def is_delta_table(root: Path, table: str) -> bool:
    """Whether the table has its first commit (Delta makes ``_delta_log/`` before it)."""
    return any((root / table / "_delta_log").glob("*.json"))


def dataset(root: Path, table: str) -> ds.Dataset | None:
    """The table's current version as an Arrow dataset, or None if nothing was written to it."""
    if not is_delta_table(root, table):
        return None
    return DeltaTable((root / table).as_posix()).to_pyarrow_dataset()


def connect(root: Path, tables: tuple[str, ...] = DELTA_TABLES) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection (UTC) with each written table of the lake as a view of its name."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for table in tables:
        found = dataset(root, table)
        if found is not None:
            con.register(table, found)
    return con


def tables_in(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The lake's tables that :func:`connect` found committed and registered in ``con``."""
    rows = con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
    return {name for (name,) in rows} & set(DELTA_TABLES)


def read_bars(
    root: Path,
    *,
    symbol: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int | None = None,
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Bars ordered by window and symbol, filtered by symbol and [start, end) on window_start."""
    con = connect(root, ("bars",))
    if "bars" not in tables_in(con):
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
    # Delta's timestamps are instants; shown as UTC wall-clock times, as the bars' CSV has them.
    columns = [f"{c}::TIMESTAMP AS {c}" if c.startswith("window_") else c for c in BAR_COLUMNS]
    sql = f"SELECT {', '.join(columns)} FROM bars{filters}{tail}"  # noqa: S608
    rows = con.execute(sql, params).fetchall()
    return list(BAR_COLUMNS), rows
