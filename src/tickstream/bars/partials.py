"""Partial aggregates of the open windows: the whole state a bar needs, merged batch by batch.

A bar of (symbol, window) is a fold over its ticks that can be split anywhere: the open and the
close are the prices of the smallest and largest (event time, seq, event_id), high/low are a
max/min, volume, sum(price * volume), sum(price) and the count are sums. So each micro-batch reduces
its accepted ticks to one :class:`Partial` per (symbol, window) in Spark, and the driver merges
it into the partial of the batches before: the state is one small record per open window, not
the ticks. Pure Python, no Spark: tested directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

# The order of a tick inside its bar: (event time, seq, event_id), never the arrival order.
TickOrder = tuple[int, int, str]
Key = tuple[str, int]  # (symbol, window_start_ms)


@dataclass(frozen=True)
class Partial:
    symbol: str
    window_start_ms: int
    first: TickOrder
    open: float
    last: TickOrder
    close: float
    high: float
    low: float
    volume: float
    pv: float  # sum(price * volume)
    count: int
    price_sum: float

    @property
    def key(self) -> Key:
        return (self.symbol, self.window_start_ms)

    def merge(self, other: Partial) -> Partial:
        """The partial of both sets of ticks (their event_ids are distinct)."""
        first, open_ = (
            (self.first, self.open) if self.first <= other.first else (other.first, other.open)
        )
        last, close = (
            (self.last, self.close) if self.last >= other.last else (other.last, other.close)
        )
        return Partial(
            symbol=self.symbol,
            window_start_ms=self.window_start_ms,
            first=first,
            open=open_,
            last=last,
            close=close,
            high=max(self.high, other.high),
            low=min(self.low, other.low),
            volume=self.volume + other.volume,
            pv=self.pv + other.pv,
            count=self.count + other.count,
            price_sum=self.price_sum + other.price_sum,
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> Partial:
        values = dict(data)
        values["first"] = tuple(values["first"])
        values["last"] = tuple(values["last"])
        return Partial(**values)


def merge_into(state: dict[Key, Partial], batch: Iterable[Partial]) -> dict[Key, Partial]:
    """``state`` with the batch's partials merged in (a new dict; ``state`` is left as it is)."""
    merged = dict(state)
    for part in batch:
        known = merged.get(part.key)
        merged[part.key] = part if known is None else known.merge(part)
    return merged


def split_closed(
    state: Mapping[Key, Partial], watermark_ms: int, window_ms: int
) -> tuple[list[Partial], dict[Key, Partial]]:
    """The windows whose end is at or behind the watermark (closed, in bar order), and the rest."""
    closed = sorted(
        (p for p in state.values() if p.window_start_ms + window_ms <= watermark_ms),
        key=lambda p: (p.window_start_ms, p.symbol),
    )
    remaining = {k: p for k, p in state.items() if p.window_start_ms + window_ms > watermark_ms}
    return closed, remaining


def to_bar(p: Partial, window_ms: int) -> dict[str, Any]:
    """The bar of a closed window, in the bar table's columns (see ``BAR_COLUMNS``)."""
    start = _utc(p.window_start_ms)
    return {
        "symbol": p.symbol,
        "window_start": start,
        "window_end": _utc(p.window_start_ms + window_ms),
        "open": p.open,
        "high": p.high,
        "low": p.low,
        "close": p.close,
        "volume": p.volume,
        "vwap": p.pv / p.volume if p.volume > 0 else None,
        "trade_count": p.count,
        "price_avg": p.price_sum / p.count,
        "pct_change": (p.close - p.open) / p.open * 100.0,
        "date": start.strftime("%Y-%m-%d"),
    }


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _utc(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def open_ticks(state: Mapping[Key, Partial]) -> int:
    """How many accepted ticks the open windows hold."""
    return sum(p.count for p in state.values())
