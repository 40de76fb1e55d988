"""Broker faults while the producer runs: nothing lost, nothing counted twice."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.conftest import repo_jars_dir
from tests.helpers import REPLAY_ES, produce_env, spawn_produce, wait_until
from tests.integration.test_bars_job import WINDOW_MS, as_dicts, assert_reconciled, settings_for
from tests.integration.test_producer import split
from tests.jobs import Jobs
from tests.kafka_helpers import consume_all
from tests.reference import lake_bars, reference_bars
from tests.streams import es_ticks, send_heartbeat
from tickstream.config import Settings
from tickstream.kafka.admin import TopicSpec, ensure_topics
from tickstream.kafka.local import LocalKafka


def test_a_broker_restart_during_production_loses_nothing(
    own_broker: LocalKafka, jobs: Jobs, base_settings: Settings, tmp_path: Path
) -> None:
    bootstrap = f"127.0.0.1:{own_broker.port}"
    topic = "ticks-restart"
    ensure_topics(bootstrap, [TopicSpec(topic, 3)])
    ticks = es_ticks(60_000)
    span_s = (ticks[-1].ts_epoch_ms - ticks[0].ts_epoch_ms) / 1000
    env = produce_env(bootstrap, topic)
    producer = spawn_produce(
        env,
        *REPLAY_ES,
        "--count",
        "60000",
        "--speed",
        str(span_s / 20),  # about 20 s of producing
    )
    try:
        wait_until(
            lambda: len(split(consume_all(bootstrap, topic, timeout=10))[0]) > 5_000,
            timeout=60,
            message="ticks flowing",
        )
        info, killed = own_broker.stop(timeout=30)
        assert info is not None
        assert not killed
        time.sleep(6)  # the outage itself
        own_broker.start(timeout=120)
        _, err = producer.communicate(timeout=180)
    finally:
        if producer.poll() is None:
            producer.kill()
    assert producer.returncode == 0, err
    assert "kafka unreachable at" in err
    assert "kafka reachable again after" in err
    assert "sent 60,000 ticks, acknowledged 60,000, failed 0" in err

    got, _ = split(consume_all(bootstrap, topic))
    ids = [obj["event_id"] for _, obj in got]
    assert len(ids) == 60_000  # none lost
    assert len(set(ids)) == 60_000  # none written twice by the retries (idempotent producer)

    send_heartbeat(bootstrap, topic, ticks[-1].ts_epoch_ms + 10 * WINDOW_MS)
    out = tmp_path / "lake"
    settings = settings_for(base_settings, bootstrap, topic, out)
    jobs.drain(settings)
    assert lake_bars(str(out)) == reference_bars(as_dicts(ticks), WINDOW_MS)
    assert_reconciled(settings)


def test_three_brokers_one_killed_during_production_and_aggregation(
    jobs: Jobs, base_settings: Settings, tmp_path: Path
) -> None:
    """RF 3, min.insync.replicas 2: a broker dies mid-stream; nothing is lost or doubled."""
    import signal

    from tests.kafka_cluster import LocalKafkaCluster

    cluster = LocalKafkaCluster(tmp_path / "cluster", 3, jars_dir=repo_jars_dir())
    cluster.start()
    try:
        bootstrap = cluster.bootstrap
        topic = "ticks-ha"
        ensure_topics(
            bootstrap,
            [TopicSpec(topic, 3, replication_factor=3, config={"min.insync.replicas": "2"})],
        )
        ticks = es_ticks(60_000)
        span_s = (ticks[-1].ts_epoch_ms - ticks[0].ts_epoch_ms) / 1000
        out = tmp_path / "lake"
        settings = settings_for(base_settings, bootstrap, topic, out)
        job = jobs.start(settings)  # aggregating while the producer writes
        query = job.query
        assert query is not None
        env = produce_env(bootstrap, topic)
        producer = spawn_produce(
            env,
            *REPLAY_ES,
            "--count",
            "60000",
            "--speed",
            str(span_s / 20),
        )
        try:
            wait_until(
                lambda: (
                    job.last_report is not None and job.last_report.totals.ticks_accepted > 3000
                ),
                timeout=120,
                message="the job aggregating",
            )
            victim = cluster.nodes[1]
            info = victim.status()
            assert info is not None
            os.kill(info.pid, signal.SIGKILL)
            _, err = producer.communicate(timeout=240)
        finally:
            if producer.poll() is None:
                producer.kill()
        assert producer.returncode == 0, err
        assert "sent 60,000 ticks, acknowledged 60,000, failed 0" in err

        send_heartbeat(bootstrap, topic, ticks[-1].ts_epoch_ms + 10 * WINDOW_MS)
        query.processAllAvailable()
        job.stop()
        assert job.failure() is None
        assert lake_bars(str(out)) == reference_bars(as_dicts(ticks), WINDOW_MS)
        got, _ = split(consume_all(bootstrap, topic))
        assert len({obj["event_id"] for _, obj in got}) == len(got) == 60_000
        assert_reconciled(settings)
    finally:
        cluster.stop()
