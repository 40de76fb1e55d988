"""The bars topic's contract: what the job publishes meets bar.schema.json, and the schema
refuses what a consumer could not rely on."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest

from tests.reference import check_bar_message
from tickstream.bars.publish import SCHEMA_VERSION, bar_message


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
    message = bar_message(bar(), provisional=False, batch_id=1)
    for key, value in change.items():
        if value is None:
            del message[key]
        else:
            message[key] = value
    with pytest.raises(jsonschema.ValidationError):
        check_bar_message(message)
