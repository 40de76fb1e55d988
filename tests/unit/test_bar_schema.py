"""The bars topic's contract: what the job publishes meets bar.schema.json, and the schema
refuses what a consumer could not rely on."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest

from tests.reference import check_activity_bar_message, check_bar_message
from tickstream.bars.activity import ActivityBar
from tickstream.bars.publish import SCHEMA_VERSION, activity_message, bar_message


def bar(**more: Any) -> dict[str, Any]:
    return {
        "symbol": "^GSPC",
        "window_start": datetime(2026, 1, 5, 14, 30, tzinfo=UTC),
        "window_end": datetime(2026, 1, 5, 14, 31, tzinfo=UTC),
        "open": 100.0,
        "high": 101.0,
        "low": 99.5,
        "close": 100.5,
        "volume": 30.0,
        "vwap": 100.2,
        "trade_count": 3,
        "price_avg": 100.1,
        "pct_change": 0.5,
        "date": "2026-01-05",
        **more,
    }


@pytest.mark.parametrize("provisional", [False, True])
def test_a_published_bar_meets_the_schema(provisional: bool) -> None:
    message = bar_message(bar(), provisional=provisional, batch_id=7)
    check_bar_message(message)
    assert message["schema_version"] == SCHEMA_VERSION
    assert message["window_start"] == "2026-01-05T14:30:00.000Z"


def test_a_bar_without_volume_has_no_vwap_and_meets_the_schema() -> None:
    check_bar_message(bar_message(bar(volume=0.0, vwap=None), provisional=False, batch_id=0))


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"batch_id": None}, "batch_id missing"),
        ({"trade_count": 0}, "a bar of no trades"),
        ({"open": -1.0}, "a price not above 0"),
        ({"window_start": "2026-01-05 14:30"}, "a time not in ISO-8601 UTC"),
        ({"schema_version": 2}, "another version"),
    ],
)
def test_the_schema_refuses_what_a_consumer_cannot_rely_on(
    change: dict[str, Any], why: str
) -> None:
    with pytest.raises(jsonschema.ValidationError):
        check_bar_message(changed(bar_message(bar(), provisional=False, batch_id=1), change))


def changed(message: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """``message`` with ``change`` made: a field set, or removed where the change is None."""
    for key, value in change.items():
        if value is None:
            del message[key]
        else:
            message[key] = value
    return message


def activity_bar(**more: Any) -> ActivityBar:
    values: dict[str, Any] = {
        "symbol": "ES",
        "kind": "dollar",
        "number": 5,
        "threshold": 2_500_000.0,
        "first_ms": 1_378_073_095_287,
        "last_ms": 1_378_073_396_145,
        "open": 1640.5,
        "high": 1641.0,
        "low": 1640.0,
        "close": 1641.0,
        "volume": 1556.0,
        "dollar": 2_552_696.75,
        "ticks": 367,
        **more,
    }
    return ActivityBar(**values)


def test_a_published_activity_bar_meets_its_schema() -> None:
    message = activity_message(activity_bar(), batch_id=3)
    check_activity_bar_message(message)
    assert message["last_time"] == "2013-09-01T22:09:56.145Z"
    assert (message["kind"], message["number"], message["date"]) == ("dollar", 5, "2013-09-01")
    assert message["vwap"] == 2_552_696.75 / 1556.0
    zero = activity_message(activity_bar(kind="tick", volume=0.0, dollar=0.0), batch_id=0)
    check_activity_bar_message(zero)
    assert zero["vwap"] is None


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"kind": "renko"}, "a kind tickstream does not cut"),
        ({"number": 0}, "bars are numbered from 1"),
        ({"threshold": 0}, "a threshold not above 0"),
        ({"last_time": "2013-09-01 22:09"}, "a time not in ISO-8601 UTC"),
        ({"batch_id": None}, "batch_id missing"),
    ],
)
def test_the_activity_schema_refuses_what_a_consumer_cannot_rely_on(
    change: dict[str, Any], why: str
) -> None:
    with pytest.raises(jsonschema.ValidationError):
        check_activity_bar_message(changed(activity_message(activity_bar(), batch_id=1), change))
