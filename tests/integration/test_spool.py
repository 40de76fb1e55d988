"""The producer's spool against a real broker: an outage, SIGKILLs, a full spool.

The outage scenario has a broker of its own and runs in a thread from the module's start, so
that its three minutes (mostly waiting) overlap the other tests; its test, the last, waits for it.

Each run's ticks are known independently: the simulated source with a seed and a start time
gives the same ticks whatever the pacing, so a test regenerates them (``generate``) and
compares, by event_id, with what Kafka and the lake hold.
"""

from __future__ import annotations

import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from tests.conftest import repo_jars_dir
from tests.helpers import produce_env, spawn_produce, wait_until
from tests.integration.test_bars_job import WINDOW_MS, as_dicts, assert_reconciled, settings_for
from tests.integration.test_producer import split
from tests.kafka_helpers import consume_all
from tests.reference import assert_same_bars, lake_bars, lake_sql, reference_bars
from tests.streams import iso, send_heartbeat
from tickstream.bars.job import BarsJob
from tickstream.config import Settings
from tickstream.kafka.admin import TopicSpec, ensure_topics
from tickstream.kafka.local import LocalKafka, free_port
from tickstream.sources.base import now_ms
from tickstream.sources.simulate import SimulateSource

RATE = 500
TICKERS = ("AAPL", "MSFT", "GOOG")


def produce_args(seed: int, start_ms: int, *more: str) -> list[str]:
    return [
        "--tickers",
        ",".join(TICKERS),
        "--msgs-per-sec",
        str(RATE),
        "--seed",
        str(seed),
        "--start",
        iso(start_ms),
        "--spool",
        "on",
        "--status-every",
        "1",
        *more,
    ]


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[str]:
    with log.open("w") as err:
        return spawn_produce(env, *args, stdout=subprocess.DEVNULL, stderr=err)


def run_ticks(seed: int, start_ms: int, count: int) -> list[dict[str, Any]]:
    """The first ``count`` ticks of a run, regenerated without pacing."""
    source = SimulateSource(TICKERS, RATE, seed=seed, start_ms=start_ms)
    out: list[dict[str, Any]] = []
    while len(out) < count:
        out += as_dicts(source.generate(min(5000, count - len(out))).ticks())
    return out


def last_spooled(log: Path) -> int:
    """The last `spooled N` a producer's status line reported (ticks it had spooled)."""
    found = re.findall(r"spooled ([\d,]+)", log.read_text())
    return int(found[-1].replace(",", "")) if found else 0


def producer_env(bootstrap: str, topic: str, home: Path, **more: str) -> dict[str, str]:
    return produce_env(bootstrap, topic, TICKSTREAM_HOME=str(home), **more)


def spool_status(env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "tickstream", "produce", "--status"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def pending_in(status: str) -> int:
    found = re.search(r"([\d,]+) ticks Kafka has not acknowledged", status)
    assert found is not None, status
    return int(found.group(1).replace(",", ""))


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
    BarsJob(settings, spark).start(once=True).awaitTermination(600)
    archived = [row[0] for row in lake_sql(out, "SELECT event_id FROM ticks")]
    assert len(archived) == len(set(archived))  # nothing counted twice
    assert set(archived) == {t["event_id"] for t in ticks}  # nothing missing, nothing else
    # Prices in cents: VWAP's sums differ in the last bits with the order of addition.
    assert_same_bars(lake_bars(out), reference_bars(ticks, WINDOW_MS))
    assert_reconciled(settings)
    return settings


@dataclass
class Outage:
    """The outage scenario, run in a thread of its own while this module's other tests run:
    its three minutes are mostly waiting."""

    broker: LocalKafka
    home: Path
    topic: str = "ticks-outage"
    seed: int = 11
    count: int = RATE * 205  # about 10 s before the outage, 180 s of it, 15 s after
    start_ms: int = 0
    status: str = ""
    returncode: int | None = None
    error: BaseException | None = None
    thread: threading.Thread | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.broker.port}"

    @property
    def log(self) -> Path:
        return self.home / "produce.log"

    def env(self) -> dict[str, str]:
        return producer_env(self.bootstrap, self.topic, self.home, SEND_TIMEOUT_SEC="10")

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by the test that waits for it
            self.error = exc

    def _run(self) -> None:
        ensure_topics(self.bootstrap, [TopicSpec(self.topic, 3)])
        self.start_ms = now_ms() // 1000 * 1000
        cmd = produce_args(self.seed, self.start_ms, "--count", str(self.count))
        producer = spawn(cmd, self.env(), self.log)
        try:
            wait_until(lambda: last_spooled(self.log) >= 5 * RATE, timeout=90, message="flow")
            info, killed = self.broker.stop(timeout=30)
            assert info is not None
            assert not killed
            down_at = time.monotonic()
            wait_until(lambda: "kafka down" in self.log.read_text(), timeout=60, message="down")
            # The spool grows while Kafka is down, and `produce --status` says so.
            time.sleep(max(0.0, 60 - (time.monotonic() - down_at)))
            self.status = spool_status(self.env()) + f"(the producer's pid: {producer.pid})"
            time.sleep(max(0.0, 180 - (time.monotonic() - down_at)))  # the outage itself
            self.broker.start(timeout=120)
            self.returncode = producer.wait(timeout=240)
        finally:
            if producer.poll() is None:
                producer.kill()

    def result(self) -> Outage:
        assert self.thread is not None
        self.thread.join(timeout=600)
        assert not self.thread.is_alive(), "the outage scenario did not end"
        if self.error is not None:
            raise self.error
        return self


OUTAGE_TEST = "test_a_three_minute_outage_loses_no_tick"


@pytest.fixture(scope="module", autouse=True)
def outage(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Outage | None]:
    if not any(item.name == OUTAGE_TEST for item in request.session.items):
        yield None  # its test is not selected: no scenario in the background
        return
    home = tmp_path_factory.mktemp("outage")
    broker = LocalKafka(home / "broker", port=free_port(), jars_dir=repo_jars_dir(), heap="512m")
    broker.start(timeout=120)
    scenario = Outage(broker, home)
    scenario.thread = threading.Thread(target=scenario.run, name="outage", daemon=True)
    scenario.thread.start()
    try:
        yield scenario
    finally:
        scenario.thread.join(timeout=600)
        broker.stop(timeout=30)


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


def test_a_three_minute_outage_loses_no_tick(
    outage: Outage | None, spark: SparkSession, base_settings: Settings, tmp_path: Path
) -> None:
    """500 ticks/s, the broker stopped for 3 minutes (18x SEND_TIMEOUT_SEC) and started again:
    every tick the source gave reaches the lake once, and the bars are exact. (The scenario ran
    while the tests above did; this waits for its end.)"""
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
