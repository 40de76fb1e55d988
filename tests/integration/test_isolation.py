"""One test's failure never fails the tests after it: a test that fails or times out in the
middle of a streaming run leaves no active query behind.

Runs a small suite of its own in a pytest subprocess (the suite's own fixtures, the session's
broker, a SparkSession of its own) whose tests fail on purpose mid-stream, each in one of the
ways CI met: an assertion while the bars job runs, an assertion with a bare query running, a
pytest-timeout inside ``awaitTermination``, and one while waiting for the job to finish. The
test after them must find no query active and be able to start one under the job's query name
(CI's failure was "Cannot start query with name tickstream-bars as a query with that name is
already active").
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

from tests.helpers import run_group

REPO = Path(__file__).resolve().parents[2]

INNER_CONFTEST = """
import json
import os

import pytest

from tests.conftest import *  # noqa: F403  the suite's own fixtures and guard


@pytest.fixture(scope="session")
def kafka_broker() -> str:
    return os.environ["OUTER_BOOTSTRAP"]  # the outer session's broker


def pytest_runtest_logreport(report):
    with open(os.environ["INNER_REPORTS"], "a") as out:
        record = {"test": report.nodeid.split("::")[-1], "when": report.when,
                  "outcome": report.outcome, "text": report.longreprtext[-2000:]}
        out.write(json.dumps(record) + "\\n")
"""

INNER_TESTS = '''
import time

import pytest

from tests.helpers import wait_until
from tests.jobs import await_end
from tests.integration.test_bars_job import settings_for
from tests.streams import es_ticks, send_hostile


def rate_query(spark):
    """A query under the bars job's name, running until stopped."""
    return (
        spark.readStream.format("rate").option("rowsPerSecond", 10).load()
        .writeStream.format("noop").queryName("tickstream-bars")
        .trigger(processingTime="200 milliseconds").start()
    )


def test_1_the_job_fails_mid_stream(jobs, make_topic, base_settings, tmp_path, kafka_broker):
    topic = make_topic(partitions=3)
    send_hostile(kafka_broker, topic, es_ticks(500), duplicate_share=0, garbage_every=10**9)
    job = jobs.start(settings_for(base_settings, kafka_broker, topic, tmp_path / "lake"))
    wait_until(lambda: job.last_report is not None, timeout=240, message="a first batch")
    assert job.query.isActive
    raise AssertionError("deliberate failure while the bars job runs")


def test_2_a_bare_query_fails_mid_stream(spark):
    query = rate_query(spark)
    wait_until(lambda: query.lastProgress, timeout=120, message="a first batch")
    raise AssertionError("deliberate failure while a bare query runs")


@pytest.mark.timeout(15)
def test_3_times_out_waiting_for_a_query(spark):
    query = rate_query(spark)
    query.awaitTermination()  # never ends by itself: pytest-timeout fails the test


@pytest.mark.timeout(20)
def test_4_times_out_waiting_for_the_job(jobs, make_topic, base_settings, tmp_path, kafka_broker):
    topic = make_topic(partitions=3)
    job = jobs.start(settings_for(base_settings, kafka_broker, topic, tmp_path / "lake"))
    await_end(job)  # a job that is not `once` never ends: pytest-timeout fails the test


def test_5_the_next_test_finds_none(spark):
    assert spark.streams.active == []
    query = rate_query(spark)  # the name is free again
    wait_until(lambda: query.lastProgress, timeout=120, message="a first batch")
    query.stop()
'''


def run_inner(tmp_path: Path, bootstrap: str) -> dict[tuple[str, str], dict[str, Any]]:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text(textwrap.dedent(INNER_CONFTEST))
    (suite / "test_inner.py").write_text(textwrap.dedent(INNER_TESTS))
    reports = tmp_path / "reports.jsonl"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "OUTER_BOOTSTRAP": bootstrap,
        "INNER_REPORTS": str(reports),
    }
    done = run_group(
        [
            *(sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts="),
            *("-q", "--rootdir", str(suite), str(suite)),
        ],
        timeout=500,
        env=env,
        cwd=suite,
    )
    print(done.stdout[-5000:])
    assert reports.exists(), done.stdout + done.stderr
    records = [json.loads(line) for line in reports.read_text().splitlines()]
    return {(r["test"], r["when"]): r for r in records}


def test_a_test_that_fails_mid_stream_leaves_no_query_behind(
    kafka_broker: str, tmp_path: Path
) -> None:
    got = run_inner(tmp_path, kafka_broker)

    def outcome(test: str, when: str) -> str:
        return str(got[(test, when)]["outcome"])

    def text(test: str, when: str) -> str:
        return str(got[(test, when)]["text"])

    # The job's test failed on its assertion; the `jobs` fixture stopped the job: no error.
    job = "test_1_the_job_fails_mid_stream"
    assert outcome(job, "call") == "failed"
    assert "deliberate failure while the bars job runs" in text(job, "call")
    assert outcome(job, "teardown") == "passed", text(job, "teardown")

    # A bare query left running: the guard stops it and errors in that test's own teardown.
    bare = "test_2_a_bare_query_fails_mid_stream"
    assert outcome(bare, "call") == "failed"
    assert outcome(bare, "teardown") == "failed"
    assert f"{bare} left query 'tickstream-bars'" in text(bare, "teardown")

    # A timeout inside awaitTermination: the same.
    timed_out = "test_3_times_out_waiting_for_a_query"
    assert outcome(timed_out, "call") == "failed"
    assert "Timeout" in text(timed_out, "call")
    assert outcome(timed_out, "teardown") == "failed"
    assert f"{timed_out} left query 'tickstream-bars'" in text(timed_out, "teardown")

    # A timeout while waiting for the job: the `jobs` fixture stops it, no error.
    job_timed_out = "test_4_times_out_waiting_for_the_job"
    assert outcome(job_timed_out, "call") == "failed"
    assert "Timeout" in text(job_timed_out, "call")
    assert outcome(job_timed_out, "teardown") == "passed", text(job_timed_out, "teardown")

    # The test after them starts clean and runs its own query under the same name.
    after = "test_5_the_next_test_finds_none"
    for when in ("setup", "call", "teardown"):
        assert outcome(after, when) == "passed", text(after, when)
