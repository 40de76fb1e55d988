"""The producer's spool against a real broker: an outage, SIGKILLs, a full spool.

The outage scenario has a broker of its own and runs in a thread from the session's start
(tests/spool_scenarios.py), so that its three minutes, mostly waiting, overlap other tests; its
test waits for it.

Each run's ticks are known independently: the simulated source with a seed and a start time
gives the same ticks whatever the pacing, so a test regenerates them (``generate``) and
compares, by event_id, with what Kafka and the lake hold.
"""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from tests.helpers import wait_until
from tests.integration.test_bars_job import WINDOW_MS, assert_reconciled, settings_for
from tests.integration.test_producer import split
from tests.jobs import Jobs
from tests.kafka_helpers import consume_all
from tests.reference import assert_same_bars, lake_bars, lake_sql, reference_bars
from tests.spool_scenarios import (
    RATE,
    Outage,
    last_spooled,
    pending_in,
    produce_args,
    producer_env,
    run_ticks,
    spawn,
    spool_status,
)
from tests.streams import send_heartbeat
from tickstream.config import Settings
from tickstream.kafka.admin import TopicSpec, ensure_topics
from tickstream.kafka.local import LocalKafka
from tickstream.kafka.spool import Spool
from tickstream.sources.base import now_ms


def topic_ids(bootstrap: str, topic: str) -> list[str]:
    ticks, _ = split(consume_all(bootstrap, topic))
    return [obj["event_id"] for _, obj in ticks]


def bars_of(
    spark: SparkSession,
    base: Settings,
    bootstrap: str,
    topic: str,
    out: Path,
    ticks: list[dict[str, Any]],
) -> Settings:
    """Run the job over the topic; check the lake holds exactly ``ticks`` and their bars."""
    send_heartbeat(bootstrap, topic, max(t["ts_epoch_ms"] for t in ticks) + 10 * WINDOW_MS)
    settings = settings_for(base, bootstrap, topic, out)
    with Jobs(spark, "bars_of") as jobs:
        jobs.drain(settings)
    archived = [row[0] for row in lake_sql(out, "SELECT event_id FROM ticks")]
    assert len(archived) == len(set(archived))  # nothing counted twice
    assert set(archived) == {t["event_id"] for t in ticks}  # nothing missing, nothing else
    # Prices in cents: VWAP's sums differ in the last bits with the order of addition.
    assert_same_bars(lake_bars(out), reference_bars(ticks, WINDOW_MS))
    assert_reconciled(settings)
    return settings


def test_a_producer_killed_three_times_loses_nothing_and_counts_nothing_twice(
    kafka_broker: str,
    make_topic: Any,
    spark: SparkSession,
    base_settings: Settings,
    tmp_path: Path,
) -> None:
    """SIGKILL at random moments, three times; each start resends what the spool holds first.
    Afterwards each run's ticks in Kafka are exactly a prefix of what it generated, at least as
    long as what it reported spooled, and the lake counts every tick once."""
    topic = make_topic(3)
    env = producer_env(kafka_broker, topic, tmp_path / "home")
    rng = random.Random(13)
    runs: list[tuple[int, int, Path]] = []
    for k in range(4):
        seed, start_ms = 100 + k, now_ms() // 1000 * 1000 + k  # a run's own ticks
        log = tmp_path / f"produce-{k}.log"
        last = k == 3
        producer = spawn(
            produce_args(seed, start_ms, *(["--count", "1500"] if last else [])), env, log
        )
        try:
            if last:
                producer.wait(timeout=120)
                assert producer.returncode == 0, log.read_text()
            else:
                wait_until(lambda: last_spooled(log) > 0, timeout=60, message="producing")  # noqa: B023
                time.sleep(rng.uniform(0.2, 4.0))
                producer.send_signal(signal.SIGKILL)
                assert producer.wait(timeout=30) == -signal.SIGKILL
        finally:
            if producer.poll() is None:
                producer.kill()
        runs.append((seed, start_ms, log))
    logs = [log.read_text() for _, _, log in runs]
    assert any("go to Kafka first" in text for text in logs[1:]), logs
    assert "the spool is empty (Kafka acknowledged every tick)" in logs[-1]

    ids = topic_ids(kafka_broker, topic)
    expected: list[dict[str, Any]] = []
    for seed, start_ms, log in runs:
        # How many of this run's ticks Kafka has: they must be its first ones, no gap.
        mine = {t["event_id"] for t in run_ticks(seed, start_ms, 20 * RATE)}
        got = {i for i in ids if i in mine}
        ticks = run_ticks(seed, start_ms, len(got))
        assert got == {t["event_id"] for t in ticks}, f"a gap in the ticks of run {seed}"
        assert len(got) >= last_spooled(log)  # everything it said it had spooled
        expected += ticks
    assert len(expected) == len(set(ids))
    bars_of(spark, base_settings, kafka_broker, topic, tmp_path / "lake", expected)


