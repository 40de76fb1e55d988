"""The closed bars' Kafka transactions against the real broker: a batch published once, a
re-run after its commit publishing nothing, an abandoned transaction never seen, and a second
run of the same checkpoint fencing the first (the zombie)."""

from __future__ import annotations

import json
import subprocess
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import repo_jars_dir
from tests.kafka_helpers import consume_all
from tests.streams import es_ticks, send_hostile
from tickstream.bars.publish import BarPublisher, BarsFencedError, bar_message, encode
from tickstream.config import Settings, load_settings
from tickstream.kafka.admin import TopicSpec, ensure_topics
from tickstream.kafka.local import LocalKafka, free_port


def bars_settings(base: Settings, bootstrap: str, topic: str) -> Settings:
    return load_settings(
        {
            **base.model_dump(),
            "kafka_bootstrap_servers": bootstrap,
            "bars_topic": topic,
            "bars_live_topic": "off",
        }
    )


def a_bar(symbol: str, minute: int) -> dict[str, Any]:
    start = datetime(2026, 1, 5, 14, 30, tzinfo=UTC) + timedelta(minutes=minute)
    return {
        "symbol": symbol,
        "window_start": start,
        "window_end": start + timedelta(minutes=1),
        "open": 100.0 + minute,
        "high": 101.0 + minute,
        "low": 99.0 + minute,
        "close": 100.5 + minute,
        "volume": 10 * (minute + 1),
        "vwap": 100.2 + minute,
        "trade_count": 3,
        "price_avg": 100.1 + minute,
        "pct_change": 0.5,
        "date": start.date().isoformat(),
    }


def batch(minute: int) -> list[dict[str, Any]]:
    return [a_bar(s, minute) for s in ("AAPL", "MSFT", "ES", "^GSPC")]


def published(bootstrap: str, topic: str) -> list[tuple[str, int, int]]:
    """(symbol, window_start_ms, batch_id) of every committed bar, as a read_committed
    consumer sees them."""
    out = []
    for record in consume_all(bootstrap, topic):
        bar = json.loads(record.value)
        out.append((bar["symbol"], bar["window_start_ms"], bar["batch_id"]))
    return sorted(out)


@pytest.fixture
def publisher_for(
    kafka_broker: str, make_topic: Callable[..., str], base_settings: Settings
) -> tuple[Callable[[], BarPublisher], str, str]:
    """A factory of publishers of one checkpoint (one id), the topic, and the id."""
    topic = make_topic(partitions=3)
    settings = bars_settings(base_settings, kafka_broker, topic)
    checkpoint = uuid.uuid4().hex

    def make() -> BarPublisher:
        publisher = BarPublisher(settings, stopping=threading.Event(), notify=print)
        publisher.check_topics()
        publisher.open(checkpoint)
        return publisher

    return make, topic, checkpoint


def keys(minute: int, batch_id: int) -> list[tuple[str, int, int]]:
    return [
        (b["symbol"], int(b["window_start"].timestamp() * 1000), batch_id) for b in batch(minute)
    ]


def test_a_batch_rerun_after_its_commit_publishes_nothing(
    kafka_broker: str, publisher_for: tuple[Callable[[], BarPublisher], str, str]
) -> None:
    make, topic, _ = publisher_for
    first = make()
    assert first.last_published == -1
    first.publish_closed(batch(0), 0)
    first.publish_closed([], 1)  # a batch without closed bars opens no transaction
    first.publish_closed(batch(2), 2)
    first.close()
    # A crash after batch 2's commit, before the job recorded it: the restart re-runs it.
    again = make()
    assert again.last_published == 2
    again.publish_closed(batch(2), 2)
    again.publish_closed(batch(3), 3)
    again.close()
    assert published(kafka_broker, topic) == sorted(keys(0, 0) + keys(2, 2) + keys(3, 3))


def test_an_abandoned_transaction_is_never_seen_and_its_batch_publishes_once(
    kafka_broker: str, publisher_for: tuple[Callable[[], BarPublisher], str, str]
) -> None:
    make, topic, _ = publisher_for
    first = make()
    first.publish_closed(batch(0), 0)
    # The job dies mid-publish of batch 1: its bars are in the log, the transaction open.
    producer = first._closed
    assert producer is not None
    producer.begin_transaction()
    for bar in batch(1):
        producer.produce(topic, encode(bar_message(bar, provisional=False, batch_id=1)))
    assert producer.flush(30) == 0
    # The restart takes the transactional id: the open transaction is aborted.
    again = make()
    assert again.last_published == 0
    again.publish_closed(batch(1), 1)
    again.close()
    assert published(kafka_broker, topic) == sorted(keys(0, 0) + keys(1, 1))


