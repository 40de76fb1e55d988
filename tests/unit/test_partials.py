"""Partial aggregates: however the ticks of a window are split into batches, the bar is the same."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from tickstream.bars.partials import Partial, merge_into, open_ticks, split_closed, to_bar
from tickstream.bars.watermark import next_watermark

WINDOW = 60_000

Tick = tuple[int, int, str, float, float]  # ts, seq, event_id, price, volume


def partial_of(symbol: str, ticks: list[Tick]) -> Partial:
    """The partial of a set of ticks, computed the plain way (what Spark's summary does)."""
    ordered = sorted(ticks, key=lambda t: (t[0], t[1], t[2]))
    first, last = ordered[0], ordered[-1]
    return Partial(
        symbol=symbol,
        window_start_ms=first[0] - first[0] % WINDOW,
        first=(first[0], first[1], first[2]),
        open=first[3],
        last=(last[0], last[1], last[2]),
        close=last[3],
        high=max(t[3] for t in ticks),
        low=min(t[3] for t in ticks),
        volume=sum(t[4] for t in ticks),
        pv=sum(t[3] * t[4] for t in ticks),
        count=len(ticks),
        price_sum=sum(t[3] for t in ticks),
    )


# Prices on a 0.25 grid and whole volumes: sums are exact in any order, as with the ES ticks.
ticks_of_one_window = st.lists(
    st.tuples(
        st.integers(0, WINDOW - 1),
        st.integers(0, 5),
        st.integers(0, 10**6),
        st.integers(4, 8000).map(lambda q: q * 0.25),
        st.integers(0, 500).map(float),
    ),
    min_size=1,
    max_size=60,
    unique_by=lambda t: t[2],
).map(lambda rows: [(t, s, f"id-{i}", p, v) for t, s, i, p, v in rows])


@settings(max_examples=200, deadline=None)
@given(ticks=ticks_of_one_window, cuts=st.lists(st.integers(0, 60), max_size=5))
def test_merging_batches_equals_one_pass(ticks: list[Tick], cuts: list[int]) -> None:
    bounds = sorted({0, len(ticks), *(c % (len(ticks) + 1) for c in cuts)})
    batches = [ticks[a:b] for a, b in pairwise(bounds) if b > a]
    state: dict[tuple[str, int], Partial] = {}
    for batch in reversed(batches):  # arrival order is not event-time order
        state = merge_into(state, [partial_of("ES", batch)])
    assert list(state.values()) == [partial_of("ES", ticks)]


def test_open_and_close_follow_event_time_then_seq_then_event_id() -> None:
    a = partial_of("ES", [(1000, 2, "b", 10.0, 1.0)])
    b = partial_of("ES", [(1000, 2, "a", 11.0, 1.0), (1000, 3, "a2", 12.0, 1.0)])
    merged = a.merge(b)
    assert (merged.open, merged.close) == (11.0, 12.0)
    assert b.merge(a) == merged


def test_windows_behind_the_watermark_close_in_bar_order() -> None:
    state = merge_into(
        {},
        [
            partial_of("MSFT", [(60_000, 1, "m1", 420.0, 3.0)]),
            partial_of("AAPL", [(60_500, 1, "a1", 230.0, 2.0)]),
            partial_of("AAPL", [(0, 1, "a0", 229.0, 1.0)]),
            partial_of("AAPL", [(120_000, 1, "a2", 231.0, 1.0)]),
        ],
    )
    closed, remaining = split_closed(state, watermark_ms=120_000, window_ms=WINDOW)
    assert [(p.window_start_ms, p.symbol) for p in closed] == [
        (0, "AAPL"),
        (60_000, "AAPL"),
        (60_000, "MSFT"),
    ]
    assert list(remaining) == [("AAPL", 120_000)]
    assert open_ticks(remaining) == 1


def test_a_bar_from_its_partial() -> None:
    p = partial_of("ES", [(60_001, 1, "x", 100.0, 2.0), (60_002, 2, "y", 101.0, 0.0)])
    bar = to_bar(p, WINDOW)
    assert bar["window_start"] == datetime(1970, 1, 1, 0, 1, tzinfo=UTC)
    assert bar["window_end"] == datetime(1970, 1, 1, 0, 2, tzinfo=UTC)
    assert (bar["open"], bar["high"], bar["low"], bar["close"]) == (100.0, 101.0, 100.0, 101.0)
    assert (bar["volume"], bar["vwap"], bar["trade_count"]) == (2.0, 100.0, 2)
    assert bar["price_avg"] == 100.5
    assert bar["pct_change"] == 1.0
    assert bar["date"] == "1970-01-01"
    silent = partial_of("ES", [(0, 1, "z", 5.0, 0.0)])
    assert to_bar(silent, WINDOW)["vwap"] is None  # no volume, no vwap


def test_a_partial_survives_its_json_round_trip() -> None:
    p = partial_of("ES", [(60_001, 1, "x", 100.0, 2.0)])
    assert Partial.from_json(p.to_json()) == p


def test_the_watermark_follows_the_slowest_partition_and_never_moves_back() -> None:
    assert next_watermark(-5, {}, 100) == -5
    assert next_watermark(0, {"0": 1_000, "1": 5_000}, 100) == 900
    assert next_watermark(2_000, {"0": 1_000, "1": 5_000}, 100) == 2_000
