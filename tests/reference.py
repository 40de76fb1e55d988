"""An independent batch computation of the bars, in DuckDB SQL, to hold the Spark job to."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from deltalake import DeltaTable

BAR_SQL = """
SELECT
  symbol,
  window_start,
  window_start + to_milliseconds({window_ms}) AS window_end,
  first(price ORDER BY ts_epoch_ms, seq, event_id) AS open,
  max(price) AS high,
  min(price) AS low,
  last(price ORDER BY ts_epoch_ms, seq, event_id) AS close,
  sum(volume) AS volume,
  CASE WHEN sum(volume) > 0 THEN sum(price * volume) / sum(volume) END AS vwap,
  count(*) AS trade_count,
  sum(price) / count(*) AS price_avg,
  (last(price ORDER BY ts_epoch_ms, seq, event_id)
    - first(price ORDER BY ts_epoch_ms, seq, event_id))
    / first(price ORDER BY ts_epoch_ms, seq, event_id) * 100.0 AS pct_change,
  strftime(window_start, '%Y-%m-%d') AS date
FROM (
  SELECT DISTINCT ON (event_id) *,
         make_timestamp((ts_epoch_ms - ts_epoch_ms % {window_ms}) * 1000) AS window_start
  FROM ticks
  ORDER BY event_id
)
GROUP BY symbol, window_start
ORDER BY window_start, symbol
"""


def reference_bars(ticks: Iterable[dict[str, Any]], window_ms: int) -> list[tuple[Any, ...]]:
    """Bars of every window of ``ticks`` (dicts with symbol, ts_epoch_ms, price, volume, seq,
    event_id), duplicates by event_id removed. Rows in BAR_COLUMNS order."""
    rows = list(ticks)
    table = pa.table(
        {
            "symbol": [r["symbol"] for r in rows],
            "ts_epoch_ms": pa.array([r["ts_epoch_ms"] for r in rows], pa.int64()),
            "price": pa.array([r["price"] for r in rows], pa.float64()),
            "volume": pa.array([r["volume"] for r in rows], pa.float64()),
            "seq": pa.array([r["seq"] for r in rows], pa.int64()),
            "event_id": [r["event_id"] for r in rows],
        }
    )
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    con.register("ticks", table)
    return con.execute(BAR_SQL.format(window_ms=window_ms)).fetchall()


# Sums of prices that are not exact in binary (cents) depend on the order they are added in;
# the job and DuckDB add in different orders. Everything else must be equal.
SUMMED = {8: "vwap", 10: "price_avg"}


def assert_same_bars(got: list[tuple[Any, ...]], want: list[tuple[Any, ...]]) -> None:
    """Bars equal, except VWAP and average price within 1e-12 relative (summation order)."""
    assert len(got) == len(want), f"{len(got)} bars, expected {len(want)}"
    for a, b in zip(got, want, strict=True):
        exact = [x for i, x in enumerate(a) if i not in SUMMED]
        assert exact == [x for i, x in enumerate(b) if i not in SUMMED], (a, b)
        for i in SUMMED:
            assert (a[i] is None) == (b[i] is None), (a, b)
            if a[i] is not None:
                assert math.isclose(a[i], b[i], rel_tol=1e-12), (a, b)


def reference_session_bars(ticks: list[dict[str, Any]], session: str) -> list[tuple[Any, ...]]:
    """Daily bars straight from the ticks: each tick in the session whose [open, close) holds
    it (DuckDB over the calendar's schedule), ticks outside every session left out."""
    from tickstream.lake.resample import sessions_between

    first = min(t["ts_epoch_ms"] for t in ticks)
    last = max(t["ts_epoch_ms"] for t in ticks)
    table = sessions_between(session, first, last + 1)
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    con.register("sessions", pa.Table.from_pandas(table, preserve_index=False))
    con.register("raw", pa.Table.from_pylist(ticks))
    replacements = {
        "make_timestamp((ts_epoch_ms - ts_epoch_ms % {window_ms}) * 1000) AS window_start": (
            "make_timestamp(s.open_ms * 1000) AS window_start, "
            "make_timestamp(s.close_ms * 1000) AS window_close, s.date AS session_date"
        ),
        "FROM ticks": (
            "FROM raw JOIN sessions s ON ts_epoch_ms >= s.open_ms AND ts_epoch_ms < s.close_ms"
        ),
        "window_start + to_milliseconds({window_ms}) AS window_end": (
            "any_value(window_close) AS window_end"
        ),
        "strftime(window_start, '%Y-%m-%d') AS date": "any_value(session_date) AS date",
    }
    sql = BAR_SQL
    for old, new in replacements.items():
        assert old in sql
        sql = sql.replace(old, new)
    return con.execute(sql).fetchall()


LAKE_TABLES = ("bars", "ticks", "rejects", "late")


def has_commit(table: str | Path, storage_options: dict[str, str] | None = None) -> bool:
    """Whether a Delta table (a folder, or an ``s3://`` URI) has its first commit."""
    return bool(DeltaTable.is_deltatable(str(table), storage_options))


def lake_sql(
    output_path: str | Path, sql: str, storage_options: dict[str, str] | None = None
) -> list[tuple[Any, ...]]:
    """SQL over the lake's Delta tables, each a view of its name (``bars``, ``ticks``, ``rejects``,
    ``late``), read through the table's log by the deltalake package (not by Spark, nor by
    tickstream's own reader) into DuckDB. ``output_path`` is a folder or an ``s3://`` URI."""
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    for table in LAKE_TABLES:
        uri = f"{str(output_path).rstrip('/')}/{table}"
        if has_commit(uri, storage_options):
            found = DeltaTable(uri, storage_options=storage_options)
            con.register(table, found.to_pyarrow_dataset())
    return con.execute(sql).fetchall()


def lake_bars(
    output_path: str | Path, storage_options: dict[str, str] | None = None
) -> list[tuple[Any, ...]]:
    """The bars table, in BAR_COLUMNS order (times as UTC without a zone, as the reference);
    empty before its first commit."""
    if not has_commit(f"{str(output_path).rstrip('/')}/bars", storage_options):
        return []
    return lake_sql(
        output_path,
        """
        SELECT symbol, window_start::TIMESTAMP, window_end::TIMESTAMP, open, high, low, close,
               volume, vwap, trade_count, price_avg, pct_change, date
        FROM bars ORDER BY window_start, symbol
        """,
        storage_options,
    )


def as_row(bar: dict[str, Any]) -> tuple[Any, ...]:
    """A bar message as a row of the lake's bars table (``lake_bars``)."""

    def naive(ms: int) -> datetime:
        return datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None)

    return (
        bar["symbol"],
        naive(bar["window_start_ms"]),
        naive(bar["window_end_ms"]),
        bar["open"],
        bar["high"],
        bar["low"],
        bar["close"],
        bar["volume"],
        bar["vwap"],
        bar["trade_count"],
        bar["price_avg"],
        bar["pct_change"],
        bar["date"],
    )


BAR_SCHEMA = Path(__file__).resolve().parents[1] / "src" / "tickstream" / "bars" / "bar.schema.json"


ACTIVITY_BAR_SCHEMA = BAR_SCHEMA.with_name("activity_bar.schema.json")


def check_bar_message(message: dict[str, Any]) -> None:
    """Raise unless ``message`` meets the bars topic's contract (its JSON Schema file)."""
    _validator(BAR_SCHEMA).validate(message)


def check_activity_bar_message(message: dict[str, Any]) -> None:
    """Raise unless ``message`` meets the activity bars topic's contract."""
    _validator(ACTIVITY_BAR_SCHEMA).validate(message)


@functools.cache
def _validator(path: Path) -> Any:
    """The schema file read and its validator built once, for every message a test checks."""
    import json

    import jsonschema

    schema = json.loads(path.read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
