"""Fixtures: a real Kafka broker (KRaft) and a real SparkSession, once per test session.

The broker and Spark are started lazily: a run of the unit tests alone starts neither.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import uuid
import warnings
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.kafka_cluster import lasting_ports
from tickstream.config import Settings, load_settings
from tickstream.kafka.admin import TopicSpec, ensure_topics, pipeline_topics
from tickstream.kafka.local import LocalKafka

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from tests.jobs import Jobs
    from tests.spool_scenarios import Outage

REPO = Path(__file__).resolve().parent.parent


def repo_jars_dir() -> Path:
    """The jar cache the test command filled (`tickstream jars fetch`), shared by all tests."""
    return Path(os.environ.get("TICKSTREAM_JARS_DIR", REPO / ".tickstream" / "jars"))


@pytest.fixture(scope="session")
def state_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tickstream-home")


@pytest.fixture(scope="session")
def base_settings(state_home: Path) -> Settings:
    return load_settings(
        {
            "tickstream_home": state_home,
            "tickstream_jars_dir": repo_jars_dir(),
            "spark_master": "local[2]",
            # In-process jobs publish no bars unless a test asks (and creates the topics).
            "bars_topic": "off",
            "bars_live_topic": "off",
        }
    )


@pytest.fixture(scope="session")
def kafka_broker(state_home: Path) -> Iterator[str]:
    """A real single-node broker on a free port; yields its bootstrap address."""
    broker = LocalKafka(
        state_home / "broker", port=lasting_ports()[0], jars_dir=repo_jars_dir(), heap="768m"
    )
    result = broker.start(timeout=120)
    # The default bars topics, for the `tickstream stream` children run with default settings.
    ensure_topics(result.bootstrap, pipeline_topics(load_settings({"kafka_topic": "events"})))
    try:
        yield result.bootstrap
    finally:
        broker.stop(timeout=30)


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalKafka]:
    """A broker of this test's own, which the test may stop and start."""
    with started_broker(tmp_path / "home") as broker:
        yield broker


@contextmanager
def started_broker(home: Path) -> Iterator[LocalKafka]:
    """A broker of one's own on a free port, stopped on the way out."""
    broker = LocalKafka(home, port=lasting_ports()[0], jars_dir=repo_jars_dir(), heap="512m")
    broker.start(timeout=120)
    try:
        yield broker
    finally:
        broker.stop(timeout=30)


@pytest.fixture
def make_topic(kafka_broker: str, request: pytest.FixtureRequest) -> Callable[..., str]:
    """Create a topic unique to this test: ``make_topic(partitions=3)`` -> its name."""
    stem = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name)[:60].strip("-")

    def create(partitions: int = 3) -> str:
        name = f"t-{stem}-{uuid.uuid4().hex[:8]}"
        ensure_topics(kafka_broker, [TopicSpec(name, partitions)])
        return name

    return create


@pytest.fixture(scope="session")
def spark(base_settings: Settings) -> Iterator[SparkSession]:
    """A real local SparkSession with the Kafka connector attached from the jar cache.

    Shared by the whole session: :func:`no_query_left_behind` keeps one test's streaming query
    from outliving it.
    """
    from tickstream.jvm.spark import build_spark

    # With Hadoop's S3A filesystem: test_object_store writes to a local S3 server.
    session = build_spark(base_settings, app_name="tickstream-tests", object_store=True)
    # A stop that waits on a stuck micro-batch gives up instead of hanging the suite.
    session.conf.set("spark.sql.streaming.stopTimeout", "90s")
    _SPARK.append(session)
    try:
        yield session
    finally:
        _SPARK.clear()
        session.stop()


@pytest.fixture
def jobs(spark: SparkSession, request: pytest.FixtureRequest) -> Iterator[Jobs]:
    """Start bars jobs in this process (``jobs.start``, ``jobs.drain``); all are stopped after
    the test, whether it passed, failed or timed out."""
    from tests.jobs import Jobs

    started = Jobs(spark, request.node.nodeid)
    try:
        yield started
    finally:
        started.stop_all()


_LAST_SPARK_TEST: list[str] = ["(no test yet)"]


@pytest.fixture(autouse=True)
def no_query_left_behind(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that leaves a streaming query active errors in its own teardown, and the query is
    stopped there; one found active when a test starts (left by a fixture) is stopped and named
    with the test before. Only for tests that use the SparkSession (unit tests start none)."""
    if "spark" not in request.fixturenames:
        yield
        return
    from tests.jobs import stop_leftovers

    session: SparkSession = request.getfixturevalue("spark")
    stopped = stop_leftovers(session)
    if stopped:
        warnings.warn(
            f"stopped {', '.join(stopped)}, still active after {_LAST_SPARK_TEST[0]}",
            stacklevel=1,
        )
    before = {q.id for q in session.streams.active}
    _LAST_SPARK_TEST[0] = request.node.nodeid
    yield
    # Queries a broader fixture started before this test (its `live` job) are its own to stop.
    leaked = [q for q in session.streams.active if q.id not in before]
    if leaked:
        names = stop_leftovers(session)
        pytest.fail(
            f"{request.node.nodeid} left {', '.join(names)} active; stopped it now "
            "(start jobs with the `jobs` fixture, which stops them)",
            pytrace=False,
        )


# The session's SparkSession once the `spark` fixture has built it.
_SPARK: list[SparkSession] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """After a test that used Spark fails, and before its fixtures' teardown calls Spark again,
    the main thread's connection to the JVM is replaced: a pytest-timeout may have cut a call
    short, and that connection would hang the teardown (see tests.jobs.drop_thread_connection)."""
    report = yield
    if call.when == "call" and report.failed and _SPARK:
        from tests.jobs import drop_thread_connection

        drop_thread_connection(_SPARK[0])
    return report


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration is marked `integration`."""
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def stream_proc(
    kafka_broker: str, base_settings: Settings
) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []

    def start(
        topic: str, out: str | Path, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[str]:
        given = env or {}
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": kafka_broker,
            "KAFKA_TOPIC": topic,
            "OUTPUT_PATH": str(out),
            "TICKSTREAM_HOME": str(base_settings.tickstream_home),
            "TICKSTREAM_JARS_DIR": str(base_settings.jars_dir),
            "SPARK_MASTER": "local[2]",
            "CONSOLE_BARS": "false",
            **given,
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "tickstream", "stream", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group: SIGKILL takes Spark's JVM too
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="session", autouse=True)
def outage_in_background(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Outage | None]:
    """The spool's three-minute broker outage, started with the session when its test is
    selected (tests/spool_scenarios.py); test_spool.py's outage test waits for its end."""
    from tests.spool_scenarios import OUTAGE_TEST, Outage

    if not any(item.name == OUTAGE_TEST for item in request.session.items):
        yield None
        return
    home = tmp_path_factory.mktemp("outage")
    with started_broker(home / "broker") as broker:
        scenario = Outage(broker, home)
        scenario.thread = threading.Thread(target=scenario.run, name="outage", daemon=True)
        scenario.thread.start()
        try:
            yield scenario
        finally:
            scenario.thread.join(timeout=600)
