"""Roll-ups of stored bars against an independent computation straight from the ticks."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.reference import reference_bars, reference_session_bars
from tickstream.errors import TickstreamError
from tickstream.lake.columns import BAR_COLUMNS
from tickstream.lake.resample import (
    parse_resolution,
    resample,
    sessions_between,
)

MINUTE = 60_000


def synthetic_ticks(start_ms: int, end_ms: int, n: int, seed: int = 7) -> list[dict[str, Any]]:
    """Ticks of two symbols at random times in [start, end), prices on a 0.25 grid."""
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.integers(start_ms, end_ms, n))
    symbols = rng.choice(["ES", "NQ"], n)
    prices = 1600 + np.round(np.cumsum(rng.normal(0, 0.5, n)) * 4) / 4
    volumes = rng.integers(1, 50, n).astype(float)
    volumes[rng.random(n) < 0.02] = 0.0  # a few zero-volume prints
    return [
        {
            "symbol": str(symbols[i]),
            "ts_epoch_ms": int(ts[i]),
            "price": float(prices[i]),
            "volume": float(volumes[i]),
            "seq": i,
            "event_id": f"e{i}",
        }
        for i in range(n)
    ]


def as_frame(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(BAR_COLUMNS))
    for column in ("window_start", "window_end"):
        frame[column] = pd.to_datetime(frame[column]).dt.tz_localize("UTC")
    return frame


def assert_same_bars(got: pd.DataFrame, expected: list[tuple[Any, ...]]) -> None:
    """Identical open/high/low/close/volume/trade_count and times; vwap and price_avg within
    1e-9 relative."""
    assert len(got) == len(expected)
    for row, want in zip(got.itertuples(index=False), expected, strict=True):
        g = dict(zip(BAR_COLUMNS, row, strict=False))
        w = dict(zip(BAR_COLUMNS, want, strict=True))
        assert g["symbol"] == w["symbol"]
        assert g["window_start"].tz_localize(None).to_pydatetime() == w["window_start"]
        assert g["window_end"].tz_localize(None).to_pydatetime() == w["window_end"]
        for exact in ("open", "high", "low", "close", "volume", "trade_count"):
            assert g[exact] == w[exact], (exact, g, w)
        for near in ("vwap", "price_avg", "pct_change"):
            if w[near] is None:
                assert g[near] is None or (isinstance(g[near], float) and math.isnan(g[near]))
            else:
                assert g[near] == pytest.approx(w[near], rel=1e-9, abs=1e-12), (near, g, w)
        assert g["date"] == w["date"]


START = 1_600_000_000_000 - 1_600_000_000_000 % (24 * 3600_000)  # a UTC midnight (2020-09-13)


@pytest.mark.parametrize("text", ["1m", "5m", "15m", "30m", "1h", "4h", "1d"])
def test_every_resolution_equals_the_bars_computed_from_the_ticks(text: str) -> None:
    ticks = synthetic_ticks(START + 7 * 3600_000, START + 3 * 24 * 3600_000, 20_000)
    stored = as_frame(reference_bars(ticks, MINUTE))
    resolution = parse_resolution(text)
    assert_same_bars(resample(stored, resolution), reference_bars(ticks, resolution.ms))


def test_resolution_errors_are_one_clear_line() -> None:
    ticks = synthetic_ticks(START, START + 3600_000, 500)
    stored = as_frame(reference_bars(ticks, 5 * MINUTE))
    cases = {
        "1m": "resolution 1m is finer than the stored bars (5m)",
        "7m": "resolution 7m is not a whole multiple of the stored bars (5m)",
        "2d": "days are rolled up one at a time",
    }
    for text, message in cases.items():
        with pytest.raises(TickstreamError, match=re.escape(message)):
            resample(stored, parse_resolution(text))
    for bad in ("5", "m", "0m", "5 minutes", "-5m"):
        with pytest.raises(TickstreamError, match="bad resolution"):
            parse_resolution(bad)
    with pytest.raises(TickstreamError, match="unknown session 'lse'"):
        resample(stored, parse_resolution("1d"), session="lse")


def test_cme_days_follow_the_calendar_across_a_dst_change_and_a_holiday() -> None:
    """CME equity futures, 2026-02-27 to 2026-03-13: the US clocks change on Sunday March 8
    (the session opens at 23:00 UTC before it, 22:00 UTC after), and no holiday; then
    2025-12-22 to 2026-01-06 for Christmas and New Year's Day."""
    for first, last in [("2026-02-27", "2026-03-13"), ("2025-12-22", "2026-01-06")]:
        start = int(pd.Timestamp(first, tz="UTC").timestamp() * 1000)
        end = int(pd.Timestamp(last, tz="UTC").timestamp() * 1000)
        ticks = synthetic_ticks(start, end, 30_000, seed=3)
        stored = as_frame(reference_bars(ticks, MINUTE))
        got = resample(stored, parse_resolution("1d"), session="cme-futures")
        expected = reference_session_bars(ticks, "cme-futures")
        assert_same_bars(got, expected)
    table = sessions_between("cme-futures", start, end)
    assert "2025-12-25" not in set(table["date"])  # Christmas: no session
    opens = sessions_between(
        "cme-futures",
        int(pd.Timestamp("2026-03-05", tz="UTC").timestamp() * 1000),
        int(pd.Timestamp("2026-03-12", tz="UTC").timestamp() * 1000),
    ).set_index("date")["open_ms"]
    hours = [pd.Timestamp(opens[d], unit="ms").hour for d in ("2026-03-06", "2026-03-10")]
    assert hours == [23, 22]  # 17:00 Chicago, CST then CDT


