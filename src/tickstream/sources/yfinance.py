"""Live quotes from Yahoo Finance through yfinance (``pip install tickstream[live]``).

One batched quote request per poll for all symbols (Yahoo's v7 quote endpoint, through
yfinance's session, which handles cookies and the crumb). A tick is emitted only when a
symbol's quote changed; its event time is the exchange's quote time
(``regularMarketTime``) where Yahoo gives one, and its volume is the growth of the
day's cumulative volume since the previous quote (0 for the first quote seen).
Errors and rate limits back off exponentially, up to five minutes.

Only :class:`YahooQuotes` touches yfinance; the source takes any ``fetch`` callable,
which is how the tests replay recorded responses.
"""

from __future__ import annotations

import hashlib
import math
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from tickstream.errors import TickstreamError
from tickstream.sources.base import IDLE_YIELD_S, TickSource, now_ms
from tickstream.ticks.columnar import TickChunk

QuoteFetch = Callable[[Sequence[str]], dict[str, Any]]
MAX_BACKOFF_S = 300.0
QUOTE_URL = "https://query1.finance.yahoo.com/v7/finance/quote"


class YFinanceUnavailable(TickstreamError):
    """yfinance is not installed, or Yahoo does not answer."""


@dataclass(frozen=True)
class Quote:
    symbol: str
    price: float
    time_ms: int | None
    day_volume: float | None


def parse_quotes(response: dict[str, Any]) -> list[Quote]:
    """The usable quotes of a v7 quote response; entries without a positive price are skipped."""
    body = response.get("quoteResponse") or {}
    if body.get("error"):
        raise YFinanceUnavailable(f"Yahoo answered with an error: {body['error']}")
    quotes = []
    for item in body.get("result") or []:
        symbol = str(item.get("symbol", "")).upper()
        price = item.get("regularMarketPrice")
        if (
            not symbol
            or not isinstance(price, int | float)
            or not math.isfinite(price)
            or price <= 0
        ):
            continue
        seconds = item.get("regularMarketTime")
        volume = item.get("regularMarketVolume")
        quotes.append(
            Quote(
                symbol=symbol,
                price=float(price),
                time_ms=int(seconds) * 1000 if isinstance(seconds, int | float) else None,
                day_volume=float(volume) if isinstance(volume, int | float) else None,
            )
        )
    return quotes


class YahooQuotes:
    """The one place that talks to Yahoo: one request for all symbols."""

    def __init__(self) -> None:
        try:
            from yfinance.data import YfData
        except ImportError:
            raise YFinanceUnavailable(
                "yfinance is not installed", "pip install 'tickstream[live]'"
            ) from None
        self._data = YfData()

    def __call__(self, symbols: Sequence[str]) -> dict[str, Any]:
        params = {"symbols": ",".join(symbols), "formatted": "false"}
        result: dict[str, Any] = self._data.get_raw_json(QUOTE_URL, params=params, timeout=15)
        return result


class YFinanceSource(TickSource):
    name = "yfinance"
    live = True

    def __init__(
        self,
        symbols: Sequence[str],
        *,
        poll_s: float = 5.0,
        fetch: QuoteFetch | None = None,
        notify: Callable[[str], None] = print,
        count: int | None = None,
        duration_s: float | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        super().__init__(stop)
        self.symbols = list(symbols)
        self.poll_s = poll_s
        self.fetch = fetch or YahooQuotes()
        self.notify = notify
        self.count = count
        self.duration_s = duration_s
        self._last: dict[str, Quote] = {}
        self._seq: dict[str, int] = {}
        self._emitted = 0
        self._failures = 0
        self.polls = 0

    def probe(self) -> None:
        """One request now; raise YFinanceUnavailable if Yahoo cannot be reached."""
        try:
            parse_quotes(self.fetch(self.symbols))
        except YFinanceUnavailable:
            raise
        except Exception as exc:
            raise YFinanceUnavailable(f"Yahoo Finance is unreachable: {exc}") from None

    def clock_ms(self) -> int | None:
        return now_ms()

    def backoff_s(self) -> float:
        """Exponential, with jitter: poll, 2x, 4x ... up to five minutes."""
        base = min(self.poll_s * 2.0 ** min(self._failures, 16), MAX_BACKOFF_S)
        jitter: float = random.uniform(0.8, 1.0)  # noqa: S311 - jitter, not cryptography
        return base * jitter

    def chunks(self) -> Iterator[TickChunk]:
        started = time.monotonic()
        next_poll = started
        while not self.stop.is_set():
            if self.duration_s is not None and time.monotonic() - started >= self.duration_s:
                return
            if self.count is not None and self._emitted >= self.count:
                return
            wait = next_poll - time.monotonic()
            if wait > 0:
                self.wait(min(wait, IDLE_YIELD_S))
                yield TickChunk.empty(self.name)
                continue
            try:
                quotes = parse_quotes(self.fetch(self.symbols))
            except Exception as exc:  # network, HTTP 429, a changed response: back off and retry
                self._failures += 1
                delay = self.backoff_s()
                self.notify(f"yfinance poll failed ({exc}); retrying in {delay:.0f}s")
                next_poll = time.monotonic() + delay
                continue
            self.polls += 1
            if self._failures:
                self.notify("yfinance polls succeed again")
            self._failures = 0
            next_poll = time.monotonic() + self.poll_s
            chunk = self._changed(quotes)
            if len(chunk):
                yield chunk

    def _changed(self, quotes: list[Quote]) -> TickChunk:
        wanted = set(self.symbols)
        rows: list[tuple[str, int, float, float, int, str]] = []
        for q in quotes:
            if q.symbol not in wanted:
                continue
            before = self._last.get(q.symbol)
            if before is not None and (before.price, before.time_ms) == (q.price, q.time_ms):
                continue
            if self.count is not None and self._emitted + len(rows) >= self.count:
                break
            volume = 0.0
            if before is not None and q.day_volume is not None and before.day_volume is not None:
                volume = max(0.0, q.day_volume - before.day_volume)
            self._last[q.symbol] = q
            seq = self._seq.get(q.symbol, 0)
            self._seq[q.symbol] = seq + 1
            ts = q.time_ms if q.time_ms is not None else now_ms()
            identity = f"yfinance\x1f{q.symbol}\x1f{q.time_ms}\x1f{q.price!r}\x1f{q.day_volume!r}"
            event_id = hashlib.sha256(identity.encode()).hexdigest()[:24]
            rows.append((q.symbol, ts, q.price, volume, seq, event_id))
        self._emitted += len(rows)
        return TickChunk.from_rows(self.name, rows)
