"""The live source against recorded responses (no network in tests)."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from tickstream.config import load_settings
from tickstream.sources.factory import build_source
from tickstream.sources.simulate import SimulateSource
from tickstream.sources.yfinance import (
    YahooQuotes,
    YFinanceSource,
    YFinanceUnavailable,
    parse_quotes,
)
from tickstream.ticks.schema import Tick

RECORDED = Path(__file__).resolve().parents[1] / "data" / "yfinance"


def recorded(name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((RECORDED / name).read_text())
    return result


class Replayer:
    """A fetch that answers with recorded responses (or raises), one per poll."""

    def __init__(self, *answers: dict[str, Any] | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[list[str]] = []

    def __call__(self, symbols: Sequence[str]) -> dict[str, Any]:
        self.requests.append(list(symbols))
        answer = self.answers.pop(0) if self.answers else recorded("poll_3.json")
        if isinstance(answer, Exception):
            raise answer
        return answer


def collect(source: YFinanceSource, polls: int) -> list[Tick]:
    ticks: list[Tick] = []
    for chunk in source.chunks():
        ticks += chunk.ticks()
        if source.polls >= polls:
            source.stop.set()
    return ticks


def test_parse_quotes_skips_entries_without_a_price() -> None:
    quotes = parse_quotes(recorded("poll_1.json"))
    assert [(q.symbol, q.price, q.time_ms, q.day_volume) for q in quotes] == [
        ("AAPL", 189.84, 1709325000000, 53000000.0),
        ("MSFT", 415.5, 1709325001000, 17000000.0),
    ]
    with pytest.raises(YFinanceUnavailable, match="Missing required query parameter"):
        parse_quotes(recorded("error.json"))


def test_one_batched_request_per_poll_and_ticks_only_on_change() -> None:
    fetch = Replayer(recorded("poll_1.json"), recorded("poll_2.json"), recorded("poll_3.json"))
    source = YFinanceSource(["AAPL", "MSFT"], poll_s=0.01, fetch=fetch, notify=lambda _m: None)
    ticks = collect(source, polls=3)
    assert fetch.requests == [["AAPL", "MSFT"]] * 3
    assert [(t.symbol, t.price, t.ts_epoch_ms, t.volume, t.seq) for t in ticks] == [
        ("AAPL", 189.84, 1709325000000, 0.0, 0),  # first sight: no trade size known
        ("MSFT", 415.5, 1709325001000, 0.0, 0),
        ("MSFT", 415.61, 1709325006000, 250.0, 1),  # poll 2: only MSFT moved
        ("AAPL", 189.9, 1709325010000, 1200.0, 1),  # poll 3: only AAPL moved
    ]
    assert all(t.source == "yfinance" for t in ticks)
    assert len({t.event_id for t in ticks}) == 4


def test_the_same_quote_gets_the_same_event_id() -> None:
    a = collect(YFinanceSource(["AAPL"], poll_s=0.01, fetch=Replayer(recorded("poll_1.json"))), 1)
    b = collect(YFinanceSource(["AAPL"], poll_s=0.01, fetch=Replayer(recorded("poll_1.json"))), 1)
    assert [t.event_id for t in a] == [t.event_id for t in b]


def test_errors_back_off_exponentially_then_recover() -> None:
    messages: list[str] = []
    fetch = Replayer(
        RuntimeError("429 Too Many Requests"), RuntimeError("timeout"), recorded("poll_1.json")
    )
    source = YFinanceSource(["AAPL", "MSFT"], poll_s=0.01, fetch=fetch, notify=messages.append)
    delays = []
    original = source.backoff_s

    def spy() -> float:
        delay = original()
        delays.append(delay)
        return delay

    source.backoff_s = spy  # type: ignore[method-assign]
    ticks = collect(source, polls=1)
    assert len(ticks) == 2
    assert 0.016 <= delays[0] <= 0.02
    assert 0.032 <= delays[1] <= 0.04
    assert messages[0].startswith("yfinance poll failed (429 Too Many Requests)")
    assert messages[-1] == "yfinance polls succeed again"


def test_backoff_is_capped() -> None:
    source = YFinanceSource(["A"], poll_s=5, fetch=Replayer())
    source._failures = 40
    assert 240 <= source.backoff_s() <= 300


def test_missing_yfinance_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from tickstream.sources.yfinance_stream import YahooStream

    for module in ("yfinance", "yfinance.data"):
        monkeypatch.setitem(sys.modules, module, None)  # an import of it raises ImportError
    with pytest.raises(YFinanceUnavailable, match=r"not installed.*tickstream\[live\]"):
        YahooQuotes()
    with pytest.raises(YFinanceUnavailable, match=r"not installed.*tickstream\[live\]"):
        YahooStream()


def test_unreachable_yahoo_falls_back_to_simulate_or_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    import tickstream.sources.factory as factory

    def unreachable(*_a: object, **_k: object) -> YFinanceSource:
        return YFinanceSource(["AAPL"], fetch=Replayer(OSError("network is unreachable")))

    monkeypatch.setattr(factory, "YFinanceSource", unreachable)
    messages: list[str] = []
    # The stream first (a port where nothing listens), then polling, then the simulation.
    closed = "ws://127.0.0.1:9"
    settings = load_settings(
        {
            "producer_source": "yfinance",
            "simulate_if_no_yfinance": True,
            "yfinance_stream_url": closed,
        }
    )
    source = build_source(settings, stop=threading.Event(), notify=messages.append)
    assert isinstance(source, SimulateSource)
    assert len(messages) == 2
    assert messages[0].startswith("Yahoo's stream is unreachable: ")
    assert messages[0].endswith(": polling Yahoo instead (YFINANCE_MODE=poll)")
    assert messages[1] == (
        "Yahoo Finance is unreachable: network is unreachable: falling back to simulated ticks "
        "(SIMULATE_IF_NO_YFINANCE=true)"
    )
    strict = load_settings(
        {"producer_source": "yfinance", "simulate_if_no_yfinance": False, "yfinance_mode": "poll"}
    )
    with pytest.raises(YFinanceUnavailable, match="SIMULATE_IF_NO_YFINANCE=true"):
        build_source(strict, stop=threading.Event(), notify=messages.append)
