from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tickstream.ticks.codec import InvalidEvent, decode, encode_heartbeat, encode_tick
from tickstream.ticks.columnar import SeqCounter, TickChunk, id_prefix, iso_utc_many
from tickstream.ticks.schema import TICK_FIELDS, Heartbeat, Tick, iso_utc

symbols = st.from_regex(r"[A-Z][A-Z0-9.\-]{0,5}", fullmatch=True)
epoch_ms = st.integers(min_value=0, max_value=4_102_444_800_000)  # 1970 .. 2100
prices = st.floats(min_value=0.0001, max_value=1e9, allow_nan=False, allow_infinity=False)
volumes = st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False)


def tick(**overrides: object) -> Tick:
    fields: dict[str, object] = {
        "symbol": "ES",
        "ts_epoch_ms": 1378072800083,
        "price": 1640.25,
        "volume": 8.0,
        "seq": 0,
        "event_id": "abc-0",
        "source": "replay",
    }
    fields.update(overrides)
    return Tick(**fields)  # type: ignore[arg-type]


def test_the_documented_example() -> None:
    payload = encode_tick(tick(seq=17, event_id="3f9c0a7d5e21b6c4-17"))
    assert json.loads(payload) == {
        "type": "tick",
        "schema_version": 1,
        "event_id": "3f9c0a7d5e21b6c4-17",
        "symbol": "ES",
        "seq": 17,
        "ts": "2013-09-01T22:00:00.083Z",
        "ts_epoch_ms": 1378072800083,
        "price": 1640.25,
        "volume": 8.0,
        "source": "replay",
    }
    assert tuple(json.loads(payload)) == TICK_FIELDS


@given(epoch_ms)
def test_iso_utc_is_the_same_instant(ms: int) -> None:
    text = iso_utc(ms)
    parsed = datetime.fromisoformat(text)
    assert parsed.tzinfo is not None
    assert (parsed - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1000 == pytest.approx(ms)
    assert text == iso_utc_many(np.array([ms], dtype=np.int64))[0] + "Z"


@given(st.lists(st.tuples(symbols, epoch_ms, prices, volumes), min_size=1, max_size=30))
def test_columnar_encoding_is_byte_for_byte_the_scalar_one(
    rows: list[tuple[str, int, float, float]],
) -> None:
    seqs = SeqCounter().assign([r[0] for r in rows])
    chunk = TickChunk(
        "simulate",
        [r[0] for r in rows],
        np.array([r[1] for r in rows], dtype=np.int64),
        np.array([r[2] for r in rows]),
        np.array([r[3] for r in rows]),
        seqs,
        [f"p-{q}" for q in seqs],
    )
    payloads = chunk.encode()
    ticks = chunk.ticks()
    assert payloads == [encode_tick(t) for t in ticks]
    assert [decode(p) for p in payloads] == ticks


def test_seq_counter_is_per_symbol() -> None:
    counter = SeqCounter()
    assert counter.assign(["A", "B", "A"]) == [0, 0, 1]
    assert counter.assign(["B", "A"]) == [1, 2]


def test_id_prefix_is_stable_and_distinct() -> None:
    assert id_prefix("replay", "f1", "ES") == id_prefix("replay", "f1", "ES")
    assert len({id_prefix("replay", "f1", s) for s in ("ES", "NQ")}) == 2
    assert id_prefix("replay", "f1", "ES") != id_prefix("replay", "f2", "ES")


def test_heartbeat_round_trip() -> None:
    beat = Heartbeat("p1", 1378072805000)
    assert decode(encode_heartbeat(beat)) == beat
    assert "symbol" not in json.loads(encode_heartbeat(beat))


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe", "malformed_json"),
        (b'{"type":"tick"', "malformed_json"),
        (b"[1,2]", "malformed_json"),
        (b'{"type":"tick","schema_version":2}', "unknown_schema_version"),
        (b'{"type":"quote","schema_version":1,"ts_epoch_ms":1}', "unknown_type"),
        (b'{"type":"tick","schema_version":1}', "missing_field"),
        (b'{"type":"tick","schema_version":1,"ts_epoch_ms":"1"}', "bad_type"),
        (b'{"type":"tick","schema_version":1,"ts_epoch_ms":true}', "bad_type"),
        (b'{"type":"tick","schema_version":1,"type":"heartbeat"}', "duplicate_key"),
        (b'{"type":"tick","schema_version":1} {"a":1}', "trailing_text"),
        (b'{"type":"tick","schema_version":1} x', "trailing_text"),
        (b"{'type':'tick','schema_version':1}", "single_quotes"),
        (b'{"type":"tick","schema_version":1,"producer_id":5}', "bad_type"),
    ],
)
def test_decode_rejects_with_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        decode(payload)
    assert info.value.reason == reason


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("price", 0, "bad_price"),
        ("price", -1.5, "bad_price"),
        ("price", float("nan"), "bad_price"),
        ("volume", -1, "bad_volume"),
        ("volume", float("inf"), "bad_volume"),
        ("symbol", "es", "bad_symbol"),
        ("symbol", "A" * 30, "bad_symbol"),
        ("source", "fax", "bad_source"),
        ("ts", "2013-09-01T22:00:00.084Z", "ts_mismatch"),
    ],
)
def test_decode_checks_values(field: str, value: object, reason: str) -> None:
    obj = json.loads(encode_tick(tick()))
    obj[field] = value
    with pytest.raises(InvalidEvent) as info:
        decode(json.dumps(obj).encode())
    assert info.value.reason == reason
