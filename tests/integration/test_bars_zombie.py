"""Two whole `tickstream stream` processes on one lake: the second is refused in one line, the
first goes on, and the lake and the bars topic stay exact (each bar once, for read_committed);
and a broker stopped mid-transaction: the job waits, goes on, and publishes each bar once.

Without the lake's lock (tried), the newer job fenced the older on Kafka and then stopped too, on
Spark's checkpoint log: Spark keeps no two writers of a checkpoint apart, so the job does
(``lake/lock.py``). Kafka's fencing of an older job that runs unlocked (an object-store lake)
is tested against the broker in ``test_bars_transactions.py``."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.helpers import wait_until
from tests.integration.test_bars_job import (
    WINDOW_MS,
    as_dicts,
    assert_published_exactly_once,
    assert_reconciled,
    assert_tables_whole,
    committed_batches,
    drain_once,
    replay_args,
    send_es_hostile,
)
from tests.kafka_helpers import TopicEnds
from tests.reference import lake_bars, reference_bars
from tickstream.config import load_settings
from tickstream.kafka.admin import TopicSpec, ensure_topics
from tickstream.kafka.local import LocalKafka


def test_a_second_job_on_the_lake_is_refused_and_the_first_goes_on_exactly(
    kafka_broker: str,
    make_topic: Callable[..., str],
    stream_proc: Callable[..., subprocess.Popen[str]],
    tmp_path: Path,
) -> None:
    topic = make_topic(partitions=3)
    bars_topic = make_topic(partitions=3)
    ticks = send_es_hostile(kafka_broker, topic)
    out = tmp_path / "lake"
    args = replay_args(bars_topic)  # as in test_bars_job.py's SIGKILL test
    ends = TopicEnds(kafka_broker, bars_topic)
    try:
        first = stream_proc(topic, out, *args)
        wait_until(lambda: ends.total() > 0, timeout=240, interval=0.1, message="bars published")

        second = stream_proc(topic, out, *args)
        output, _ = second.communicate(timeout=180)
        assert second.returncode == 1, output
        lock = out / "_checkpoints" / "bars.lock"
        assert re.search(
            rf"^tickstream: error: another job is running on the lake {re.escape(str(out))} \(pid "
            rf"{first.pid} on \S+, since [-0-9: ]+ UTC; it holds {re.escape(str(lock))}\); "
            r"stop it first, or give this job its own OUTPUT_PATH$",
            output,
            re.MULTILINE,
        ), output
        assert "Traceback" not in output, output
        assert "Exception" not in output, output

        # The first was not disturbed: it goes on publishing.
        assert first.poll() is None
        published = ends.total()
        wait_until(lambda: ends.total() > published, timeout=120, message="the first goes on")
        first.send_signal(signal.SIGTERM)
        output, _ = first.communicate(timeout=120)
        assert first.returncode == 0, output
    finally:
        ends.close()

    drain_once(stream_proc(topic, out, "--once", *args))  # the lock is free again: it drains
    assert lake_bars(str(out)) == reference_bars(as_dicts(ticks), WINDOW_MS)
    assert_tables_whole(out)
    settings = load_settings(
        {
            "kafka_bootstrap_servers": kafka_broker,
            "kafka_topic": topic,
            "output_path": out,
            "bars_topic": bars_topic,
        }
    )
    assert_reconciled(settings)
    assert_published_exactly_once(kafka_broker, bars_topic, out)


def test_a_broker_stopped_mid_transaction_the_job_waits_and_publishes_each_bar_once(
    own_broker: LocalKafka,
    stream_proc: Callable[..., subprocess.Popen[str]],
    tmp_path: Path,
) -> None:
    """The broker stops the moment the bars topic grows (an open transaction, or its commit):
    the job waits, goes on by itself when the broker is back, and a read_committed consumer
    sees each of the lake's bars once."""
    bootstrap = f"127.0.0.1:{own_broker.port}"
    topic, bars_topic = "ticks", "bars"
    ensure_topics(bootstrap, [TopicSpec(topic, 3), TopicSpec(bars_topic, 3)])
    ticks = send_es_hostile(bootstrap, topic)
    out = tmp_path / "lake"
    args = replay_args(bars_topic)
    env = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap}
    job = stream_proc(topic, out, *args, env=env)
    ends = TopicEnds(bootstrap, bars_topic)
    wait_until(lambda: ends.total() > 0, timeout=240, interval=0.05, message="bars published")
    ends.close()
    info, killed = own_broker.stop(timeout=30)
    assert info is not None
    assert not killed
    time.sleep(15)  # the outage: longer than the bars' 10 s before the job says it waits
    assert job.poll() is None  # the job waits
    own_broker.start(timeout=120)
    done = committed_batches(out)
    try:
        wait_until(lambda: committed_batches(out) > done + 2, timeout=240, message="it goes on")
    except AssertionError:
        job.send_signal(signal.SIGKILL)
        raise AssertionError(job.communicate(timeout=60)[0]) from None
    job.send_signal(signal.SIGTERM)
    output, _ = job.communicate(timeout=120)
    assert job.returncode == 0, output
    waited = r"^job  waiting for Kafka to take the bars of batch \d+ "
    assert re.search(waited, output, re.M), output
    assert re.search(r"^job  Kafka took the bars of batch \d+ after \d+s$", output, re.M), output

    drain_once(stream_proc(topic, out, "--once", *args, env=env))
    assert lake_bars(str(out)) == reference_bars(as_dicts(ticks), WINDOW_MS)
    settings = load_settings(
        {
            "kafka_bootstrap_servers": bootstrap,
            "kafka_topic": topic,
            "output_path": out,
            "bars_topic": bars_topic,
        }
    )
    assert_reconciled(settings)
    assert_published_exactly_once(bootstrap, bars_topic, out)