def test_us_equity_days_are_regular_hours_only_unless_extended() -> None:
    start = int(pd.Timestamp("2026-03-05", tz="UTC").timestamp() * 1000)
    end = int(pd.Timestamp("2026-03-12", tz="UTC").timestamp() * 1000)
    ticks = synthetic_ticks(start, end, 30_000, seed=5)
    stored = as_frame(reference_bars(ticks, MINUTE))
    regular = resample(stored, parse_resolution("1d"), session="us-equities")
    assert_same_bars(regular, reference_session_bars(ticks, "us-equities"))
    # 09:30 New York: 14:30 UTC before the change (EST), 13:30 UTC after (EDT).
    opens = {r.date: r.window_start.hour * 60 + r.window_start.minute for r in regular.itertuples()}
    assert opens["2026-03-06"] == 14 * 60 + 30
    assert opens["2026-03-09"] == 13 * 60 + 30
    assert "2026-03-07" not in opens  # a Saturday
    extended = resample(stored, parse_resolution("1d"), session="us-equities", extended=True)
    assert extended["trade_count"].sum() == len(ticks) - count_after_last_close(ticks)
    assert regular["trade_count"].sum() < extended["trade_count"].sum()


def count_after_last_close(ticks: list[dict[str, Any]]) -> int:
    last = max(t["ts_epoch_ms"] for t in ticks)
    table = sessions_between("us-equities", min(t["ts_epoch_ms"] for t in ticks), last + 1)
    close = int(table["close_ms"].max())
    return sum(1 for t in ticks if t["ts_epoch_ms"] >= close)


def test_fill_carries_the_close_through_empty_intervals() -> None:
    ticks = [
        {
            "symbol": "ES",
            "ts_epoch_ms": START + m * MINUTE,
            "price": p,
            "volume": 1.0,
            "seq": m,
            "event_id": f"e{m}",
        }
        for m, p in [(0, 10.0), (1, 11.0), (5, 12.0)]
    ]
    stored = as_frame(reference_bars(ticks, MINUTE))
    plain = resample(stored, parse_resolution("1m"))
    assert len(plain) == 3
    filled = resample(stored, parse_resolution("1m"), fill=True)
    assert len(filled) == 6
    gaps = filled[filled["filled"]]
    assert list(gaps["close"]) == [11.0, 11.0, 11.0]
    assert list(gaps["volume"]) == [0.0, 0.0, 0.0]
    assert list(gaps["trade_count"]) == [0, 0, 0]
    assert list(filled["filled"]) == [False, False, True, True, True, False]


def test_the_cli_offers_exactly_the_sessions_resample_knows() -> None:
    """`tickstream bars --session` lists the names without importing pandas at start-up."""
    from tickstream.cli.lake import SESSION_NAMES
    from tickstream.lake.resample import SESSIONS

    assert tuple(SESSIONS) == SESSION_NAMES
