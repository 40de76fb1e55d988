"""`tickstream produce` against the real broker: every tick exactly once, fields exact."""

from __future__ import annotations

import csv
import gzip
import json
import signal
import subprocess
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from tests.helpers import (
    ES_DATA,
    REPLAY_ES,
    produce_env,
    run_tickstream,
    spawn_produce,
    wait_until,
)
from tests.kafka_helpers import Record, consume_all
from tickstream.kafka.local import free_port

DATA = ES_DATA


def produce(
    bootstrap: str, topic: str, *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return run_tickstream(produce_env(bootstrap, topic), "produce", *args, timeout=timeout)


Pair = tuple[Record, dict[str, Any]]


def split(records: list[Record]) -> tuple[list[Pair], list[Pair]]:
    ticks: list[Pair] = []
    beats: list[Pair] = []
    for r in records:
        obj = json.loads(r.value)
        (ticks if obj["type"] == "tick" else beats).append((r, obj))
    return ticks, beats


def expected_es_ticks() -> list[tuple[int, float, float]]:
    """The file read with the standard library: (epoch ms, price, volume) per row."""
    chicago = ZoneInfo("America/Chicago")
    out = []
    with gzip.open(DATA, "rt") as fh:
        for row in csv.DictReader(fh):
            local = datetime.strptime(row["DateTime"], "%Y-%m-%d %H:%M:%S.%f").replace(
                tzinfo=chicago
            )
            ms = round(local.astimezone(UTC).timestamp() * 1000)
            out.append((ms, float(row["Price"]), float(row["Volume"])))
    return out


def test_replay_of_real_ticks_arrives_exactly_once_in_order(
    kafka_broker: str, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=3)
    done = produce(
        kafka_broker,
        topic,
        *REPLAY_ES,
        "--speed",
        "max",
        "--heartbeat-interval-sec",
        "0.2",
    )
    assert done.returncode == 0, done.stderr
    assert "sent 120,000 ticks, acknowledged 120,000, failed 0" in done.stderr

    ticks, beats = split(consume_all(kafka_broker, topic))
    expected = expected_es_ticks()
    assert len(ticks) == len(expected) == 120_000
    # One symbol, one key, one partition: offsets give the order the producer sent.
    assert {r.partition for r, _ in ticks} == {ticks[0][0].partition}
    ticks.sort(key=lambda pair: pair[0].offset)
    assert [(o["ts_epoch_ms"], o["price"], o["volume"]) for _, o in ticks] == expected
    assert [o["seq"] for _, o in ticks] == list(range(120_000))
    assert all(r.key == b"ES" for r, _ in ticks)
    assert all(o["symbol"] == "ES" and o["source"] == "replay" for _, o in ticks)
    assert all(
        o["ts"]
        == datetime.fromtimestamp(o["ts_epoch_ms"] / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
        for _, o in ticks[:1000]
    )
    assert len({o["event_id"] for _, o in ticks}) == 120_000

    # Heartbeats: on every partition, never ticks, the last one at the last event time.
    assert {r.partition for r, _ in beats} == {0, 1, 2}
    assert all(
        set(o) == {"type", "schema_version", "producer_id", "ts", "ts_epoch_ms"} for _, o in beats
    )
    last_per_partition = {}
    for r, o in sorted(beats, key=lambda pair: pair[0].offset):
        last_per_partition[r.partition] = o["ts_epoch_ms"]
    assert set(last_per_partition.values()) == {expected[-1][0]}


def test_replaying_again_sends_the_same_event_ids(
    kafka_broker: str, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=3)
    for _ in range(2):
        done = produce(
            kafka_broker,
            topic,
            *REPLAY_ES,
            "--speed",
            "max",
            "--count",
            "5000",
        )
        assert done.returncode == 0, done.stderr
    ticks, _ = split(consume_all(kafka_broker, topic))
    ids = [o["event_id"] for _, o in ticks]
    assert len(ids) == 10_000
    assert len(set(ids)) == 5000  # the second run is the same ticks again: the job can drop them


def test_simulated_symbols_keep_their_order_per_partition(
    kafka_broker: str, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=3)
    done = produce(
        kafka_broker,
        topic,
        "--count",
        "30000",
        "--msgs-per-sec",
        "0",
        "--seed",
        "11",
        "--tickers",
        "AAPL,MSFT,GOOG,AMZN,TSLA",
        "--start",
        "2024-03-01T14:30:00Z",
    )
    assert done.returncode == 0, done.stderr
    ticks, beats = split(consume_all(kafka_broker, topic))
    assert len(ticks) == 30_000
    by_symbol: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    for r, o in ticks:
        assert r.key == o["symbol"].encode()
        assert o["price"] > 0
        assert abs(o["price"] * 100 - round(o["price"] * 100)) < 1e-6
        by_symbol[o["symbol"]].append((r.partition, r.offset, o["seq"]))
    assert set(by_symbol) == {"AAPL", "MSFT", "GOOG", "AMZN", "TSLA"}
    for rows in by_symbol.values():
        assert len({p for p, _, _ in rows}) == 1
        rows.sort(key=lambda row: row[1])
        assert [s for _, _, s in rows] == list(range(len(rows)))
    assert {r.partition for r, _ in beats} == {0, 1, 2}


def test_ctrl_c_flushes_reports_and_exits_0(
    kafka_broker: str, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=3)
    proc = spawn_produce(produce_env(kafka_broker, topic), "--msgs-per-sec", "2000")
    try:
        wait_until(
            lambda: len(split(consume_all(kafka_broker, topic, timeout=10))[0]) > 500,
            timeout=60,
            message="ticks flowing",
        )
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "SIGINT received: flushing and stopping" in err
    summary = next(line for line in err.splitlines() if line.startswith("produce: sent "))
    sent = int(summary.split()[2].replace(",", ""))
    ticks, _ = split(consume_all(kafka_broker, topic))
    assert len(ticks) == sent
    assert f"acknowledged {sent:,}, failed 0" in summary


def test_a_broker_that_is_down_at_start_is_reported(tmp_path: Path) -> None:
    done = produce(f"127.0.0.1:{free_port()}", "events", "--count", "1", "--connect-timeout", "3")
    assert done.returncode == 1
    assert "waiting for Kafka at 127.0.0.1:" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("tickstream: error: Kafka at 127.0.0.1:")
    assert "did not answer within 3s; start it (`tickstream kafka start`)" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_missing_topic_is_reported(kafka_broker: str) -> None:
    done = produce(kafka_broker, "no-such-topic", "--count", "1", "--connect-timeout", "10")
    assert done.returncode == 1
    assert "topic 'no-such-topic' does not exist" in done.stderr
    assert "Traceback" not in done.stderr


def test_bad_rows_are_reported_and_the_rest_delivered(
    kafka_broker: str, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = make_topic(partitions=3)
    path = tmp_path / "ticks.csv"
    path.write_text(
        "symbol,ts,price,volume\n"
        "AAPL,2024-03-01T14:30:00.001Z,180.5,100\n"
        "AAPL,2024-03-01T14:30:00.002Z,oops,100\n"
        "MSFT,2024-03-01T14:30:00.003Z,410.25,5\n"
    )
    done = produce(kafka_broker, topic, "--source", "replay", "--file", str(path), "--speed", "max")
    assert done.returncode == 0, done.stderr
    assert "produce: ticks.csv line 3: bad price 'oops' (skipped)" in done.stderr
    assert "sent 2 ticks, acknowledged 2, failed 0" in done.stderr
    assert "bad rows skipped 1" in done.stderr
    ticks, _ = split(consume_all(kafka_broker, topic))
    assert sorted(o["symbol"] for _, o in ticks) == ["AAPL", "MSFT"]

    failing = produce(
        kafka_broker, topic, "--source", "replay", "--file", str(path), "--on-bad-row", "fail"
    )
    assert failing.returncode == 1
    assert (
        "tickstream: error: ticks.csv line 3: bad price 'oops'; "
        "fix the row, or pass --on-bad-row skip" in failing.stderr
    )
