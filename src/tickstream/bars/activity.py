"""Activity bars: tick, volume and dollar bars (López de Prado, *Advances in Financial Machine
Learning*, ch. 2), cut from a symbol's ticks in order.

The rule is mlfinpy's standard bars (``get_tick_bars``, ``get_volume_bars``,
``get_dollar_bars``), so that a bar cut here equals the one mlfinpy cuts from the same ticks:

- ticks are taken in (event time, seq, event_id) order;
- each tick adds 1 to the open bar's tick count, its volume to its volume, and price * volume to
  its dollar value, each a running sum from 0 in that order (the same floating-point additions
  as mlfinpy's, so the sums are equal to the last bit);
- the bar closes on the tick at which the running sum of its kind reaches the threshold
  (``>=``); that tick belongs to the closing bar, and the next bar starts empty (no
  carry-over);
- the open bar is not a bar: it is state, carried to the next ticks (and across restarts).

Pure Python and numpy, no Spark: the live job and a batch rebuild both cut with :func:`cut`,
and it is tested directly. A bar is found with one running sum (``numpy.cumsum``, which adds
in order) over a stretch of ticks, not a Python step per tick.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from tickstream.config.forms import Thresholds
from tickstream.config.job import ACTIVITY_KINDS as KINDS

__all__ = [
    "KINDS",
    "ActivityBar",
    "NeedsEventIdsError",
    "OpenBar",
    "OpenBars",
    "OrderedTicks",
    "Thresholds",
    "bar_row",
    "cut",
    "cut_ticks",
    "in_order",
]


@dataclass(frozen=True)
class OpenBar:
    """The open bar of one (symbol, kind): what the ticks cut so far have added up to.

    ``number`` is the count of this symbol's bars of this kind closed before it. An empty bar
    (``ticks == 0``) has no prices yet."""

    number: int = 0
    ticks: int = 0
    volume: float = 0.0
    dollar: float = 0.0
    open: float = 0.0
    high: float = 0.0
    low: float = 0.0
    close: float = 0.0
    first_ms: int = 0
    last_ms: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OpenBar:
        return cls(**data)


@dataclass(frozen=True)
class ActivityBar:
    """A closed bar: its symbol and kind, its number within them (from 1), the threshold it
    closed on, its first and last tick's times, and its OHLCV, dollar value and tick count."""

    symbol: str
    kind: str
    number: int
    threshold: float
    first_ms: int
    last_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    dollar: float
    ticks: int

    @property
    def vwap(self) -> float | None:
        """Dollar value over volume (None for a bar of zero volume)."""
        return self.dollar / self.volume if self.volume else None


Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


def cut(
    symbol: str,
    kind: str,
    threshold: float,
    bar: OpenBar,
    ts_ms: Ints,
    price: Floats,
    volume: Floats,
) -> tuple[list[ActivityBar], OpenBar]:
    """Cut the ticks of one symbol, given in order, into bars of ``kind``, continuing ``bar``;
    returns the bars that closed and the bar left open."""
    if kind not in KINDS:
        raise ValueError(f"unknown bar kind {kind!r}")
    if not threshold > 0:
        raise ValueError(f"a threshold must be positive, not {threshold!r}")
    dollar = price * volume  # each tick's, as mlfinpy computes it
    measure = {"volume": volume, "dollar": dollar}.get(kind)
    closed: list[ActivityBar] = []
    n = len(price)
    start = 0
    stretch = 64  # ticks looked at for the next close; grows with the bars
    while start < n:
        end = _closing_tick(kind, threshold, bar, measure, start, n, stretch)
        last = n - 1 if end is None else end
        bar = _add(bar, ts_ms, price, volume, dollar, start, last)
        if end is None:
            break
        closed.append(_close(symbol, kind, threshold, bar))
        stretch = max(64, 2 * (end + 1 - start))
        bar = OpenBar(number=bar.number + 1)
        start = end + 1
    return closed, bar


def _closing_tick(
    kind: str,
    threshold: float,
    bar: OpenBar,
    measure: Floats | None,
    start: int,
    n: int,
    stretch: int,
) -> int | None:
    """The index of the tick at or after ``start`` that closes ``bar``, or None."""
    if measure is None:  # tick bars: the count reaches the threshold
        needed = max(1, int(np.ceil(threshold)) - bar.ticks)
        end = start + needed - 1
        return end if end < n else None
    carried = bar.volume if kind == "volume" else bar.dollar
    lo = start
    while lo < n:
        hi = min(n, lo + stretch)
        # The running sum from the bar's first tick, added in order: carried, then each tick.
        sums = np.cumsum(np.concatenate(([carried], measure[lo:hi])))[1:]
        at = int(np.searchsorted(sums, threshold, side="left"))  # sums never decrease
        if at < hi - lo:
            return lo + at
        carried = float(sums[-1])
        lo = hi
        stretch *= 2
    return None


def _add(
    bar: OpenBar,
    ts_ms: Ints,
    price: Floats,
    volume: Floats,
    dollar: Floats,
    first: int,
    last: int,
) -> OpenBar:
    """``bar`` with the ticks ``first..last`` (inclusive) added, in order."""
    if last < first:
        return bar
    span = slice(first, last + 1)
    high = float(price[span].max())
    low = float(price[span].min())
    fresh = bar.ticks == 0
    return replace(
        bar,
        ticks=bar.ticks + (last - first + 1),
        volume=float(np.cumsum(np.concatenate(([bar.volume], volume[span])))[-1]),
        dollar=float(np.cumsum(np.concatenate(([bar.dollar], dollar[span])))[-1]),
        open=float(price[first]) if fresh else bar.open,
        high=high if fresh else max(bar.high, high),
        low=low if fresh else min(bar.low, low),
        close=float(price[last]),
        first_ms=int(ts_ms[first]) if fresh else bar.first_ms,
        last_ms=int(ts_ms[last]),
    )


