"""Bars at other resolutions, rolled up from the stored bars: exact, and session-aware for days.

A bar of a coarser interval is a fold over the stored bars inside it, the same fold the job runs
over ticks: open of the first bar, close of the last, max/min, summed volume and trade_count.
VWAP and price_avg are weighted back from the stored bars (turnover = vwap x volume; price sum =
price_avg x trade_count), so they equal a computation from the ticks up to floating-point
rounding (~1e-15 relative). pct_change is recomputed from the new open and close.

Intraday intervals are aligned to the epoch, as the stream job aligns its windows. A day is a
UTC day (``session="utc"``), or a trading session of an exchange calendar
(`exchange_calendars`): ``us-equities`` (NYSE regular hours, 09:30-16:00 America/New_York) and
``cme-futures`` (CME equity futures: from the evening before, America/Chicago). Holidays and
daylight-saving changes come from the calendar. Bars outside a session are left out, unless
``extended``: then they count in the session they precede (after-hours bars in the next one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from tickstream.errors import BadQueryError
from tickstream.lake.columns import BAR_COLUMNS

MINUTE_MS = 60_000
DAY_MS = 86_400_000
UNITS_MS = {"s": 1000, "m": MINUTE_MS, "h": 60 * MINUTE_MS, "d": DAY_MS}
RESOLUTION_RE = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$", re.IGNORECASE)

# Session names -> exchange_calendars calendar code (None: plain UTC days).
SESSIONS: dict[str, str | None] = {
    "utc": None,
    "us-equities": "XNYS",
    "cme-futures": "CMES",
}


@dataclass(frozen=True)
class Resolution:
    text: str
    ms: int

    @property
    def daily(self) -> bool:
        return self.ms % DAY_MS == 0


def parse_resolution(text: str) -> Resolution:
    """'5m', '1h', '1d' -> a Resolution; a clear error for anything else."""
    match = RESOLUTION_RE.match(text or "")
    if not match or int(match.group(1)) == 0:
        raise BadQueryError(
            f"bad resolution {text!r}",
            "use a whole number and a unit: 1m, 5m, 15m, 30m, 1h, 4h, 1d (s, m, h, d)",
        )
    n, unit = int(match.group(1)), match.group(2).lower()
    return Resolution(f"{n}{unit}", n * UNITS_MS[unit])


def check_resolution(resolution: Resolution, stored_ms: int) -> None:
    """A resolution must be a whole multiple of the stored bars' length."""
    if resolution.ms < stored_ms or resolution.ms % stored_ms:
        stored = duration_text(stored_ms)
        finer = "finer than" if resolution.ms < stored_ms else "not a whole multiple of"
        raise BadQueryError(
            f"resolution {resolution.text} is {finer} the stored bars ({stored})",
            f"use a whole multiple of {stored}, or make {resolution.text} bars from the tick "
            f"archive: tickstream lake rebuild --window-duration {resolution.text} --into PATH",
        )
    if resolution.daily and resolution.ms != DAY_MS:
        raise BadQueryError(
            f"resolution {resolution.text}: days are rolled up one at a time",
            "use 1d (a session or UTC day)",
        )


