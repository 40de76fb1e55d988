"""Reading the lake without Spark: what analysts and `tickstream bars` see.

``bars``, ``ticks``, ``rejects`` and ``late`` are Delta Lake tables. They are read through their
Delta log with the ``deltalake`` package (Arrow), then queried with DuckDB. Globbing a table's
Parquet files is **not** a correct read: files of a micro-batch that crashed before its commit,
and files that compaction has replaced, stay on disk until ``VACUUM`` removes them, and a glob
would count their rows too.

The lake is named by a :class:`~tickstream.lake.layout.Lake` (which carries an object store's
endpoint and credentials) or by its path, a local folder or ``s3://bucket/prefix`` (credentials
from the environment, as the AWS SDKs find them).

>>> columns, rows = read_bars("data/output", symbol="AAPL")  # doctest: +SKIP
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.dataset as ds
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from tickstream.bars_columns import BAR_COLUMNS
from tickstream.lake.layout import DELTA_TABLES, Lake

LakeLike = Lake | str | Path


def as_lake(lake: LakeLike) -> Lake:
    return lake if isinstance(lake, Lake) else Lake(lake)


def is_delta_table(lake: LakeLike, table: str) -> bool:
    """Whether the table has its first commit (Delta makes ``_delta_log/`` before it)."""
    found = as_lake(lake)
    return bool(DeltaTable.is_deltatable(found.delta_uri(table), found.storage_options))


def dataset(lake: LakeLike, table: str) -> ds.Dataset | None:
    """The table's current version as an Arrow dataset, or None if nothing was written to it."""
    found = as_lake(lake)
    try:  # one read of the log: is it a table, and what does its current version hold
        table_log = DeltaTable(found.delta_uri(table), storage_options=found.storage_options)
    except TableNotFoundError:
        return None
    return table_log.to_pyarrow_dataset()


def connect(lake: LakeLike, tables: tuple[str, ...] = DELTA_TABLES) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection (UTC) with each written table of the lake as a view of its name."""
    found_lake = as_lake(lake)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for table in tables:
        try:
            found = dataset(found_lake, table)
        except OSError as exc:  # a wrong endpoint or key, a missing bucket, an unreadable folder
            raise found_lake.unreachable(exc) from None
        if found is not None:
            con.register(table, found)
    return con


def tables_in(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The lake's tables that :func:`connect` found committed and registered in ``con``."""
    rows = con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
    return {name for (name,) in rows} & set(DELTA_TABLES)


def read_bars(
    lake: LakeLike,
    *,
    symbol: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int | None = None,
    newest: bool = False,
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Bars ordered by window and symbol, filtered by symbol and [start, end) on window_start;
    with ``limit``, the first bars, or the last ones if ``newest`` (still in window order)."""
    con = connect(lake, ("bars",))
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
    order = (
        " ORDER BY window_start DESC, symbol DESC" if newest else " ORDER BY window_start, symbol"
    )
    tail = order + (f" LIMIT {int(limit)}" if limit else "")
    # Delta's timestamps are instants; shown as UTC wall-clock times, as the bars' CSV has them.
    columns = [f"{c}::TIMESTAMP AS {c}" if c.startswith("window_") else c for c in BAR_COLUMNS]
    sql = f"SELECT {', '.join(columns)} FROM bars{filters}{tail}"  # noqa: S608
    rows = con.execute(sql, params).fetchall()
    return list(BAR_COLUMNS), rows[::-1] if newest else rows


def bar_symbols(lake: LakeLike) -> list[str]:
    """The symbols that have closed bars in the lake, in order."""
    con = connect(lake, ("bars",))
    if "bars" not in tables_in(con):
        return []
    return [s for (s,) in con.execute("SELECT DISTINCT symbol FROM bars ORDER BY 1").fetchall()]