def test_a_second_run_of_the_checkpoint_fences_the_first_which_commits_nothing(
    kafka_broker: str, publisher_for: tuple[Callable[[], BarPublisher], str, str]
) -> None:
    make, topic, _ = publisher_for
    zombie = make()
    zombie.publish_closed(batch(0), 0)
    newer = make()  # a second job on the same checkpoint
    with pytest.raises(BarsFencedError) as fenced:
        zombie.publish_closed(batch(1), 1)
    assert str(fenced.value) == (
        f"another job on this lake's checkpoint took over publishing to {topic} before "
        "publishing the bars of batch 1 (fenced by Kafka); this job stops and commits nothing "
        "more; run one job per lake; the newer one goes on from the checkpoint"
    )
    newer.publish_closed(batch(1), 1)
    newer.close()
    zombie.close()
    assert published(kafka_broker, topic) == sorted(keys(0, 0) + keys(1, 1))


def test_a_broker_that_refuses_the_transaction_timeout_stops_the_job_with_one_line(
    stream_proc: Callable[..., subprocess.Popen[str]], tmp_path: Path
) -> None:
    """A cluster whose transaction.max.timeout.ms is below the bars' 60 s: `tickstream stream`
    stops at its first batch with one line (and no traceback), exit 1."""
    broker = LocalKafka(
        tmp_path / "broker",
        port=free_port(),
        jars_dir=repo_jars_dir(),
        heap="512m",
        extra_props={"transaction.max.timeout.ms": "30000"},
    )
    bootstrap = broker.start(timeout=120).bootstrap
    try:
        ensure_topics(bootstrap, [TopicSpec("ticks", 3), TopicSpec("bars", 3)])
        send_hostile(bootstrap, "ticks", es_ticks(2_000))
        job = stream_proc(
            "ticks",
            tmp_path / "lake",
            "--once",
            "--bars-topic",
            "bars",
            "--bars-live-topic",
            "off",
            env={"KAFKA_BOOTSTRAP_SERVERS": bootstrap},
        )
        output, _ = job.communicate(timeout=300)
        assert job.returncode == 1, output
        line = (
            f"tickstream: error: the brokers at {bootstrap} refuse a transaction timeout of 60s "
            "for the bars on bars: their transaction.max.timeout.ms is lower; raise the "
            "brokers' transaction.max.timeout.ms to at least 60000 (Kafka's default is 900000), "
            "or set BARS_TOPIC=off"
        )
        assert line in output.splitlines(), output
        assert "Traceback" not in output, output
    finally:
        broker.stop(timeout=30)


def test_forming_bars_kafka_refuses_are_counted_and_exposed(
    kafka_broker: str, base_settings: Settings
) -> None:
    """A forming bars topic that refuses them (messages over its max.message.bytes): each
    refusal is counted, and the job's metrics expose the count."""
    from types import SimpleNamespace

    from prometheus_client import CollectorRegistry, generate_latest

    from tickstream.bars.metrics import JobCollector, TickRate
    from tickstream.bars.state import Snapshot

    live = f"t-forming-refused-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_broker, [TopicSpec(live, 1, config={"max.message.bytes": "128"})])
    settings = load_settings(
        {
            **base_settings.model_dump(),
            "kafka_bootstrap_servers": kafka_broker,
            "bars_topic": "off",
            "bars_live_topic": live,
        }
    )
    publisher = BarPublisher(settings, stopping=threading.Event(), notify=print)
    publisher.publish_forming(batch(0), batch_id=0)
    publisher.close(timeout=15)
    assert publisher.forming_failed == len(batch(0))
    assert consume_all(kafka_broker, live) == []

    registry = CollectorRegistry()
    job = SimpleNamespace(last_report=None, publisher=publisher, query=None)
    registry.register(JobCollector(job, TickRate(), Snapshot))  # type: ignore[arg-type]
    exposition = generate_latest(registry).decode()
    assert f"tickstream_forming_bars_failed_total {float(len(batch(0)))}" in exposition
