"""Live quotes streamed from Yahoo Finance over its WebSocket (``pip install tickstream[live]``).

yfinance's public streaming client (``yfinance.WebSocket``) subscribes to the symbols and
decodes each pushed message (a base64 protobuf, ``PricingData``) into a dict. This source
turns those dicts into ticks:

- **event time** is the exchange's time of the quote (the message's ``time``, epoch ms);
- **volume** is the trade size (``last_size``) where Yahoo sends it, otherwise the growth of
  the day's cumulative volume (``day_volume``) since the symbol's previous message;
- **event_id** is a hash of the message's own fields (symbol, time, price, day volume, size),
  so a quote sent again (after a reconnect, say) is a duplicate the job drops, not a new tick;
  the source also skips the quotes it already gave (the last 1,000 of each symbol);
- **seq** is the quote's time in ms x 1000 plus its rank among the symbol's quotes of that
  millisecond, so it too is the same when a quote comes again.

After a restart of the producer, a quote Yahoo sends again has the same event_id and content
when it carries its trade size; without one, its volume (the day volume's growth since the
previous message) may differ, and the job then records an ``event_id_conflict`` reject.

A message without a symbol, a positive finite price or a time is reported in one line and
counted (``bad_rows``), never silently dropped. The connection runs in a thread of its own;
when it drops, the source reconnects with exponential backoff and jitter (1 s up to 60 s).

Only :class:`YahooStream` touches yfinance; the source takes any ``connect`` callable, which
is how the tests stream recorded messages from a local WebSocket server.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import random
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tickstream.sources.base import IDLE_YIELD_S, TickSource
from tickstream.sources.yfinance import YFinanceUnavailable
from tickstream.ticks.columnar import TickChunk

YAHOO_STREAM_URL = "wss://streamer.finance.yahoo.com/?version=2"
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 60.0
REMEMBERED = 1000  # quotes per symbol whose repeat is skipped at the source

BadMessage = Callable[[str, str], None]  # (where, reason)


class Stream(Protocol):
    """What the source needs of a streaming client (yfinance.WebSocket's public methods)."""

    def subscribe(self, symbols: list[str]) -> None: ...
    def listen(self, message_handler: Callable[[dict[str, Any]], None]) -> None: ...
    def close(self) -> None: ...


class BadQuote(ValueError):
    """A streamed message that is not a usable quote."""


@dataclass(frozen=True)
class StreamQuote:
    symbol: str
    price: float
    time_ms: int
    day_volume: float | None
    last_size: float | None

    @property
    def identity(self) -> str:
        return (
            f"yfinance\x1f{self.symbol}\x1f{self.time_ms}\x1f{self.price!r}"
            f"\x1f{self.day_volume!r}\x1f{self.last_size!r}"
        )

    @property
    def event_id(self) -> str:
        return hashlib.sha256(self.identity.encode()).hexdigest()[:24]


def _number(message: dict[str, Any], field: str) -> float | None:
    """A numeric field: protobuf's JSON mapping gives 64-bit integers as strings."""
    value = message.get(field)
    if value is None:
        return None
    if isinstance(value, bool):
        raise BadQuote(f"{field} is not a number: {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BadQuote(f"{field} is not a number: {value!r}") from None
    if not math.isfinite(number):
        raise BadQuote(f"{field} is not finite: {value!r}")
    return number


def parse_message(message: dict[str, Any]) -> StreamQuote:
    """One decoded message as a quote; BadQuote says what is wrong with it."""
    if not isinstance(message, dict):
        raise BadQuote(f"not a decoded message: {message!r:.80}")
    if "error" in message:
        raise BadQuote(f"yfinance could not decode it: {message['error']}")
    symbol = message.get("id")
    if not isinstance(symbol, str) or not symbol.strip():
        raise BadQuote("no symbol (id)")
    price = _number(message, "price")
    if price is None or price <= 0:
        raise BadQuote(f"no positive price for {symbol}: {message.get('price')!r}")
    stamp = _number(message, "time")
    if stamp is None or stamp <= 0:
        raise BadQuote(f"no exchange time for {symbol}")
    day_volume = _number(message, "day_volume")
    last_size = _number(message, "last_size")
    return StreamQuote(
        symbol=symbol.strip().upper(),
        price=price,
        time_ms=int(stamp),
        day_volume=day_volume if day_volume is not None and day_volume >= 0 else None,
        last_size=last_size if last_size is not None and last_size > 0 else None,
    )


class YahooStream:
    """The one place that talks to Yahoo's stream: yfinance's public WebSocket client."""

    def __init__(self, url: str = YAHOO_STREAM_URL) -> None:
        try:
            import yfinance
        except ImportError:
            raise YFinanceUnavailable(
                "yfinance is not installed", "pip install 'tickstream[live]'"
            ) from None
        if not hasattr(yfinance, "WebSocket"):
            raise YFinanceUnavailable(
                f"yfinance {getattr(yfinance, '__version__', '?')} has no WebSocket client",
                "upgrade it (pip install -U 'tickstream[live]'), or set YFINANCE_MODE=poll",
            )
        self._ws = yfinance.WebSocket(url=url, verbose=False)

    def subscribe(self, symbols: list[str]) -> None:
        self._ws.subscribe(symbols)

    def listen(self, message_handler: Callable[[dict[str, Any]], None]) -> None:
        self._ws.listen(message_handler)

    def close(self) -> None:
        self._ws.close()


class _LastError(logging.Handler):
    """Keeps the last error yfinance logged (it logs, then ends ``listen``), and swallows its
    stack traces: the source says what happened in one line."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.last: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if not message.startswith("Failed to decode"):  # that one reaches the handler too
            self.last = message


class YFinanceStreamSource(TickSource):
    name = "yfinance"
    live = True

    def __init__(
        self,
        symbols: Sequence[str],
        *,
        connect: Callable[[], Stream] | None = None,
        notify: Callable[[str], None] = print,
        report_bad: BadMessage | None = None,
        count: int | None = None,
        duration_s: float | None = None,
        stop: threading.Event | None = None,
        first_backoff_s: float = FIRST_BACKOFF_S,
    ) -> None:
        super().__init__(stop)
        self.symbols = [s.upper() for s in symbols]
        self.connect = connect or YahooStream
        self.notify = notify
        self.report_bad = report_bad or (lambda where, reason: notify(f"{where}: {reason}"))
        self.count = count
        self.duration_s = duration_s
        self.first_backoff_s = first_backoff_s
        self._inbox: deque[dict[str, Any]] = deque()
        self._wake = threading.Event()
        self._closing = threading.Event()  # the source is done (the producer may go on)
        self._stream: Stream | None = None
        self._thread: threading.Thread | None = None
        self._failures = 0
        self._messages = 0
        self._bad = 0
        self._emitted = 0
        self._same_ms: dict[str, tuple[int, int]] = {}
        self._day_volume: dict[str, float] = {}
        self._given: dict[str, OrderedDict[str, None]] = {}
        self._clock: tuple[int, float] | None = None  # (newest exchange time, when it came)
        self.connections = 0
        self.repeats = 0  # quotes sent again by Yahoo, skipped

    @property
    def bad_rows(self) -> int:
        return self._bad

    def clock_ms(self) -> int | None:
        """The newest exchange time seen, moved on by the wall clock since it came: a feed
        delayed by Yahoo is not marked late by its own heartbeats."""
        if self._clock is None:
            return None
        newest, seen = self._clock
        return newest + int((time.monotonic() - seen) * 1000)

    def backoff_s(self) -> float:
        base = min(self.first_backoff_s * 2.0 ** min(self._failures - 1, 16), MAX_BACKOFF_S)
        jitter: float = random.uniform(0.8, 1.0)  # noqa: S311 - jitter, not cryptography
        return base * jitter

    # --- the connection's thread ------------------------------------------------------------

    def _on_message(self, message: dict[str, Any]) -> None:
        self._messages += 1
        self._inbox.append(message)
        self._wake.set()

    def _listen(self) -> None:
        errors = _LastError()
        yf_log = logging.getLogger("yfinance")
        yf_log.addHandler(errors)
        yf_log.propagate = False
        try:
            while not self._done():
                before = self._messages
                reason = "the server closed the connection"
                try:
                    stream = self.connect()
                    self._stream = stream
                    stream.subscribe(list(self.symbols))
                    self.connections += 1
                    if self.connections > 1:
                        self.notify("yfinance stream connected again")
                    stream.listen(self._on_message)
                except Exception as exc:  # network, TLS, a refused handshake
                    reason = f"{type(exc).__name__}: {exc}"
                if errors.last:
                    reason, errors.last = errors.last, None
                if self._done():
                    return
                self._failures = 1 if self._messages > before else self._failures + 1
                delay = self.backoff_s()
                self.notify(f"yfinance stream lost ({reason}); reconnecting in {delay:.1f}s")
                until = time.monotonic() + delay
                while not self._done() and time.monotonic() < until:
                    self._closing.wait(min(0.2, until - time.monotonic()))
        finally:
            yf_log.removeHandler(errors)
            yf_log.propagate = True

    def _done(self) -> bool:
        return self.stop.is_set() or self._closing.is_set()

    def close(self) -> None:
        self._closing.set()
        stream = self._stream
        if stream is not None:
            with contextlib.suppress(Exception):  # a connection that already went
                stream.close()

    # --- the producer's thread ----------------------------------------------------------------

    def chunks(self) -> Iterator[TickChunk]:
        self._thread = threading.Thread(target=self._listen, name="yfinance-stream", daemon=True)
        self._thread.start()
        started = time.monotonic()
        try:
            while not self.stop.is_set():
                if self.duration_s is not None and time.monotonic() - started >= self.duration_s:
                    return
                if self.count is not None and self._emitted >= self.count:
                    return
                self._wake.wait(IDLE_YIELD_S)
                self._wake.clear()
                messages = []
                while self._inbox:
                    messages.append(self._inbox.popleft())
                yield self.to_chunk(messages)
        finally:
            self.close()

    def to_chunk(self, messages: list[dict[str, Any]]) -> TickChunk:
        """The new quotes among ``messages`` as ticks (bad ones reported, repeats skipped)."""
        rows: list[tuple[str, int, float, float, int, str]] = []
        wanted = set(self.symbols)
        for message in messages:
            if self.count is not None and self._emitted + len(rows) >= self.count:
                break
            try:
                quote = parse_message(message)
            except BadQuote as exc:
                self._bad += 1
                self.report_bad(f"yfinance message {_shown(message)}", str(exc))
                continue
            if quote.symbol not in wanted:
                continue
            event_id = quote.event_id
            given = self._given.setdefault(quote.symbol, OrderedDict())
            if event_id in given:
                self.repeats += 1
                continue
            given[event_id] = None
            if len(given) > REMEMBERED:
                given.popitem(last=False)
            rows.append(self._row(quote, event_id))
        self._emitted += len(rows)
        if not rows:
            return TickChunk.empty(self.name)
        newest = max(r[1] for r in rows)
        if self._clock is None or newest > self._clock[0]:
            self._clock = (newest, time.monotonic())
        return TickChunk.from_rows(self.name, rows)

    def _row(self, quote: StreamQuote, event_id: str) -> tuple[str, int, float, float, int, str]:
        volume = 0.0
        before = self._day_volume.get(quote.symbol)
        if quote.last_size is not None:
            volume = quote.last_size
        elif quote.day_volume is not None and before is not None:
            volume = max(0.0, quote.day_volume - before)
        if quote.day_volume is not None and (before is None or quote.day_volume > before):
            self._day_volume[quote.symbol] = quote.day_volume
        # seq from the quote's own time (and its rank among this symbol's quotes of the same
        # millisecond): a quote sent again after a restart has the same content, not a new seq.
        last_ms, rank = self._same_ms.get(quote.symbol, (-1, 0))
        rank = rank + 1 if quote.time_ms == last_ms else 0
        self._same_ms[quote.symbol] = (quote.time_ms, rank)
        seq = quote.time_ms * 1000 + min(rank, 999)
        return (quote.symbol, quote.time_ms, quote.price, volume, seq, event_id)

    def probe(self, timeout_s: float = 10.0) -> None:
        """Connect once and subscribe; raise YFinanceUnavailable if that fails.

        The client is built first, outside the timeout: building it imports yfinance (pandas,
        curl_cffi, protobuf ...), which on a busy machine took longer than Yahoo's answer is
        given, and the stream was then taken for unavailable.
        """
        stream = self.connect()  # YFinanceUnavailable if yfinance is missing
        result: list[BaseException] = []
        answered = threading.Event()

        def attempt() -> None:
            try:
                stream.subscribe(list(self.symbols))
            except BaseException as exc:
                result.append(exc)
            finally:
                answered.set()
            # Not waited for: the closing handshake may take websockets' own close timeout
            # (10 s), which made a healthy stream miss the probe's.
            with contextlib.suppress(Exception):
                stream.close()

        threading.Thread(target=attempt, daemon=True).start()
        if not answered.wait(timeout_s):
            raise YFinanceUnavailable(f"Yahoo's stream did not answer within {timeout_s:g}s")
        if result:
            exc = result[0]
            if isinstance(exc, YFinanceUnavailable):
                raise exc
            raise YFinanceUnavailable(f"Yahoo's stream is unreachable: {exc}")


def _shown(message: Any) -> str:
    """A message in a line of its own: its repr, cut at 120 characters."""
    text = repr(message)
    return text if len(text) <= 120 else text[:117] + "..."
