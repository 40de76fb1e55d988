"""Yahoo's streamed quotes as ticks: parsing, repeats, volumes, stable ids (no network)."""

from __future__ import annotations

import pytest

from tickstream.sources.yfinance_stream import BadQuote, YFinanceStreamSource, parse_message

T0 = 1_764_340_200_000


def msg(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {"id": "AAPL", "price": 230.5, "time": str(T0), "day_volume": "1000"}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def source(notes: list[str] | None = None) -> YFinanceStreamSource:
    out = notes if notes is not None else []
    return YFinanceStreamSource(
        ["AAPL", "MSFT"],
        connect=lambda: None,  # type: ignore[arg-type,return-value]
        notify=out.append,
        report_bad=lambda where, reason: out.append(f"{where}: {reason}"),
    )


def test_a_message_becomes_a_quote_with_the_exchanges_time() -> None:
    quote = parse_message(msg(last_size="100"))
    assert (quote.symbol, quote.price, quote.time_ms) == ("AAPL", 230.5, T0)
    assert (quote.day_volume, quote.last_size) == (1000.0, 100.0)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"id": None}, "no symbol"),
        ({"id": " "}, "no symbol"),
        ({"price": None}, "no positive price"),
        ({"price": 0.0}, "no positive price"),
        ({"price": "abc"}, "price is not a number"),
        ({"price": float("nan")}, "price is not finite"),
        ({"time": None}, "no exchange time"),
        ({"time": True}, "time is not a number"),
        ({"day_volume": "lots"}, "day_volume is not a number"),
    ],
)
def test_malformed_messages_say_what_is_wrong(fields: dict[str, object], reason: str) -> None:
    with pytest.raises(BadQuote, match=reason):
        parse_message(msg(**fields))


def test_yfinances_own_decode_failure_is_a_bad_quote() -> None:
    with pytest.raises(BadQuote, match="could not decode"):
        parse_message({"error": "Invalid base64", "raw_base64": "!!"})


def test_repeats_are_skipped_and_ids_depend_on_the_message_alone() -> None:
    notes: list[str] = []
    first = source(notes).to_chunk([msg(), msg(time=str(T0 + 1), price=230.6, day_volume="1300")])
    again = source().to_chunk([msg(), msg(time=str(T0 + 1), price=230.6, day_volume="1300")])
    assert first.event_id == again.event_id  # another process, the same ids
    assert first.seq == again.seq
    s = source(notes)
    chunk = s.to_chunk([msg(), msg(), msg(id="TSLA"), {"id": "MSFT"}])
    assert len(chunk) == 1  # the repeat and the unsubscribed symbol are not ticks
    assert s.repeats == 1
    assert s.bad_rows == 1
    assert any("no positive price for MSFT" in n for n in notes)


def test_volume_is_the_trade_size_or_the_growth_of_the_day_volume() -> None:
    s = source()
    chunk = s.to_chunk(
        [
            msg(day_volume="1000"),  # the first: no size, nothing to grow from
            msg(time=str(T0 + 250), day_volume="1400"),  # grew by 400
            msg(time=str(T0 + 500), day_volume="1450", last_size="50"),  # its size
            msg(time=str(T0 + 500), price=230.7, day_volume="1460"),  # same ms: next rank
        ]
    )
    assert chunk.volume.tolist() == [0.0, 400.0, 50.0, 10.0]
    assert chunk.seq == [T0 * 1000, (T0 + 250) * 1000, (T0 + 500) * 1000, (T0 + 500) * 1000 + 1]
    assert chunk.ts_epoch_ms.tolist() == [T0, T0 + 250, T0 + 500, T0 + 500]


def test_the_clock_is_the_newest_exchange_time_moved_on_by_the_wall_clock() -> None:
    s = source()
    assert s.clock_ms() is None
    s.to_chunk([msg(time=str(T0 + 5_000)), msg(id="MSFT", time=str(T0))])
    clock = s.clock_ms()
    assert clock is not None
    assert T0 + 5_000 <= clock < T0 + 6_000
