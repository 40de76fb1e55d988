"""Building hostile, realistic input streams for the bars job tests."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from tickstream.sources.replay import ReplaySource
from tickstream.ticks.codec import encode_heartbeat
from tickstream.ticks.schema import Heartbeat, Tick

DATA = Path(__file__).resolve().parent / "data" / "es_ticks_2013-09_120k.csv.gz"

# Malformed messages, each with the reason the job must give.
GARBAGE: list[tuple[bytes | None, str]] = [
    (None, "empty"),
    (b"", "empty"),
    (b"\xff\xfe\x00garbage", "invalid_utf8"),
    (b'{"type":"tick","symbol":"ES"', "malformed_json"),
    (b"[1,2,3]", "malformed_json"),
    (b"42", "malformed_json"),
    (b"x" * 70_000, "oversized"),
    (b'{"type":"tick","schema_version":2}', "unknown_schema_version"),
    (b'{"type":"quote","schema_version":1}', "unknown_type"),
    (b'{"type":"tick","schema_version":1,"symbol":"ES"}', "missing_field"),
]


def tick_dict(t: Tick) -> dict[str, Any]:
    return {
        "type": "tick",
        "schema_version": 1,
        "event_id": t.event_id,
        "symbol": t.symbol,
        "seq": t.seq,
        "ts": t.ts,
        "ts_epoch_ms": t.ts_epoch_ms,
        "price": t.price,
        "volume": t.volume,
        "source": t.source,
    }


def bad_ticks(template: Tick) -> list[tuple[bytes, str]]:
    """Valid JSON ticks with one bad field each."""
    cases: list[tuple[dict[str, Any], str]] = [
        ({"price": "1640.25"}, "bad_type"),
        ({"seq": 1.5}, "bad_type"),
        ({"symbol": 123}, "bad_symbol"),
        ({"symbol": "es"}, "bad_symbol"),
        ({"symbol": "ÉS☃"}, "bad_symbol"),
        ({"event_id": ""}, "bad_event_id"),
        ({"event_id": 77}, "bad_event_id"),
        ({"price": 0}, "bad_price"),
        ({"price": -3.5}, "bad_price"),
        ({"volume": -1}, "bad_volume"),
        ({"seq": -1}, "bad_seq"),
        ({"source": "fax"}, "bad_source"),
        ({"ts": "2013-09-01T22:00:00.000Z"}, "ts_mismatch"),
        ({"ts_epoch_ms": 5, "ts": "1970-01-01T00:00:00.005Z"}, "ts_out_of_range"),
        ({"ts_epoch_ms": 4102444800000, "ts": "2100-01-01T00:00:00.000Z"}, "ts_out_of_range"),
    ]
    out = []
    for change, reason in cases:
        obj = tick_dict(template)
        obj.update(change)
        out.append((json.dumps(obj).encode(), reason))
    out.append((json.dumps(tick_dict(template)).replace("1640.25", "NaN").encode(), "bad_price"))
    out.append(
        (
            json.dumps(tick_dict(template)).replace('"volume": 8.0', '"volume": 1e400').encode(),
            "bad_volume",
        )
    )
    return out


def es_ticks(count: int | None = None) -> list[Tick]:
    source = ReplaySource(DATA, symbol="ES", tz="America/Chicago", count=count)
    return [t for chunk in source.chunks() for t in chunk.ticks()]


@dataclass
class Sent:
    ticks: list[Tick]
    rejects: list[str]  # the expected reason of each bad message
    duplicates: int


def send_hostile(
    bootstrap: str,
    topic: str,
    ticks: list[Tick],
    *,
    seed: int = 1,
    block: int = 200,
    span_ms: int = 30_000,
    duplicate_share: float = 0.03,
    garbage_every: int = 400,
) -> Sent:
    """Ticks shuffled within blocks (at most ``block`` ticks and ``span_ms`` of event time, so
    the disorder stays within the watermark), spread over partitions at random, with
    duplicates and malformed messages mixed in."""
    from tickstream.ticks.codec import encode_tick

    rng = random.Random(seed)
    messages: list[tuple[bytes | None, int]] = []
    rejects: list[str] = []
    duplicates = 0
    bad = bad_ticks(ticks[0])
    garbage = GARBAGE + bad
    for part in _blocks(ticks, block, span_ms):
        rng.shuffle(part)
        for t in part:
            payload = encode_tick(t)
            messages.append((payload, rng.randrange(3)))
            if rng.random() < duplicate_share:
                messages.insert(
                    len(messages) - rng.randrange(min(len(messages), 50)),
                    (payload, rng.randrange(3)),
                )
                duplicates += 1
            if len(messages) % garbage_every == 0:
                value, reason = garbage[len(rejects) % len(garbage)]
                messages.append((value, rng.randrange(3)))
                rejects.append(reason)
    _produce_all(bootstrap, topic, messages)
    return Sent(ticks=ticks, rejects=rejects, duplicates=duplicates)


def _blocks(ticks: list[Tick], size: int, span_ms: int) -> list[list[Tick]]:
    blocks: list[list[Tick]] = []
    for t in ticks:
        if (
            blocks
            and len(blocks[-1]) < size
            and t.ts_epoch_ms - blocks[-1][0].ts_epoch_ms < span_ms
        ):
            blocks[-1].append(t)
        else:
            blocks.append([t])
    return blocks


def send_heartbeat(bootstrap: str, topic: str, ts_ms: int, partitions: int = 3) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for p in range(partitions):
        producer.produce(topic, encode_heartbeat(Heartbeat("test", ts_ms)), partition=p)
    assert producer.flush(30) == 0


def _with(template: Tick, **fields: Any) -> bytes:
    obj = tick_dict(template)
    obj.update(fields)
    return json.dumps(obj, ensure_ascii=False).encode()


def _raw_field(template: Tick, field: str, literal: str) -> bytes:
    """A tick whose ``field`` holds a raw JSON literal (NaN, Infinity, 1e400, ...)."""
    obj = tick_dict(template)
    obj[field] = "__LITERAL__"
    return json.dumps(obj).replace('"__LITERAL__"', literal).encode()


def iso(ms: int) -> str:
    return Tick("X", ms, 1, 1, 0, "x", "replay").ts


def fuzz_cases(rng: random.Random, t: Tick) -> list[tuple[bytes | None, str]]:
    """One of each kind of malformed message, built around the valid tick ``t``."""
    good = json.dumps(tick_dict(t)).encode()
    junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 120)))
    printable = "".join(chr(rng.randrange(32, 127)) for _ in range(rng.randrange(1, 60)))
    far_future = 4_102_444_800_000 + rng.randrange(10**9)  # after 2100
    ancient = rng.choice([0, 5, -2_208_988_800_000, 315_532_800_000])  # 1970, 1900, 1980
    return [
        (b"\xff" + junk, "invalid_utf8"),
        (("{" + printable.replace("}", "")).encode(), "malformed_json"),
        (good[: rng.randrange(1, len(good) - 1)], "malformed_json"),
        (_with(t, price=str(t.price)), "bad_type"),
        (_with(t, seq=t.seq + 0.5), "bad_type"),
        (_with(t, ts_epoch_ms=str(t.ts_epoch_ms)), "bad_type"),
        (_with(t, volume=True), "bad_type"),
        (_raw_field(t, "seq", "99999999999999999999999"), "bad_type"),
        (_with(t, symbol=rng.randrange(10**6)), "bad_symbol"),
        (_with(t, symbol={"nested": "ES"}), "bad_symbol"),
        (
            _with(
                t,
                symbol=rng.choice(
                    ["E\u200bS", "\uff25\uff33", "ÉS", "E\u0301S", "\u202eES", "ES📈", "es", ""]
                ),
            ),
            "bad_symbol",
        ),
        (_raw_field(t, "price", "NaN"), "bad_price"),
        (_raw_field(t, "price", "-Infinity"), "bad_price"),
        (_raw_field(t, "price", "1e400"), "bad_price"),
        (_raw_field(t, "volume", "Infinity"), "bad_volume"),
        (_with(t, volume=-rng.randrange(1, 100)), "bad_volume"),
        (_with(t, ts_epoch_ms=far_future, ts=iso(far_future)), "ts_out_of_range"),
        (_with(t, ts_epoch_ms=ancient, ts=iso(ancient)), "ts_out_of_range"),
        (_with(t, schema_version=rng.choice([0, 2, 99])), "unknown_schema_version"),
        (rng.choice([None, b""]), "empty"),
        (_with(t, event_id=""), "bad_event_id"),
        # What from_json would read as a valid tick (issue 26): never a guess.
        (good[:-1] + b', "price": 1.0}', "duplicate_key"),
        (good + rng.choice([b" x", b"\n" + good, b",1"]), "trailing_text"),
        (good.replace(b'"', b"'"), "single_quotes"),
        (_with(t, producer_id=rng.randrange(100)), "bad_type"),
    ]


def send_fuzzed(
    bootstrap: str, topic: str, ticks: list[Tick], *, n_bad: int, seed: int = 5
) -> Sent:
    """Good ticks in order on random partitions, with ``n_bad`` malformed messages mixed in,
    a few oversized ones, and reused event_ids with other content (after their original, in
    the same partition)."""
    from tickstream.ticks.codec import encode_tick

    rng = random.Random(seed)
    every = max(1, len(ticks) // n_bad)
    messages: list[tuple[bytes | None, int]] = []
    rejects: list[str] = []
    recent: list[tuple[Tick, int]] = []
    for i, t in enumerate(ticks):
        partition = rng.randrange(3)
        messages.append((encode_tick(t), partition))
        recent = [*recent[-50:], (t, partition)]
        if i % every == 0 and len(rejects) < n_bad:
            kind = len(rejects) % 25
            if kind == 24 and len(recent) > 5:
                original, where = recent[-rng.randrange(2, 5)]
                changed = Tick(
                    original.symbol,
                    original.ts_epoch_ms,
                    original.price + 0.25,
                    original.volume,
                    original.seq,
                    original.event_id,
                    original.source,
                )
                messages.append((encode_tick(changed), where))
                rejects.append("event_id_conflict")
            elif kind == 23 and rejects.count("oversized") < 20:
                messages.append((b"{" + b" " * 70_000 + b"}", rng.randrange(3)))
                rejects.append("oversized")
            else:
                value, reason = rng.choice(fuzz_cases(rng, t))
                messages.append((value, rng.randrange(3)))
                rejects.append(reason)
    _produce_all(bootstrap, topic, messages)
    return Sent(ticks=ticks, rejects=rejects, duplicates=0)


def _produce_all(bootstrap: str, topic: str, messages: list[tuple[bytes | None, int]]) -> None:
    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 20}
    )
    for value, partition in messages:
        while True:
            try:
                producer.produce(topic, value, key=None, partition=partition)
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(60) == 0
