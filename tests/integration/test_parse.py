"""The parse step on small hand-made Kafka rows (real Spark, no Kafka): the fast path for valid
ticks (``io.tickstream.engine.TickParser``) against the full path (``from_json`` and every check),
message by message."""

from __future__ import annotations

import datetime as dt
import json
import random
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from tickstream.bars.parse import Rules, fast_tick, parse_events
from tickstream.ticks.codec import encode_heartbeat, encode_tick
from tickstream.ticks.schema import Heartbeat, Tick, iso_utc

KAFKA_TIME = dt.datetime(2026, 11, 28, 9, 0, tzinfo=dt.UTC)
KAFKA_MS = int(KAFKA_TIME.timestamp() * 1000)
RULES = Rules(min_ts_ms=946_684_800_000, max_ahead_ms=300_000, max_message_bytes=400)
KAFKA = T.StructType(
    [
        T.StructField("value", T.BinaryType()),
        T.StructField("topic", T.StringType()),
        T.StructField("partition", T.IntegerType()),
        T.StructField("offset", T.LongType()),
        T.StructField("timestamp", T.TimestampType()),
    ]
)
TS = KAFKA_MS - 1_234
BASE = Tick("ES", TS, 4500.25, 2.0, 7, "replay:es:7", "replay")


def raw(tick: Tick = BASE, **fields: Any) -> bytes:
    """A tick's JSON with fields replaced or added (a value of None drops the field)."""
    text = encode_tick(tick).decode()
    for name, value in fields.items():
        head = f'"{name}":'
        if head not in text:
            text = f"{text[:-1]},{head}{value}}}"
            continue
        start = text.index(head)
        end = start + len(head)
        depth = 0
        while end < len(text) and not (depth == 0 and text[end] in ",}"):
            depth += {"{": 1, "[": 1, "}": -1, "]": -1}.get(text[end], 0)
            end += 1
        text = text[:start] + (f"{head}{value}" if value is not None else "") + text[end:]
        text = text.replace(",,", ",").replace("{,", "{").replace(",}", "}")
    return text.encode()


VALID = [
    encode_tick(BASE),
    encode_tick(Tick("BRK.B", TS, 1e-9, 0.0, 0, "x" * 128, "simulate")),
    encode_tick(Tick("^GSPC", TS + 299_000, 123456789.125, 1e16, 2**62, "y:1", "yfinance")),
    raw(price="4500"),  # a JSON integer is a number
    raw(price="4.50025e3"),
    raw(symbol='"ES=F"'),
    json.dumps(json.loads(encode_tick(BASE)), separators=(" , ", " : ")).encode(),
    raw(ts_epoch_ms=str(RULES.min_ts_ms), ts=f'"{iso_utc(RULES.min_ts_ms)}"'),
    raw(ts_epoch_ms=str(KAFKA_MS + 300_000), ts=f'"{iso_utc(KAFKA_MS + 300_000)}"'),
    encode_tick(BASE) + b" \r\n\t",  # white space after the object is JSON
]
INVALID_OR_OTHER = [
    b"",
    b"\xff\xfe",
    b"x" * 401,
    b"not json",
    b"[1,2]",
    b"{}",
    encode_heartbeat(Heartbeat("p-1", TS)),
    raw(type='"quote"'),
    raw(schema_version="2"),
    raw(schema_version='"1"'),
    raw(schema_version="1.0"),
    raw(price='"4500.25"'),
    raw(price="0"),
    raw(price="-0.0"),
    raw(price="-1"),
    raw(price="1e400"),
    raw(price="NaN"),
    raw(price="null"),
    raw(price=None),
    raw(volume="-1"),
    raw(volume="Infinity"),
    raw(seq="-1"),
    raw(seq="1.5"),
    raw(seq="9223372036854775808"),
    raw(seq='"7"'),
    raw(symbol='"es"'),
    raw(symbol='""'),
    raw(symbol="123"),
    raw(symbol='"ABCDEFGHIJKLMNOPQRSTU"'),
    raw(symbol='{"a":1}'),
    raw(event_id='""'),
    raw(event_id='"' + "x" * 129 + '"'),
    raw(event_id="17"),
    raw(event_id='"caf\\u00e9"'),  # an escape: the full path decides (valid)
    raw(event_id='"café"'),  # not ASCII: the full path decides (valid)
    raw(source='"kafka"'),
    raw(ts='"2026-11-28T08:59:58.766+00:00"'),
    raw(ts_epoch_ms=str(RULES.min_ts_ms - 1), ts=f'"{iso_utc(RULES.min_ts_ms - 1)}"'),
    raw(ts_epoch_ms=str(KAFKA_MS + 300_001), ts=f'"{iso_utc(KAFKA_MS + 300_001)}"'),
    raw(extra="1"),  # a key the schema does not know: the full path decides (valid)
    raw(producer_id='"p-1"'),  # a heartbeat's key in a tick: the full path decides (valid)
    raw(producer_id="5"),
    raw(producer_id='{"a":"p-1"}'),
    raw(producer_id="true"),
    encode_tick(BASE)[:-1] + b',"price":1.5}',  # a repeated key
    raw(extra="1")[:-1] + b',"extra":2}',  # a repeated key the schema does not know
    encode_heartbeat(Heartbeat("p-1", TS))[:-1] + b',"ts_epoch_ms":1}',
    encode_tick(BASE) + b" trailing",
    encode_tick(BASE) + encode_tick(BASE),
    encode_tick(BASE) + b",1",
    encode_tick(BASE).replace(b'"', b"'"),
    encode_tick(BASE).replace(b'"ES"', b"'ES'"),
    encode_tick(BASE)[:-1],
    encode_tick(BASE)[:-1].replace(b'"', b"'"),  # single quotes, and unfinished: not JSON
]
# What from_json reads as a valid tick, and the job rejects: the reason of each.
AMBIGUOUS = {
    encode_tick(BASE)[:-1] + b',"price":1.0}': "duplicate_key",
    encode_tick(BASE) + b" trailing": "trailing_text",
    encode_tick(BASE) + b'{"price":1.0}': "trailing_text",
    encode_tick(BASE).replace(b'"', b"'"): "single_quotes",
    raw(producer_id="5"): "bad_type",
}