def _close(symbol: str, kind: str, threshold: float, bar: OpenBar) -> ActivityBar:
    return ActivityBar(
        symbol=symbol,
        kind=kind,
        number=bar.number + 1,
        threshold=threshold,
        first_ms=bar.first_ms,
        last_ms=bar.last_ms,
        open=bar.open,
        high=bar.high,
        low=bar.low,
        close=bar.close,
        volume=bar.volume,
        dollar=bar.dollar,
        ticks=bar.ticks,
    )


def bar_row(bar: ActivityBar) -> dict[str, Any]:
    """A closed bar as a row of its table (lake/<kind>_bars; ``ACTIVITY_BAR_COLUMNS``)."""
    last = _utc(bar.last_ms)
    return {
        "symbol": bar.symbol,
        "number": bar.number,
        "first_time": _utc(bar.first_ms),
        "last_time": last,
        "open": bar.open,
        "high": bar.high,
        "low": bar.low,
        "close": bar.close,
        "volume": bar.volume,
        "dollar_value": bar.dollar,
        "trade_count": bar.ticks,
        "vwap": bar.vwap,
        "threshold": bar.threshold,
        "date": last.strftime("%Y-%m-%d"),
    }


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


OpenBars = dict[str, dict[str, OpenBar]]  # kind -> symbol -> its open bar


@dataclass(frozen=True)
class OrderedTicks:
    """Ticks in cutting order: by symbol, then (event time, seq, event_id). ``runs`` gives each
    symbol's [start, end) in the arrays."""

    runs: list[tuple[str, int, int]]
    ts_ms: Ints
    price: Floats
    volume: Floats


class NeedsEventIdsError(Exception):
    """Ticks tie on symbol, time and seq, and came without event_ids to order them by."""


def in_order(ticks: pa.Table) -> OrderedTicks:
    """Put ticks (columns symbol, ts_epoch_ms, seq, price, volume, and event_id if they may tie;
    any order) in cutting order. One numpy sort on (symbol, event time, seq); event_ids are
    compared only where those three tie (rare: two ticks of one symbol and instant with the
    same seq come from two producers), so strings are neither sorted nor moved in bulk. Ties
    without an event_id column raise :class:`NeedsEventIdsError`: read them, and call again."""
    if ticks.num_rows == 0:
        empty = np.array([], dtype=np.float64)
        return OrderedTicks([], np.array([], dtype=np.int64), empty, empty)
    encoded = pc.dictionary_encode(ticks["symbol"]).combine_chunks()
    names = encoded.dictionary.to_pylist()
    rank = np.empty(len(names), dtype=np.int64)
    rank[sorted(range(len(names)), key=names.__getitem__)] = np.arange(len(names))
    codes = rank[encoded.indices.to_numpy()]
    ts = ticks["ts_epoch_ms"].to_numpy()
    seq = ticks["seq"].to_numpy()
    order = np.lexsort((seq, ts, codes))
    c, t, q = codes[order], ts[order], seq[order]
    tied = np.flatnonzero((c[1:] == c[:-1]) & (t[1:] == t[:-1]) & (q[1:] == q[:-1]))
    if len(tied):
        if "event_id" not in ticks.column_names:
            raise NeedsEventIdsError
        event_ids = ticks["event_id"]
        # Each run of tied neighbours [i, j] is put in event_id order.
        breaks = np.flatnonzero(np.diff(tied) > 1)
        for first, last in zip(
            tied[np.concatenate(([0], breaks + 1))],
            tied[np.append(breaks, len(tied) - 1)],
            strict=True,
        ):
            span = order[first : last + 2]
            ids = event_ids.take(pa.array(span)).to_pylist()
            order[first : last + 2] = span[np.argsort(np.array(ids, dtype=object), kind="stable")]
        c = codes[order]
    starts = np.flatnonzero(np.concatenate(([True], c[1:] != c[:-1])))
    ends = np.append(starts[1:], len(c))
    by_rank = sorted(names)
    runs = [(by_rank[c[lo]], int(lo), int(hi)) for lo, hi in zip(starts, ends, strict=True)]
    price = ticks["price"].to_numpy()[order]
    volume = ticks["volume"].to_numpy()[order]
    return OrderedTicks(runs, t if not len(tied) else ts[order], price, volume)


def cut_ticks(
    ticks: OrderedTicks, thresholds: Mapping[str, Thresholds], open_bars: OpenBars
) -> tuple[list[ActivityBar], OpenBars]:
    """Cut ticks in cutting order (:func:`in_order`) into the bars of each kind in
    ``thresholds`` (a symbol without a threshold of a kind gets none), continuing
    ``open_bars``; returns the closed bars (by kind, symbol and number) and the open ones."""
    result: OpenBars = {kind: dict(open_bars.get(kind, {})) for kind in thresholds}
    closed: list[ActivityBar] = []
    for kind, by_symbol in thresholds.items():
        for symbol, lo, hi in ticks.runs:
            threshold = by_symbol.of(symbol)
            if threshold is None:
                continue
            bar = result[kind].get(symbol, OpenBar())
            done, result[kind][symbol] = cut(
                symbol,
                kind,
                threshold,
                bar,
                ticks.ts_ms[lo:hi],
                ticks.price[lo:hi],
                ticks.volume[lo:hi],
            )
            closed.extend(done)
    return closed, result