def test_a_full_spool_stops_with_one_line_and_is_sent_at_the_next_start(
    own_broker: LocalKafka, tmp_path: Path
) -> None:
    bootstrap = f"127.0.0.1:{own_broker.port}"
    topic = "ticks-full"
    ensure_topics(bootstrap, [TopicSpec(topic, 3)])
    env = producer_env(bootstrap, topic, tmp_path / "home", SPOOL_MAX_BYTES="1MiB")
    start_ms = now_ms() // 1000 * 1000
    log = tmp_path / "produce.log"
    producer = spawn(produce_args(21, start_ms), env, log)
    try:
        wait_until(lambda: last_spooled(log) >= 2 * RATE, timeout=90, message="ticks flowing")
        own_broker.stop(timeout=30)
        producer.wait(timeout=120)  # 1 MiB holds about 15 s of these ticks
    finally:
        if producer.poll() is None:
            producer.kill()
    err = log.read_text()
    assert producer.returncode == 1, err
    errors = [line for line in err.splitlines() if line.startswith("tickstream: error:")]
    assert len(errors) == 1, err
    assert "is full" in errors[0]
    assert "SPOOL_MAX_BYTES=1.0 MiB" in errors[0]
    assert "the next `tickstream produce` sends it first" in errors[0]
    assert "Traceback" not in err
    spooled = int(re.findall(r"spooled ([\d,]+) ticks", err)[-1].replace(",", ""))
    assert pending_in(spool_status(env)) > 0

    own_broker.start(timeout=120)
    log2 = tmp_path / "produce-2.log"
    again = spawn(produce_args(22, now_ms(), "--count", "100"), env, log2)
    assert again.wait(timeout=120) == 0, log2.read_text()
    assert "go to Kafka first" in log2.read_text()
    ids = set(topic_ids(bootstrap, topic))
    first = {t["event_id"] for t in run_ticks(21, start_ms, spooled)}
    assert first <= ids  # every tick the full spool held reached Kafka
    assert len(ids) == spooled + 100


def test_a_producer_started_while_kafka_is_down_spools_and_sends_when_it_answers(
    own_broker: LocalKafka, tmp_path: Path
) -> None:
    """Kafka down at the start: the producer starts, spools, finds the topic when Kafka comes
    back, and every tick reaches it once; the spool keeps the topic's partition count."""
    bootstrap = f"127.0.0.1:{own_broker.port}"
    topic = "ticks-late-start"
    ensure_topics(bootstrap, [TopicSpec(topic, 3)])
    own_broker.stop(timeout=30)
    env = producer_env(bootstrap, topic, tmp_path / "home")
    start_ms = now_ms() // 1000 * 1000
    log = tmp_path / "produce.log"
    producer = spawn(produce_args(23, start_ms, "--count", str(4 * RATE)), env, log)
    try:
        wait_until(lambda: last_spooled(log) >= 2 * RATE, timeout=90, message="ticks spooled")
        assert producer.poll() is None, log.read_text()
        own_broker.start(timeout=120)
        assert producer.wait(timeout=180) == 0, log.read_text()
    finally:
        if producer.poll() is None:
            producer.kill()
    err = log.read_text()
    assert f"kafka unreachable at {bootstrap}: starting anyway" in err
    assert "kafka answered after " in err
    assert "Traceback" not in err
    sent = topic_ids(bootstrap, topic)
    assert sorted(sent) == sorted(t["event_id"] for t in run_ticks(23, start_ms, 4 * RATE))
    assert "empty, Kafka has every tick" in spool_status(env)
    spool = tmp_path / "home" / "spool" / topic
    assert json.loads((spool / "topic.json").read_text()) == {"topic": topic, "partitions": 3}