def kafka_rows(spark: SparkSession, messages: list[bytes]) -> DataFrame:
    rows = [(m, "t", i % 3, i, KAFKA_TIME) for i, m in enumerate(messages)]
    return spark.createDataFrame(rows, KAFKA)


def both_paths(spark: SparkSession, messages: list[bytes]) -> tuple[list[Any], list[Any]]:
    """Each message parsed with the fast path and without it, as rows in offset order."""
    kafka = kafka_rows(spark, messages)
    fast = parse_events(kafka, RULES).orderBy("kafka_offset").collect()
    full = parse_events(kafka, RULES, fast_path=False).orderBy("kafka_offset").collect()
    return fast, full


def same(fast: list[Any], full: list[Any]) -> bool:
    """Equal row for row (a float's repr is exact, and a NaN price equals a NaN price)."""
    return [repr(r) for r in fast] == [repr(r) for r in full]


def accepted_by_fast_path(spark: SparkSession, messages: list[bytes]) -> list[bool]:
    kafka = kafka_rows(spark, messages)
    fast = fast_tick(spark, F.col("value"), F.col("timestamp"), RULES)
    return [r[0] for r in kafka.select(fast.isNotNull()).orderBy("offset").collect()]


def test_the_fast_path_takes_valid_ticks_with_the_fields_the_full_path_reads(
    spark: SparkSession,
) -> None:
    fast, full = both_paths(spark, VALID)
    assert [r.kind for r in full] == ["tick"] * len(VALID)
    assert same(fast, full)
    assert accepted_by_fast_path(spark, VALID) == [True] * len(VALID)


def test_every_other_message_takes_the_full_path_and_gets_its_verdict(
    spark: SparkSession,
) -> None:
    fast, full = both_paths(spark, INVALID_OR_OTHER)
    assert same(fast, full)
    assert not any(accepted_by_fast_path(spark, INVALID_OR_OTHER))
    reasons = {r.reason for r in full}
    # the list reaches most of the checks (kept honest: a typo in it would make messages valid)
    assert len(reasons) >= 17, reasons
    # what the full path reads as a tick although the fast path leaves it: an escape, non-ASCII
    # text, keys a tick does not have (2)
    assert sum(r.kind == "tick" for r in full) == 4
    assert {"duplicate_key", "trailing_text", "single_quotes"} <= reasons


def test_ambiguous_messages_are_rejected_with_their_reason_on_both_paths(
    spark: SparkSession,
) -> None:
    """A repeated key, text after the object, single quotes and a producer_id that is not a
    string: from_json reads each as a valid tick (the repeated price as its last value); the
    job rejects each, naming it."""
    messages = list(AMBIGUOUS)
    kafka = kafka_rows(spark, messages)
    lenient = kafka.select(
        F.from_json(F.col("value").cast("string"), "price double, producer_id string").alias("j")
    ).collect()
    assert all(row.j is not None and row.j.price > 0 for row in lenient)  # what it would take
    fast, full = both_paths(spark, messages)
    assert same(fast, full)
    assert [(r.kind, r.reason) for r in full] == [("reject", why) for why in AMBIGUOUS.values()]


@pytest.mark.parametrize("seed", [1, 2])
def test_randomly_damaged_ticks_get_the_same_verdict_on_both_paths(
    spark: SparkSession, seed: int
) -> None:
    """Bytes replaced, dropped or repeated in valid ticks: whatever the fast path accepts, the
    full path reads as the same tick, and the rest get the full path's verdict."""
    rng = random.Random(seed)
    alphabet = b'0123456789.-+eE"{}[]:, \\abcdefgnrtuxyzABCDEFSZ^=T\x00\xc3\xa9'
    messages = []
    for _ in range(3_000):
        message = bytearray(rng.choice(VALID))
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(message))
            action = rng.random()
            if action < 0.6:
                message[at] = rng.choice(alphabet)
            elif action < 0.8:
                del message[at]
            else:
                message.insert(at, message[at])
        messages.append(bytes(message))
    fast, full = both_paths(spark, messages)
    assert same(fast, full)
    accepted = accepted_by_fast_path(spark, messages)
    assert all(r.kind == "tick" for r, a in zip(full, accepted, strict=True) if a)
    # the damage leaves some ticks valid (a digit of the price changed) and rejects most
    assert 50 < sum(accepted) < 2_000, sum(accepted)
