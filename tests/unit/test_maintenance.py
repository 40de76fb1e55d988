"""When the job compacts a table: the dates it has finished, once each time they move."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from tickstream.bars.maintenance import Compactor, finished_before
from tickstream.lake.layout import Lake


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def test_event_time_tables_finish_with_the_watermark_rejects_with_the_clock() -> None:
    """Ticks, bars and late rows go by event time; rejects by when Kafka received them."""
    finished = finished_before(ms("2013-09-03T00:00:00"), ms("2026-11-28T12:00:00"))
    assert finished == {
        "ticks": "2013-09-03",
        "bars": "2013-09-03",
        "late": "2013-09-03",
        "rejects": "2026-11-28",
        **dict.fromkeys(["tick_bars", "volume_bars", "dollar_bars"], "2013-09-03"),
    }
    # A millisecond before midnight, the day is not finished yet.
    assert finished_before(ms("2013-09-02T23:59:59.999"), 0)["ticks"] == "2013-09-02"


def compactor(watermark: list[int | None], now: list[float]) -> Compactor:
    return Compactor(
        spark=cast(Any, None),  # due() plans only; nothing here runs Spark
        lake=Lake("lake"),
        interval=1.0,
        watermark=lambda: watermark[0],
        active=lambda: True,
        notify=lambda message: None,
        clock=lambda: now[0],
    )


def test_a_table_is_due_once_each_time_its_finished_date_moves() -> None:
    watermark: list[int | None] = [None]
    now = [ms("2026-11-28T12:00:00") / 1000]
    c = compactor(watermark, now)
    assert c.due() == {}  # no batch yet: no watermark

    watermark[0] = ms("2013-09-01T23:00:00")
    first = c.due()
    assert first == finished_before(ms("2013-09-01T23:00:00"), int(now[0] * 1000))
    c.compacted_before.update(first)  # what run_once records after the OPTIMIZE
    watermark[0] = ms("2013-09-01T23:59:00")
    assert c.due() == {}  # same dates: nothing new is finished

    watermark[0] = ms("2013-09-02T00:01:00")
    event_time = ["ticks", "bars", "late", "tick_bars", "volume_bars", "dollar_bars"]
    assert c.due() == dict.fromkeys(event_time, "2013-09-02")
    now[0] = ms("2026-11-29T00:00:01") / 1000
    assert c.due()["rejects"] == "2026-11-29"