def test_a_three_minute_outage_loses_no_tick(
    outage_in_background: Outage | None,
    spark: SparkSession,
    base_settings: Settings,
    tmp_path: Path,
) -> None:
    """500 ticks/s, the broker stopped for 3 minutes (18x SEND_TIMEOUT_SEC) and started again:
    every tick the source gave reaches the lake once, and the bars are exact. (The scenario ran
    while the tests above did; this waits for its end.)"""
    outage = outage_in_background
    assert outage is not None
    run = outage.result()
    err = run.log.read_text()
    assert run.returncode == 0, err
    assert "kafka unreachable at" in err
    assert "ticks go to the spool" in err
    assert "kafka reachable again after" in err
    assert f"spooled {run.count:,} ticks, sent {run.count:,}" in err
    assert "the spool is empty (Kafka acknowledged every tick)" in err
    assert pending_in(run.status) >= 50 * RATE, run.status  # a minute into the outage
    pid = run.status.rsplit("pid: ", 1)[1].rstrip(")")
    assert f"(pid {pid}) is running on it" in run.status
    assert ": empty, Kafka has every tick" in spool_status(run.env())

    ticks = run_ticks(run.seed, run.start_ms, run.count)
    ids = topic_ids(run.bootstrap, run.topic)
    assert len(ids) == run.count  # the idempotent producer wrote none twice
    assert set(ids) == {t["event_id"] for t in ticks}
    bars_of(spark, base_settings, run.bootstrap, run.topic, tmp_path / "lake", ticks)


def test_the_spool_checks_its_topic_when_kafka_answers(
    kafka_broker: str, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    """A spool that holds another topic's ticks is refused in one line, and nothing is sent; a
    partition count that changed since the spool last saw the topic is said, and kept."""
    first, other = make_topic(partitions=3), make_topic(partitions=3)
    folder = tmp_path / "spool"
    spool = Spool(folder, max_bytes=1 << 20).open()
    spool.append(["AAPL"], [b'{"kept":"for the first topic"}'])
    spool.save_topic_record(first, 3)
    spool.close()

    def produce(topic: str) -> subprocess.CompletedProcess[str]:
        env = producer_env(kafka_broker, topic, tmp_path / "home", SPOOL_DIR=str(folder))
        return subprocess.run(
            [sys.executable, "-m", "tickstream", "produce", "--spool", "on", "--count", "10"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    refused = produce(other)
    assert refused.returncode == 1, refused.stderr
    errors = [ln for ln in refused.stderr.splitlines() if ln.startswith("tickstream: error:")]
    assert errors == [
        f"tickstream: error: the spool at {folder} holds 1 unsent tick for topic '{first}', not "
        f"'{other}'; send them with KAFKA_TOPIC={first}, or give this topic its own SPOOL_DIR"
    ]
    assert topic_ids(kafka_broker, other) == []

    emptied = Spool(folder, max_bytes=1 << 20).open()
    emptied.ack(emptied.next_seq)
    emptied.sync()
    emptied.save_topic_record(other, 6)
    emptied.close()
    changed = produce(other)
    assert changed.returncode == 0, changed.stderr
    assert f"topic '{other}' has 3 partitions, 6 when this spool last saw it" in changed.stderr
    assert json.loads((folder / "topic.json").read_text()) == {"topic": other, "partitions": 3}
    assert len(topic_ids(kafka_broker, other)) == 10
