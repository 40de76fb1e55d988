"""Writes yfinance_stream.jsonl: frames as Yahoo's stream sends them, for the tests.

There is no network here to record real frames, so they are built with yfinance's own
``PricingData`` schema (yfinance/pricing.proto) and shaped like Yahoo's: a JSON text frame
``{"type": "pricing", "message": <base64 of the protobuf>}``. A few are malformed on purpose.

    .venv/bin/python tests/data/yfinance_stream.py
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from yfinance.pricing_pb2 import PricingData

OUT = Path(__file__).with_name("yfinance_stream.jsonl")
T0 = 1_764_340_200_000  # 2025-11-28 14:30:00 UTC, ms


def frame(**fields: Any) -> dict[str, Any]:
    message = PricingData(**fields)
    encoded = base64.b64encode(message.SerializeToString()).decode()
    return {"type": "pricing", "message": encoded}


def quote(symbol: str, i: int, price: float, day_volume: int, size: int | None) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "id": symbol,
        "price": price,
        "time": T0 + i * 250,
        "exchange": "NMS",
        "quote_type": 8,
        "market_hours": 1,
        "day_volume": day_volume,
        "price_hint": 2,
    }
    if size is not None:
        fields["last_size"] = size
    return frame(**fields)


def frames() -> list[dict[str, Any]]:
    out = []
    volume = {"AAPL": 1_000_000, "MSFT": 500_000}
    for i in range(24):
        symbol = "AAPL" if i % 3 else "MSFT"
        size = 100 + 10 * i if i % 4 else None  # some quotes carry no trade size
        volume[symbol] += 100 + 10 * i
        out.append(quote(symbol, i, round(230.0 + 0.01 * i, 2), volume[symbol], size))
        if i == 5:
            out.append(out[-2])  # Yahoo sends a quote again
        if i == 8:
            out.append({"type": "pricing", "message": "!!not base64!!"})
        if i == 11:
            out.append(frame(id="AAPL", price=0.0, time=T0 + i * 250))  # no price
        if i == 14:
            out.append(frame(id="MSFT", price=420.5))  # no time
        if i == 17:
            out.append(frame(id="TSLA", price=250.0, time=T0 + i * 250))  # not subscribed
    return out


if __name__ == "__main__":
    OUT.write_text("".join(json.dumps(f) + "\n" for f in frames()))
    print(f"wrote {OUT}")
