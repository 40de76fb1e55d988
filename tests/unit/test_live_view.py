"""The live view's pure logic: bar messages, lag, rates, the dashboard's input checks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from tickstream.bars.metrics import TickRate, offsets_lag
from tickstream.bars.publish import SCHEMA_VERSION, bar_message, encode
from tickstream.bars.report import BatchReport
from tickstream.bars.state import Totals
from tickstream.cli.console import first_bar_note
from tickstream.config import load_settings, settings_env
from tickstream.dashboard.app import (
    BadRequestError,
    health_from,
    parse_limit,
    parse_symbol,
    parse_time,
)
from tickstream.dashboard.live import LiveBars, parse_bar
from tickstream.errors import ConfigError
from tickstream.ticks.schema import SYMBOL_RE

BAR = {
    "symbol": "ES",
    "window_start": datetime(2013, 9, 3, 0, 5, tzinfo=UTC),
    "window_end": datetime(2013, 9, 3, 0, 6, tzinfo=UTC),
    "open": 1645.75,
    "high": 1646.25,
    "low": 1645.5,
    "close": 1646.25,
    "volume": 246.0,
    "vwap": 1646.0416666666667,
    "trade_count": 103,
    "price_avg": 1646.0121359223301,
    "pct_change": 0.03038128512836093,
    "date": "2013-09-03",
}


def test_a_bar_message_carries_the_bar_contract_and_round_trips_exactly() -> None:
    message = json.loads(encode(bar_message(BAR, provisional=False, batch_id=7)))
    assert message["schema_version"] == SCHEMA_VERSION
    assert message["window_start"] == "2013-09-03T00:05:00.000Z"
    assert message["window_end"] == "2013-09-03T00:06:00.000Z"
    assert message["window_start_ms"] == 1378166700000
    assert message["window_end_ms"] - message["window_start_ms"] == 60_000
    for column in ("open", "high", "low", "close", "volume", "vwap", "price_avg", "pct_change"):
        assert message[column] == BAR[column]  # floats survive JSON exactly
    assert (message["provisional"], message["batch_id"], message["date"]) == (
        False,
        7,
        "2013-09-03",
    )


def test_a_bar_without_volume_has_a_null_vwap_and_nan_is_refused() -> None:
    message = json.loads(encode(bar_message({**BAR, "vwap": None}, provisional=True, batch_id=0)))
    assert message["vwap"] is None
    assert message["provisional"] is True
    with pytest.raises(ValueError, match="JSON compliant"):
        encode(bar_message({**BAR, "close": float("nan")}, provisional=False, batch_id=0))


def test_lag_is_the_newest_offset_seen_minus_the_processed_one() -> None:
    progress = {
        "sources": [
            {
                "latestOffset": '{"events":{"0":120,"1":80,"2":5}}',
                "endOffset": '{"events":{"0":100,"1":80}}',
            }
        ]
    }
    assert offsets_lag(progress) == {("events", "0"): 20, ("events", "1"): 0, ("events", "2"): 0}
    assert offsets_lag(None) == {}
    assert offsets_lag({"sources": [{"latestOffset": None, "endOffset": None}]}) == {}


def test_the_tick_rate_covers_the_last_seconds_and_drops_to_zero_when_nothing_comes() -> None:
    rate = TickRate(window_s=10)
    assert rate.per_second(now=0) == 0.0
    for second in range(31):
        rate.add(second * 100, now=float(second))
    assert rate.per_second(now=30.0) == pytest.approx(100.0)
    assert rate.per_second(now=45.0) == 0.0


def test_the_first_bar_note_says_when_the_first_window_closes() -> None:
    report = BatchReport(0, 10, 10, 0, 0, 0, 0)
    report.max_event_ms = 1_000 * 3600 + 20_000  # 01:00:20
    report.first_open_end_ms = 1_000 * 3600 + 60_000  # the window 01:00-01:01
    note = first_bar_note(report, watermark_ms=120_000)
    assert note is not None
    assert "passes 1970-01-01 01:03:00" in note
    assert "in about 2m40s" in note
    report.totals = Totals(bars=1)
    assert first_bar_note(report, watermark_ms=120_000) is None


def test_dashboard_input_checks() -> None:
    assert parse_symbol("aapl") == "AAPL"
    # Every symbol the tick contract accepts: an index, a share class, a futures or FX code.
    for symbol in ("^GSPC", "BRK.B", "7203.T", "ES=F", "EURUSD=X", "S" * 20):
        assert parse_symbol(symbol) == symbol
        assert SYMBOL_RE.match(symbol)
    assert parse_time("2026-11-26T16:00", "from") == datetime(2026, 11, 26, 16, 0)  # noqa: DTZ001
    assert parse_time("2026-11-26T17:00+01:00", "from") == datetime(2026, 11, 26, 16, 0)  # noqa: DTZ001
    assert parse_time(None, "to") is None
    assert parse_limit(None) == 1000
    cases: list[tuple[Callable[[], object], int, str]] = [
        (lambda: parse_symbol(None), 400, "symbol is required"),
        (lambda: parse_symbol("<b>"), 400, "bad symbol"),
        (lambda: parse_symbol("S" * 21), 400, "bad symbol"),
        (lambda: parse_time("tomorrow", "to"), 400, "bad to 'tomorrow'"),
        (lambda: parse_limit("0"), 400, "bad limit"),
        (lambda: parse_limit("1e3"), 400, "bad limit"),
    ]
    for call, status, text in cases:
        with pytest.raises(BadRequestError, match=text) as caught:
            call()
        assert caught.value.status == status


def test_health_from_the_exposition() -> None:
    text = "\n".join(
        [
            'tickstream_consumer_lag_messages{topic="e",partition="0"} 3.0',
            'tickstream_consumer_lag_messages{topic="e",partition="1"} 4.0',
            'tickstream_rejected_total{reason="bad_price"} 2.0',
            'tickstream_rejected_total{reason="empty"} 1.0',
            'tickstream_ticks_total{outcome="late"} 5.0',
            'tickstream_ticks_total{outcome="accepted"} 500.0',
            "tickstream_ticks_per_second 42.5",
            "tickstream_watermark_delay_seconds 2.5",
            "tickstream_batch_last_duration_seconds 0.8",
            "",
        ]
    )
    health = health_from(text)
    assert health["lag"] == 7
    assert health["rejected"] == 3
    assert health["late"] == 5
    assert health["ticks_per_second"] == 42.5
    assert health["watermark_delay_s"] == 2.5
    assert health["batch_seconds"] == 0.8


def test_live_bars_keep_the_forming_windows_until_their_closed_bar_and_fan_out() -> None:
    def msg(start: int, provisional: bool, symbol: str = "ES") -> dict[str, object]:
        return {"symbol": symbol, "window_start_ms": start, "provisional": provisional}

    async def run() -> list[dict[str, object]]:
        bars = LiveBars()
        sub = bars.subscribe("ES")
        bars.add(msg(60_000, True))
        bars.add(msg(120_000, True))
        bars.add(msg(60_000, True, symbol="NQ"))
        assert [b["window_start_ms"] for b in bars.current("ES")] == [60_000, 120_000]
        bars.add(msg(60_000, False))  # closed: no longer forming
        assert [b["window_start_ms"] for b in bars.current("ES")] == [120_000]
        assert bars.symbols() == {"ES", "NQ"}
        await asyncio.sleep(0)
        got = [sub.queue.get_nowait() for _ in range(sub.queue.qsize())]
        bars.unsubscribe(sub)
        return got

    got = asyncio.run(run())
    assert [(b["window_start_ms"], b["provisional"]) for b in got] == [
        (60_000, True),
        (120_000, True),
        (60_000, False),
    ]
    assert parse_bar(b"not json") is None
    assert parse_bar(b'{"symbol": "ES"}') is None


def test_bars_topics_turn_off_and_stay_off_in_a_child_process() -> None:
    settings = load_settings({"bars_topic": "off", "bars_live_topic": "None"})
    assert settings.bars_topic is None
    assert settings.bars_live_topic is None
    env = settings_env(settings)
    assert env["BARS_TOPIC"] == "off"
    assert load_settings({"bars_topic": env["BARS_TOPIC"]}).bars_topic is None
    assert load_settings({}).bars_topic == "bars"
    with pytest.raises(ConfigError, match="bad setting --metrics-port=0"):
        load_settings({"metrics_port": 0})
    with pytest.raises(ConfigError, match="--bars-topic='a b'"):
        load_settings({"bars_topic": "a b"})
    assert load_settings({"metrics_port": 9464}).scrape_url == "http://127.0.0.1:9464/metrics"