def duration_text(ms: int) -> str:
    """A length of time in its largest whole unit: ``1m``, ``30s``, ``1500ms``."""
    for unit, size in (("d", DAY_MS), ("h", 3_600_000), ("m", MINUTE_MS), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def check_session(session: str) -> str:
    if session not in SESSIONS:
        raise BadQueryError(f"unknown session {session!r}", f"use one of: {', '.join(SESSIONS)}")
    return session


@cache
def _calendar(code: str) -> Any:
    import warnings

    import exchange_calendars

    with warnings.catch_warnings():  # exchange_calendars 4.13 on pandas 3.1: a deprecation
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return exchange_calendars.get_calendar(code)


def sessions_between(session: str, start_ms: int, end_ms: int) -> pd.DataFrame:
    """The sessions overlapping [start_ms, end_ms): columns open_ms, close_ms, date (str)."""
    code = SESSIONS[check_session(session)]
    if code is None:
        first = start_ms - start_ms % DAY_MS
        opens = np.arange(first, end_ms, DAY_MS, dtype=np.int64)
        return pd.DataFrame(
            {
                "open_ms": opens,
                "close_ms": opens + DAY_MS,
                "date": pd.to_datetime(opens, unit="ms").strftime("%Y-%m-%d"),
            }
        )
    calendar = _calendar(code)
    lo = pd.Timestamp(start_ms, unit="ms", tz="UTC") - pd.Timedelta(days=7)
    hi = pd.Timestamp(end_ms, unit="ms", tz="UTC") + pd.Timedelta(days=7)
    lo = max(lo.tz_localize(None).normalize(), calendar.first_session)
    hi = min(hi.tz_localize(None).normalize(), calendar.last_session)
    schedule = calendar.schedule.loc[lo:hi]
    opens, closes = _ms(schedule["open"]), _ms(schedule["close"])
    frame = pd.DataFrame(
        {"open_ms": opens, "close_ms": closes, "date": schedule.index.strftime("%Y-%m-%d")}
    )
    keep = (frame["close_ms"] > start_ms) & (frame["open_ms"] < end_ms)
    return frame[keep].reset_index(drop=True)


def _ms(column: pd.Series) -> np.ndarray:
    values = pd.to_datetime(column, utc=True)
    return np.asarray(
        values.dt.tz_localize(None).to_numpy().astype("datetime64[ms]").astype(np.int64)
    )


def _stamp(ms: np.ndarray | pd.Series) -> pd.Series:
    return pd.Series(pd.to_datetime(np.asarray(ms, dtype=np.int64), unit="ms", utc=True))


def stored_length_ms(bars: pd.DataFrame) -> int:
    """The stored bars' length (one for the whole table, or a clear error)."""
    lengths = set((_ms(bars["window_end"]) - _ms(bars["window_start"])).tolist())
    if len(lengths) != 1:
        shown = ", ".join(sorted(duration_text(int(x)) for x in lengths))
        raise BadQueryError(
            f"the stored bars have several lengths ({shown}): WINDOW_DURATION changed",
            "read them with --from/--to around one length, or rebuild the lake",
        )
    return int(lengths.pop())


def stored_resolution(bars: pd.DataFrame) -> Resolution:
    """The stored bars' length as a resolution."""
    ms = stored_length_ms(bars)
    return Resolution(duration_text(ms), ms)


def _session_index(table: pd.DataFrame, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each time, the index of the first session of ``table`` that closes after it (the
    session it falls in, or the next one), and whether there is such a session."""
    index = np.searchsorted(table["close_ms"].to_numpy(), times, side="right")
    return np.minimum(index, max(len(table) - 1, 0)), index < len(table)


def assign(
    bars: pd.DataFrame, resolution: Resolution, session: str, extended: bool
) -> pd.DataFrame:
    """The stored bars with the interval each belongs to (bucket_start, bucket_end, date);
    bars outside every session are dropped (unless ``extended``)."""
    starts = _ms(bars["window_start"])
    ends = _ms(bars["window_end"])
    out = bars.copy()
    if not resolution.daily and (SESSIONS[session] is None or extended):
        bucket = starts - starts % resolution.ms
        out["bucket_start"] = bucket
        out["bucket_end"] = bucket + resolution.ms
        out["date"] = _stamp(bucket).dt.strftime("%Y-%m-%d").to_numpy()
        return out
    table = sessions_between(session, int(starts.min()), int(ends.max()))
    opens = table["open_ms"].to_numpy()
    closes = table["close_ms"].to_numpy()
    safe, valid = _session_index(table, starts)
    inside = valid & (starts >= opens[safe]) & (ends <= closes[safe]) if len(table) else valid
    keep = inside | (valid & extended)
    out = out[keep].copy()
    safe = safe[keep]
    starts = starts[keep]
    if resolution.daily:
        out["bucket_start"] = opens[safe]
        out["bucket_end"] = closes[safe]
    else:  # intraday within the regular sessions
        bucket = starts - starts % resolution.ms
        out["bucket_start"] = bucket
        out["bucket_end"] = bucket + resolution.ms
    out["date"] = table["date"].to_numpy()[safe]
    return out


def roll_up(assigned: pd.DataFrame) -> pd.DataFrame:
    """One bar per (symbol, interval) from the assigned stored bars."""
    if assigned.empty:
        return empty_bars()
    frame = assigned.sort_values(["symbol", "bucket_start", "window_start"], kind="stable")
    frame = frame.assign(
        turnover=frame["vwap"].fillna(0.0) * frame["volume"],
        price_sum=frame["price_avg"] * frame["trade_count"],
    )
    grouped = frame.groupby(["symbol", "bucket_start"], sort=True)
    out = grouped.agg(
        bucket_end=("bucket_end", "first"),
        open=("open", "first"),
        high=("high", "max"),
        low=("low", "min"),
        close=("close", "last"),
        volume=("volume", "sum"),
        turnover=("turnover", "sum"),
        trade_count=("trade_count", "sum"),
        price_sum=("price_sum", "sum"),
        date=("date", "first"),
    ).reset_index()
    volume = out["volume"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        vwap = np.where(volume > 0, out["turnover"].to_numpy() / volume, np.nan)
    result = pd.DataFrame(
        {
            "symbol": out["symbol"],
            "window_start": _stamp(out["bucket_start"]),
            "window_end": _stamp(out["bucket_end"]),
            "open": out["open"],
            "high": out["high"],
            "low": out["low"],
            "close": out["close"],
            "volume": volume,
            "vwap": pd.Series(vwap).astype(object).where(~np.isnan(vwap), None),
            "trade_count": out["trade_count"].astype("int64"),
            "price_avg": out["price_sum"] / out["trade_count"],
            "pct_change": (out["close"] - out["open"]) / out["open"] * 100.0,
            "date": out["date"],
        }
    )
    return result.sort_values(["window_start", "symbol"], kind="stable").reset_index(drop=True)


def fill_gaps(
    bars: pd.DataFrame, resolution: Resolution, session: str, extended: bool
) -> pd.DataFrame:
    """Every interval between a symbol's first and last bar, the empty ones carrying the
    previous close with zero volume, flagged ``filled``. Intraday intervals outside the
    sessions stay out (unless ``extended`` or UTC)."""
    out = bars.assign(filled=False)
    if bars.empty:
        return out
    if resolution.daily:
        return _fill_days(out, session)
    pieces = []
    for symbol, group in out.groupby("symbol", sort=False):
        starts = _ms(group["window_start"])
        grid = np.arange(starts.min(), starts.max() + 1, resolution.ms, dtype=np.int64)
        if SESSIONS[session] is not None and not extended:
            table = sessions_between(session, int(grid.min()), int(grid.max()) + resolution.ms)
            safe, ok = _session_index(table, grid)
            opens = table["open_ms"].to_numpy()
            grid = grid[ok & (grid >= opens[safe])] if len(table) else grid[ok]
        missing = np.setdiff1d(grid, starts)
        pieces.append(group)
        if len(missing):
            pieces.append(_filled_rows(str(symbol), missing, resolution.ms, group, starts))
    merged = pd.concat(pieces, ignore_index=True)
    return merged.sort_values(["window_start", "symbol"], kind="stable").reset_index(drop=True)


def _filled_rows(
    symbol: str, missing: np.ndarray, length_ms: int, group: pd.DataFrame, starts: np.ndarray
) -> pd.DataFrame:
    closes = group["close"].to_numpy()
    before = np.searchsorted(starts, missing, side="left") - 1  # the bar before each gap
    carried = closes[before]
    return pd.DataFrame(
        {
            "symbol": symbol,
            "window_start": _stamp(missing),
            "window_end": _stamp(missing + length_ms),
            "open": carried,
            "high": carried,
            "low": carried,
            "close": carried,
            "volume": 0.0,
            "vwap": None,
            "trade_count": np.zeros(len(missing), dtype=np.int64),
            "price_avg": carried,
            "pct_change": 0.0,
            "date": _stamp(missing).dt.strftime("%Y-%m-%d").to_numpy(),
            "filled": True,
        }
    )


def _fill_days(bars: pd.DataFrame, session: str) -> pd.DataFrame:
    pieces = []
    for symbol, group in bars.groupby("symbol", sort=False):
        starts = _ms(group["window_start"])
        table = sessions_between(session, int(starts.min()), int(starts.max()) + 1)
        table = table[(table["open_ms"] >= starts.min()) & (table["open_ms"] <= starts.max())]
        missing = table[~table["open_ms"].isin(starts)]
        pieces.append(group)
        if len(missing):
            rows = _filled_rows(str(symbol), missing["open_ms"].to_numpy(), 0, group, starts)
            rows["window_end"] = _stamp(missing["close_ms"].to_numpy())
            rows["date"] = missing["date"].to_numpy()
            pieces.append(rows)
    merged = pd.concat(pieces, ignore_index=True)
    return merged.sort_values(["window_start", "symbol"], kind="stable").reset_index(drop=True)


def empty_bars() -> pd.DataFrame:
    return pd.DataFrame({name: [] for name in BAR_COLUMNS})


def resample(
    bars: pd.DataFrame,
    resolution: Resolution,
    *,
    session: str = "utc",
    extended: bool = False,
    fill: bool = False,
) -> pd.DataFrame:
    """The stored ``bars`` (the bar table's columns) at ``resolution``."""
    check_session(session)
    if bars.empty:
        return empty_bars().assign(filled=False) if fill else empty_bars()
    stored = stored_length_ms(bars)
    check_resolution(resolution, stored)
    if resolution.ms == stored and not resolution.daily and (SESSIONS[session] is None or extended):
        out = bars[list(BAR_COLUMNS)].sort_values(["window_start", "symbol"], kind="stable")
        out = out.reset_index(drop=True)
    else:
        out = roll_up(assign(bars, resolution, session, extended))
    return fill_gaps(out, resolution, session, extended) if fill else out
