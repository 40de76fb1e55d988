"""Simulated markets: per-symbol geometric Brownian motion.

Prices follow GBM in trading time from realistic starting prices, are rounded to the
cent and stay positive; trade sizes are heavy-tailed (Pareto). With ``seed`` the
sequence of (symbol, price, volume) is reproducible whatever the pacing: each of
the three random streams is drawn in order, and chunk boundaries do not change it.
Event time is the wall clock by default, or a synthetic clock from ``start_ms``.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from tickstream.sources.base import IDLE_YIELD_S, TickSource, now_ms
from tickstream.ticks.columnar import TickChunk, id_prefix

# Rough levels of late 2024 and annualised volatilities; any other symbol starts at 100.
DEFAULT_START_PRICES: Mapping[str, float] = {
    "AAPL": 230.0,
    "MSFT": 420.0,
    "GOOG": 170.0,
    "AMZN": 190.0,
    "TSLA": 250.0,
}
DEFAULT_VOLATILITY: Mapping[str, float] = {
    "AAPL": 0.25,
    "MSFT": 0.22,
    "GOOG": 0.28,
    "AMZN": 0.30,
    "TSLA": 0.55,
}
FALLBACK_PRICE = 100.0
FALLBACK_VOLATILITY = 0.30
TRADING_SECONDS_PER_YEAR = 252 * 6.5 * 3600
MAX_CHUNK = 5000
PACE_S = 0.01  # at a rate: the ticks of 10 ms leave together (see chunks)
MIN_PRICE = 0.01


class SimulateSource(TickSource):
    name = "simulate"

    def __init__(
        self,
        symbols: Sequence[str],
        rate: float,
        *,
        seed: int | None = None,
        count: int | None = None,
        duration_s: float | None = None,
        start_ms: int | None = None,
        start_prices: Mapping[str, float] | None = None,
        drift: float = 0.0,
        step_ms: float = 1.0,
        stop: threading.Event | None = None,
    ) -> None:
        super().__init__(stop)
        if not symbols:
            raise ValueError("simulate needs at least one symbol")
        self.symbols = list(symbols)
        self.rate = rate
        self.count = count
        self.duration_s = duration_s
        self.synthetic_clock = start_ms is not None
        # On a synthetic clock as fast as possible, the event time between two ticks (a
        # benchmark packs many ticks into a few open windows with a step below 1 ms).
        self.step_ms = step_ms
        self.start_ms = start_ms if start_ms is not None else now_ms()
        prices = {**DEFAULT_START_PRICES, **(start_prices or {})}
        self._log_price = np.log([prices.get(s, FALLBACK_PRICE) for s in self.symbols])
        sigma = np.array([DEFAULT_VOLATILITY.get(s, FALLBACK_VOLATILITY) for s in self.symbols])
        # Nominal time between two ticks of one symbol: the price path depends on the seed only.
        per_symbol_rate = (rate if rate > 0 else 1000.0) / len(self.symbols)
        dt = (1.0 / per_symbol_rate) / TRADING_SECONDS_PER_YEAR
        self._step_sd = sigma * math.sqrt(dt)
        self._step_mean = (drift - sigma**2 / 2) * dt
        seeds = np.random.SeedSequence(seed).spawn(3)
        self._pick, self._shock, self._size = (np.random.default_rng(s) for s in seeds)
        identity = f"seed={seed};start={self.start_ms}" if seed is not None else uuid.uuid4().hex
        self._prefix = [id_prefix(self.name, identity, s) for s in self.symbols]
        self._seq = [0] * len(self.symbols)
        self._emitted = 0
        self._last_ts: int | None = None
        self._t0 = time.monotonic()

    @property
    def total(self) -> int | None:
        return self.count

    def clock_ms(self) -> int | None:
        if self.rate > 0:
            # Held back to the next tick's time: a producer behind its pace must not send a
            # heartbeat ahead of ticks still to come (they would be late).
            paced = self.start_ms + int((time.monotonic() - self._t0) * 1000)
            return min(paced, self._tick_ts(self._emitted))
        return self._last_ts

    def chunks(self) -> Iterator[TickChunk]:
        self._t0 = time.monotonic()
        while not self.stop.is_set():
            elapsed = time.monotonic() - self._t0
            if self.duration_s is not None and elapsed >= self.duration_s:
                return
            remaining = None if self.count is None else self.count - self._emitted
            if remaining is not None and remaining <= 0:
                return
            if self.rate > 0:
                due = int(elapsed * self.rate) + 1 - self._emitted
                # Ticks go out in chunks of PACE_S worth (or one), not each as it falls due:
                # a chunk costs a fixed ~0.1 ms of numpy and Python, which at tens of thousands
                # of ticks a second took most of a core. Event times do not change (they follow
                # the tick's index), a tick leaves at most PACE_S after its time.
                least = max(1, int(self.rate * PACE_S))
                if remaining is not None:
                    least = min(least, remaining)
                if due < least:
                    wait = ((self._emitted + least - 1) / self.rate) - elapsed
                    self.wait(min(wait, IDLE_YIELD_S))
                    yield TickChunk.empty(self.name)
                    continue
            else:
                due = MAX_CHUNK
            n = min(due, MAX_CHUNK, remaining if remaining is not None else MAX_CHUNK)
            yield self.generate(n)

    def _tick_ts(self, index: int) -> int:
        """The event time of tick ``index`` at a rate."""
        return int(self._timestamps_at(np.array([index], dtype=np.int64))[0])

    def _timestamps_at(self, index: np.ndarray) -> np.ndarray:
        return self.start_ms + (index * 1000 / self.rate).astype(np.int64)

    def _timestamps(self, n: int) -> np.ndarray:
        index = np.arange(self._emitted, self._emitted + n, dtype=np.int64)
        if self.rate > 0:
            return self._timestamps_at(index)
        if self.synthetic_clock:
            # As fast as possible: one tick per millisecond, or per ``step_ms``.
            if self.step_ms == 1.0:
                return self.start_ms + index
            steps: np.ndarray = np.floor(index * self.step_ms).astype(np.int64)
            return self.start_ms + steps
        return np.full(n, now_ms(), dtype=np.int64)

    def generate(self, n: int) -> TickChunk:
        """The next ``n`` ticks, whatever the pacing (how a test regenerates a run)."""
        k = len(self.symbols)
        which = self._pick.integers(0, k, n)
        shocks = self._shock.standard_normal(n)
        sizes = np.minimum(np.floor(self._size.pareto(1.5, n) * 20.0) + 1.0, 1_000_000.0)
        log_price = np.empty(n)
        seq = np.empty(n, dtype=np.int64)
        for s in range(k):
            mask = which == s
            m = int(mask.sum())
            if m == 0:
                continue
            path = self._log_price[s] + np.cumsum(
                self._step_mean[s] + self._step_sd[s] * shocks[mask]
            )
            log_price[mask] = path
            self._log_price[s] = path[-1]
            seq[mask] = np.arange(self._seq[s], self._seq[s] + m)
            self._seq[s] += m
        prices = np.maximum(np.round(np.exp(log_price), 2), MIN_PRICE)
        ts = self._timestamps(n)
        self._emitted += n
        self._last_ts = int(ts[-1])
        symbols = [self.symbols[i] for i in which.tolist()]
        seqs = seq.tolist()
        prefixes = self._prefix
        event_ids = [f"{prefixes[i]}-{q}" for i, q in zip(which.tolist(), seqs, strict=True)]
        return TickChunk(self.name, symbols, ts, prices, sizes, seqs, event_ids)
