"""Reading the lake without Spark: what analysts and `tickstream bars` see.

``bars``, ``ticks``, ``rejects`` and ``late`` are Delta Lake tables. They are read through their
Delta log with the ``deltalake`` package (Arrow), then queried with DuckDB. Globbing a table's
Parquet files is **not** a correct read: files of a micro-batch that crashed before its commit,
and files that compaction has replaced, stay on disk until ``VACUUM`` removes them, and a glob
would count their rows too.

The lake is named by a :class:`~tickstream.lake.layout.Lake` (which carries an object store's
endpoint and credentials) or by its path, a local folder or ``s3://bucket/prefix`` (credentials
from the environment, as the AWS SDKs find them).

>>> bars = read_bars("data/output", symbol="AAPL", resolution="5m")  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from tickstream.errors import BadQueryError, TickstreamError
from tickstream.lake.columns import ACTIVITY_BAR_COLUMNS, BAR_COLUMNS
from tickstream.lake.layout import ACTIVITY_TABLES, DELTA_TABLES, Lake
from tickstream.lake.resample import check_session, parse_resolution, resample, stored_resolution

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


BAR_KINDS = ("time", *ACTIVITY_TABLES)


def stored_bars(
    lake: LakeLike,
    *,
    symbols: Sequence[str] = (),
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int | None = None,
    newest: bool = False,
    kind: str = "time",
) -> pd.DataFrame:
    """The bars as stored, ordered by time and symbol, filtered by symbol and [start, end) on
    window_start (time bars) or first_time (tick, volume and dollar bars); with ``limit``, the
    first bars, or the last ones if ``newest``."""
    activity = kind in ACTIVITY_TABLES
    table = ACTIVITY_TABLES[kind] if activity else "bars"
    columns = ACTIVITY_BAR_COLUMNS if activity else BAR_COLUMNS
    times = ("first_time", "last_time") if activity else ("window_start", "window_end")
    at = times[0]  # what start and end select on, and the order
    con = connect(lake, (table,))
    if table not in tables_in(con):
        return pd.DataFrame({c: [] for c in columns})
    where: list[str] = []
    params: list[object] = []
    if symbols:
        where.append(f"symbol IN ({', '.join('?' for _ in symbols)})")
        params.extend(s.upper() for s in symbols)
    if start:
        where.append(f"{at} >= ?")
        params.append(_naive_utc(start))
    if end:
        where.append(f"{at} < ?")
        params.append(_naive_utc(end))
    # Only fixed column names and placeholders are formatted in; values are bound parameters.
    filters = f" WHERE {' AND '.join(where)}" if where else ""
    keys = [at, "symbol"] + (["number"] if activity else [])
    order = " ORDER BY " + ", ".join(f"{k} DESC" if newest else k for k in keys)
    tail = order + (f" LIMIT {int(limit)}" if limit else "")
    # Delta's timestamps are instants: read as UTC.
    sql = f"SELECT {', '.join(columns)} FROM {table}{filters}{tail}"  # noqa: S608
    frame = con.execute(sql, params).df()
    if newest:
        frame = frame.iloc[::-1].reset_index(drop=True)
    for column in times:
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def read_bars(
    lake: LakeLike,
    *,
    symbol: str | Sequence[str] | None = None,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    resolution: str | None = None,
    session: str = "utc",
    extended: bool = False,
    fill: bool = False,
    limit: int | None = None,
    newest: bool = False,
    output: Literal["pandas", "polars", "arrow"] = "pandas",
    kind: str = "time",
) -> Any:
    """Closed bars from the lake, at the stored resolution or rolled up, as a DataFrame.

    ``symbol``: one or several; ``start``/``end``: [start, end) on window_start (UTC; a string
    is read as ISO-8601); ``resolution``: '5m', '1h', '1d', ... (a whole multiple of the stored
    bars; default: as stored); ``session``: what a day is, ``utc``, ``us-equities`` or
    ``cme-futures``, and what intraday bars keep (the session's hours, unless ``extended``);
    ``fill``: also the intervals without trades (close carried, zero volume, ``filled``);
    ``limit``: the first bars, or the last ones if ``newest``. ``output``: a pandas DataFrame
    (default), a polars DataFrame or an Arrow table. Columns: the bar table's (times UTC).

    ``kind``: ``time`` (default), or ``tick``, ``volume`` or ``dollar``: the bars cut every
    TICK_BARS ticks, VOLUME_BARS of volume, DOLLAR_BARS of traded value (their own tables,
    ordered by first tick time and number; ``start``/``end`` on the first tick's time). They
    are spaced by activity, not by the clock: no resolution, session or fill applies.

    >>> bars = read_bars("data/output", symbol="ES", resolution="1h")  # doctest: +SKIP
    >>> dollar = read_bars("data/output", symbol="ES", kind="dollar")  # doctest: +SKIP
    """
    symbols = [symbol] if isinstance(symbol, str) else list(symbol or [])
    lo, hi = parse_instant(start, "start"), parse_instant(end, "end")
    if kind not in BAR_KINDS:
        raise BadQueryError(f"unknown bar kind {kind!r}", "use time, tick, volume or dollar")
    if kind != "time":
        if resolution is not None or session != "utc" or fill:
            raise BadQueryError(
                f"{kind} bars are spaced by activity, not by the clock: a resolution, a "
                "session or fill applies to time bars only",
                "leave out resolution, session and fill with this kind",
            )
        frame = stored_bars(
            lake, symbols=symbols, start=lo, end=hi, limit=limit, newest=newest, kind=kind
        )
        return _as_output(frame, output)
    check_session(session)
    plain = resolution is None and session == "utc" and not fill
    if plain:
        frame = stored_bars(lake, symbols=symbols, start=lo, end=hi, limit=limit, newest=newest)
    else:
        wanted = parse_resolution(resolution) if resolution else None
        # The stored bars of every interval that overlaps [start, end): a day's margin covers
        # any session or interval up to a day.
        margin = timedelta(days=2)
        frame = stored_bars(
            lake,
            symbols=symbols,
            start=lo - margin if lo else None,
            end=hi + margin if hi else None,
        )
        if wanted is None and len(frame):
            wanted = stored_resolution(frame)
        if wanted is not None:
            frame = resample(frame, wanted, session=session, extended=extended, fill=fill)
        keep = pd.Series(True, index=frame.index)
        if lo is not None:
            keep &= frame["window_start"] >= pd.Timestamp(lo)
        if hi is not None:
            keep &= frame["window_start"] < pd.Timestamp(hi)
        frame = frame[keep].reset_index(drop=True)
        if limit:
            frame = frame.tail(limit) if newest else frame.head(limit)
            frame = frame.reset_index(drop=True)
    return _as_output(frame, output)


def _as_output(frame: pd.DataFrame, output: str) -> Any:
    if output == "pandas":
        return frame
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if output == "arrow":
        return table
    if output == "polars":
        try:
            import polars
        except ImportError:
            raise TickstreamError(
                "output='polars' needs the polars package", "pip install polars"
            ) from None
        return polars.from_arrow(table)
    raise BadQueryError(f"unknown output {output!r}", "use pandas, polars or arrow")


def plain_value(value: Any) -> Any:
    """A cell of a bars DataFrame as a plain Python value: None for a missing one, an aware UTC
    datetime for a time, int or float for a numpy number."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return value.item() if hasattr(value, "item") else value


def _naive_utc(moment: datetime) -> datetime:
    """DuckDB compares naive timestamps: an aware time is turned into naive UTC."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def parse_instant(value: datetime | str | None, name: str) -> datetime | None:
    """A UTC instant (aware), from a datetime (naive = UTC) or an ISO-8601 string."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise BadQueryError(
                f"bad {name} {value!r}", "use an ISO-8601 time such as 2013-09-02T14:30"
            ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def bar_kinds(lake: LakeLike) -> list[str]:
    """The kinds of activity bar (tick, volume, dollar) the lake has a table of."""
    return [kind for kind, table in ACTIVITY_TABLES.items() if is_delta_table(lake, table)]


def bar_symbols(lake: LakeLike) -> list[str]:
    """The symbols that have closed bars in the lake, in order."""
    con = connect(lake, ("bars",))
    if "bars" not in tables_in(con):
        return []
    return [s for (s,) in con.execute("SELECT DISTINCT symbol FROM bars ORDER BY 1").fetchall()]


# The columns of the tick archive that cutting bars in order needs (event_id only to order
# ticks that tie on symbol, time and seq: reading it costs more than the others together).
ARCHIVE_COLUMNS = ("symbol", "ts_epoch_ms", "seq", "price", "volume")


class TickArchive:
    """The lake's tick archive (``ticks/``), read by event time through its Delta log.

    The table is opened once and brought up to date before each read (Delta's log is read
    incrementally). A read keeps only the date partitions, and the files whose event-time
    statistics, that can hold the range, so reading the ticks of a minute reads the few files
    of the batches that took them, not the archive."""

    def __init__(self, lake: LakeLike, *, version: int | None = None) -> None:
        """``version``: read that version of the archive, always (default: the newest at each
        read)."""
        self.lake = as_lake(lake)
        self.version = version
        self._table: DeltaTable | None = None

    def between(
        self,
        lo_ms: int | None,
        hi_ms: int,
        *,
        event_ids: bool = False,
        symbols: Sequence[str] = (),
    ) -> pa.Table:
        """The accepted ticks of event time [lo_ms, hi_ms) (``lo_ms`` None: from the first), of
        ``symbols`` (default: all), in the archive's order (``bars.activity.in_order`` sorts
        them), with their event_ids if asked; an empty table if none."""
        columns = [*ARCHIVE_COLUMNS, "event_id"] if event_ids else list(ARCHIVE_COLUMNS)
        dataset = self._dataset(lo_ms, hi_ms)
        if dataset is None:
            return _empty_archive().select(columns)
        return dataset.to_table(columns=columns, filter=_rows(lo_ms, hi_ms, symbols))

    def span(
        self, lo_ms: int | None, hi_ms: int | None, symbols: Sequence[str] = ()
    ) -> tuple[int, int, int]:
        """How many ticks of ``symbols`` the archive holds in [lo_ms, hi_ms), and the first and
        last one's event time (0, 0, 0 if none): one streamed read of the time column."""
        dataset = self._dataset(lo_ms, hi_ms)
        if dataset is None:
            return 0, 0, 0
        count, first, last = 0, 0, 0
        batches = dataset.to_batches(columns=["ts_epoch_ms"], filter=_rows(lo_ms, hi_ms, symbols))
        for batch in batches:
            if batch.num_rows == 0:
                continue
            bounds = pc.min_max(batch.column(0))
            low, high = bounds["min"].as_py(), bounds["max"].as_py()
            first, last = (low, high) if count == 0 else (min(first, low), max(last, high))
            count += batch.num_rows
        return count, first, last

    def file_uris(self, lo_ms: int | None, hi_ms: int | None) -> list[str] | None:
        """The data files of the version read that can hold ticks of [lo_ms, hi_ms) (by date
        partition and ``ts`` statistics), as URIs (``s3://`` on S3); None if the table needs
        a Delta reader to be read right (a reader feature, such as deletion vectors or column
        mapping, which the job never turns on) or does not exist."""
        table = self._open()
        if table is None:
            return None
        protocol = table.protocol()
        if protocol.min_reader_version > 1 or protocol.reader_features:
            return None
        where = _pruning(lo_ms, hi_ms)
        return list(table.file_uris(file_pruning_predicate=where) if where else table.file_uris())

    def current_version(self) -> int | None:
        """The archive's version as read (None: no archive)."""
        table = self._open()
        return None if table is None else table.version()

    def _dataset(self, lo_ms: int | None, hi_ms: int | None) -> ds.Dataset | None:
        """The archive's files that can hold ticks of [lo_ms, hi_ms)."""
        table = self._open()
        if table is None:
            return None
        where = _pruning(lo_ms, hi_ms)
        if not where:
            return table.to_pyarrow_dataset()
        return table.to_pyarrow_dataset(file_pruning_predicate=where)

    def _open(self) -> DeltaTable | None:
        if self._table is None:
            try:
                self._table = DeltaTable(
                    self.lake.delta_uri("ticks"),
                    version=self.version,
                    storage_options=self.lake.storage_options,
                )
            except TableNotFoundError:
                return None
        elif self.version is None:
            self._table.update_incremental()
        return self._table


def _pruning(lo_ms: int | None, hi_ms: int | None) -> str:
    """Which files can hold ticks of [lo_ms, hi_ms): by the date partition, and by ``ts``'s
    statistics (the archive keeps statistics of its first two columns only, symbol and ts:
    jvm/spark.py). Empty: every file."""
    where = []
    if hi_ms is not None:
        where += [f"date <= '{_day(hi_ms)}'", f"ts < '{_instant(hi_ms)}'"]
    if lo_ms is not None:
        where += [f"date >= '{_day(lo_ms)}'", f"ts >= '{_instant(lo_ms)}'"]
    return " AND ".join(where)


def _rows(lo_ms: int | None, hi_ms: int | None, symbols: Sequence[str]) -> ds.Expression:
    """The archive's rows of event time [lo_ms, hi_ms) and ``symbols`` (all if none)."""
    rows = ds.scalar(True)
    if hi_ms is not None:
        rows &= ds.field("ts_epoch_ms") < hi_ms
    if lo_ms is not None:
        rows &= ds.field("ts_epoch_ms") >= lo_ms
    if symbols:
        rows &= ds.field("symbol").isin(list(symbols))
    return rows


def _empty_archive() -> pa.Table:
    types = {
        "symbol": pa.string(),
        "ts_epoch_ms": pa.int64(),
        "seq": pa.int64(),
        "event_id": pa.string(),
        "price": pa.float64(),
        "volume": pa.float64(),
    }
    return pa.table({name: pa.array([], type_) for name, type_ in types.items()})


def _instant(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")
