"""The spool's test scenarios: a simulated live source at 500 ticks/s whose ticks a test can
regenerate, and the three-minute outage, which runs in the background of the whole session
(started by an autouse fixture in conftest.py when its test is selected): its three minutes,
mostly waiting, overlap other tests instead of adding to the suite's time."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.helpers import produce_env, run_tickstream, spawn_produce, wait_until
from tests.integration.test_bars_job import as_dicts
from tests.streams import iso
from tickstream.kafka.admin import TopicSpec, ensure_topics
from tickstream.kafka.local import LocalKafka
from tickstream.sources.base import now_ms
from tickstream.sources.simulate import SimulateSource

OUTAGE_TEST = "test_a_three_minute_outage_loses_no_tick"

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
    done = run_tickstream(env, "produce", "--status")
    assert done.returncode == 0, done.stderr
    return done.stdout


def pending_in(status: str) -> int:
    found = re.search(r"([\d,]+) ticks Kafka has not acknowledged", status)
    assert found is not None, status
    return int(found.group(1).replace(",", ""))


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
