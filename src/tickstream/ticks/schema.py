"""The tick and heartbeat events, field by field.

A tick (``"type": "tick"``)::

    {"type": "tick", "schema_version": 1, "event_id": "3f9c0a7d5e21b6c4-17",
     "symbol": "ES", "seq": 17, "ts": "2013-09-01T22:00:00.083Z",
     "ts_epoch_ms": 1378072800083, "price": 1640.25, "volume": 8.0, "source": "replay"}

- ``symbol``: upper-case ticker (``[A-Z0-9^][A-Z0-9.=^-]{0,19}``); also the message key.
- ``price``: trade price, finite and > 0. ``volume``: traded quantity, finite and >= 0.
- ``ts`` / ``ts_epoch_ms``: event time, UTC, millisecond precision (the same instant twice).
- ``event_id``: globally unique; the same when the same tick is sent again (derived from
  the source's identity, the symbol and ``seq``), so the stream job can drop duplicates.
- ``seq``: per symbol, strictly increasing within one producer run; breaks ties between
  ticks of the same millisecond (real trades share milliseconds all the time).
- ``source``: ``simulate`` | ``replay`` | ``yfinance``.

A heartbeat (``"type": "heartbeat"``) carries only the producer's event-time clock. It is
sent to every partition so the stream job's event time advances in a quiet market::

    {"type": "heartbeat", "schema_version": 1, "producer_id": "a1b2c3d4",
     "ts": "2013-09-01T22:00:05.000Z", "ts_epoch_ms": 1378072805000}

Heartbeats are never ticks: they carry no symbol, price or volume.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Literal, get_args

SCHEMA_VERSION = 1
SourceName = Literal["simulate", "replay", "yfinance"]
SOURCES: tuple[str, ...] = get_args(SourceName)
SYMBOL_RE = re.compile(r"^[A-Z0-9^][A-Z0-9.=^\-]{0,19}$")

TICK_FIELDS = (
    "type",
    "schema_version",
    "event_id",
    "symbol",
    "seq",
    "ts",
    "ts_epoch_ms",
    "price",
    "volume",
    "source",
)
HEARTBEAT_FIELDS = ("type", "schema_version", "producer_id", "ts", "ts_epoch_ms")


def iso_utc(epoch_ms: int) -> str:
    """ISO-8601 UTC with milliseconds: 1378072800083 -> '2013-09-01T22:00:00.083Z'."""
    seconds, millis = divmod(epoch_ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


@dataclass(frozen=True, slots=True)
class Tick:
    symbol: str
    ts_epoch_ms: int
    price: float
    volume: float
    seq: int
    event_id: str
    source: str

    @property
    def ts(self) -> str:
        return iso_utc(self.ts_epoch_ms)


@dataclass(frozen=True, slots=True)
class Heartbeat:
    producer_id: str
    ts_epoch_ms: int

    @property
    def ts(self) -> str:
        return iso_utc(self.ts_epoch_ms)
