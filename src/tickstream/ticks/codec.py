"""JSON encoding and decoding of single events.

The producer's hot path encodes whole chunks at once (:mod:`tickstream.ticks.columnar`);
these scalar functions define the same format one event at a time, and decode it
back with the same checks the stream job applies.
"""

from __future__ import annotations

import json
import math
from typing import Any

from tickstream.ticks.schema import (
    SCHEMA_VERSION,
    SOURCES,
    SYMBOL_RE,
    Heartbeat,
    Tick,
    iso_utc,
)


class InvalidEvent(ValueError):
    """A message that is not a valid tick or heartbeat; ``reason`` is a short stable code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def encode_tick(tick: Tick) -> bytes:
    return (
        f'{{"type":"tick","schema_version":{SCHEMA_VERSION},"event_id":"{tick.event_id}",'
        f'"symbol":"{tick.symbol}","seq":{tick.seq},"ts":"{tick.ts}",'
        f'"ts_epoch_ms":{tick.ts_epoch_ms},"price":{tick.price!r},"volume":{tick.volume!r},'
        f'"source":"{tick.source}"}}'
    ).encode()


def encode_heartbeat(beat: Heartbeat) -> bytes:
    return (
        f'{{"type":"heartbeat","schema_version":{SCHEMA_VERSION},'
        f'"producer_id":"{beat.producer_id}","ts":"{beat.ts}","ts_epoch_ms":{beat.ts_epoch_ms}}}'
    ).encode()


def _require(obj: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in obj:
        raise InvalidEvent("missing_field", name)
    value = obj[name]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise InvalidEvent("bad_type", name)
    return value


def _no_repeated_key(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise InvalidEvent("duplicate_key", key)
        obj[key] = value
    return obj


def decode(payload: bytes) -> Tick | Heartbeat:
    """Parse and validate one message; raise :class:`InvalidEvent` with a reason code."""
    try:
        text = payload.decode().lstrip()
        obj, end = json.JSONDecoder(object_pairs_hook=_no_repeated_key).raw_decode(text)
    except UnicodeDecodeError as exc:
        raise InvalidEvent("malformed_json", str(exc)) from None
    except json.JSONDecodeError as exc:
        reason = "single_quotes" if exc.doc[exc.pos : exc.pos + 1] == "'" else "malformed_json"
        raise InvalidEvent(reason, str(exc)) from None
    if text[end:].strip():
        raise InvalidEvent("trailing_text", "text after the JSON value")
    if not isinstance(obj, dict):
        raise InvalidEvent("malformed_json", "not an object")
    if "producer_id" in obj:
        _require(obj, "producer_id", str)
    if obj.get("schema_version") != SCHEMA_VERSION:
        raise InvalidEvent("unknown_schema_version", repr(obj.get("schema_version")))
    kind = obj.get("type")
    ts_ms = _require(obj, "ts_epoch_ms", int)
    if kind == "heartbeat":
        return Heartbeat(producer_id=_require(obj, "producer_id", str), ts_epoch_ms=ts_ms)
    if kind != "tick":
        raise InvalidEvent("unknown_type", repr(kind))
    symbol = _require(obj, "symbol", str)
    if not SYMBOL_RE.match(symbol):
        raise InvalidEvent("bad_symbol", symbol[:40])
    price = float(_require(obj, "price", (int, float)))
    if not math.isfinite(price) or price <= 0:
        raise InvalidEvent("bad_price", repr(price))
    volume = float(_require(obj, "volume", (int, float)))
    if not math.isfinite(volume) or volume < 0:
        raise InvalidEvent("bad_volume", repr(volume))
    source = _require(obj, "source", str)
    if source not in SOURCES:
        raise InvalidEvent("bad_source", source[:40])
    if _require(obj, "ts", str) != iso_utc(ts_ms):
        raise InvalidEvent("ts_mismatch", "ts and ts_epoch_ms disagree")
    return Tick(
        symbol=symbol,
        ts_epoch_ms=ts_ms,
        price=price,
        volume=volume,
        seq=_require(obj, "seq", int),
        event_id=_require(obj, "event_id", str),
        source=source,
    )
