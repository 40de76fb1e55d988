"""Ticks Kafka refuses for good, against a real broker: they go to the dead letters beside the
spool, the ticks behind them go on, and `tickstream produce` re-sends or drops them."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from confluent_kafka.admin import (  # type: ignore[attr-defined]  # not in __all__
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
)

from tests.helpers import run_tickstream
from tests.integration.test_producer import split
from tests.kafka_helpers import consume_all
from tests.spool_scenarios import producer_env, spool_status
from tickstream.kafka.deadletters import DeadLetters
from tickstream.kafka.spool import Spool
from tickstream.sources.base import now_ms
from tickstream.ticks.codec import encode_tick
from tickstream.ticks.schema import Tick

TOPIC_LIMIT = 200_000  # the topic's max.message.bytes: a batch of ordinary ticks fits


def poison(event_id: str, size: int) -> bytes:
    """A tick with ``size`` bytes of padding that does not compress (Kafka checks the
    compressed batch)."""
    tick = json.loads(encode_tick(Tick("ES", now_ms(), 4500.25, 1.0, 0, event_id, "replay")))
    tick["padding"] = base64.b64encode(os.urandom(size * 3 // 4)).decode()
    return json.dumps(tick).encode()


def ids_in_kafka(bootstrap: str, topic: str) -> list[str]:
    ticks, _ = split(consume_all(bootstrap, topic))
    return [obj["event_id"] for _, obj in ticks]


def test_a_tick_kafka_refuses_goes_to_the_dead_letters_and_the_ticks_behind_it_go_on(
    kafka_broker: str, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = make_topic(partitions=3)
    admin = AdminClient({"bootstrap.servers": kafka_broker})

    def set_limit(value: int) -> None:
        entry = ConfigEntry(
            "max.message.bytes", str(value), incremental_operation=AlterConfigOpType.SET
        )
        limit = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[entry])
        for done in admin.incremental_alter_configs([limit]).values():
            done.result(timeout=30)

    set_limit(TOPIC_LIMIT)

    # An earlier run's spool: ordinary ticks, one the broker refuses (over the topic's limit),
    # one the client refuses (over its own message.max.bytes, 1,000,000), more ticks.
    folder = tmp_path / "spool"
    earlier = [
        encode_tick(Tick("AAPL", now_ms() + i, 100.0 + i, 1.0, i, f"earlier-{i}", "replay"))
        for i in range(40)
    ]
    too_large_for_the_topic = poison("poison-topic", 500_000)
    too_large_for_the_client = poison("poison-client", 1_200_000)
    spool = Spool(folder, max_bytes=64 << 20).open()
    spool.append(["AAPL"] * 20, earlier[:20])
    spool.append(["ES"], [too_large_for_the_topic])
    spool.append(["AAPL"] * 10, earlier[20:30])
    spool.append(["ES"], [too_large_for_the_client])
    spool.append(["AAPL"] * 10, earlier[30:])
    spool.save_topic_record(topic, 3)
    spool.close()

    env = producer_env(kafka_broker, topic, tmp_path / "home", SPOOL_DIR=str(folder))

    def produce(*args: str) -> subprocess.CompletedProcess[str]:
        return run_tickstream(env, "produce", *args, timeout=180)

    run = produce("--spool", "on", "--count", "300", "--msgs-per-sec", "1000", "--seed", "5")
    # The run goes on past both, says so, and ends non-zero: two ticks are not in Kafka.
    assert run.returncode == 1, run.stderr
    assert "went to the dead letters" in run.stderr
    assert "the spool is empty" in run.stderr
    dead = DeadLetters(folder).read()
    dead_ids = [json.loads(letter.value)["event_id"] for letter in dead]
    assert {"poison-topic", "poison-client"} <= set(dead_ids)
    by_id = {json.loads(letter.value)["event_id"]: letter for letter in dead}
    assert by_id["poison-client"].value == too_large_for_the_client  # kept byte for byte
    assert "too large" in by_id["poison-topic"].reason.lower()
    assert "too large" in by_id["poison-client"].reason.lower()

    # Every tick is in Kafka or in the dead letters, once. A batch the broker refuses takes the
    # ticks batched with the poison along (Kafka checks max.message.bytes per batch): those are
    # dead letters too, and re-sent below.
    in_kafka = ids_in_kafka(kafka_broker, topic)
    assert len(in_kafka) == len(set(in_kafka))
    assert not set(in_kafka) & set(dead_ids)
    everything = {f"earlier-{i}" for i in range(40)} | {"poison-topic", "poison-client"}
    source = [i for i in in_kafka + dead_ids if i not in everything]
    assert len(source) == 300
    assert set(in_kafka) | set(dead_ids) == everything | set(source)
    assert len(dead) < 40, "the ticks behind the poison went on to Kafka"
    assert "earlier-39" in in_kafka or "earlier-39" in dead_ids

    status = spool_status(env)
    assert f"{len(dead)} dead letter" in status, status

    # Re-sent while the topic still refuses: kept, with Kafka's reason.
    again = produce("--resend-dead-letters")
    assert again.returncode == 0, again.stderr
    assert f"re-sent {len(dead) - 2} of {len(dead)} dead letters; Kafka refused 2 again" in (
        again.stdout
    )
    assert sorted(json.loads(x.value)["event_id"] for x in DeadLetters(folder).read()) == [
        "poison-client",
        "poison-topic",
    ]

    # The topic's limit raised: the one the broker refused goes; the client still refuses the
    # other, which is dropped.
    set_limit(2_000_000)
    raised = produce("--resend-dead-letters")
    assert "re-sent 1 of 2 dead letters; Kafka refused 1 again" in raised.stdout, raised.stderr
    assert [json.loads(x.value)["event_id"] for x in DeadLetters(folder).read()] == [
        "poison-client"
    ]
    dropped = produce("--drop-dead-letters")
    assert dropped.stdout.strip() == f"dropped 1 dead letter from {folder / 'dead-letters.jsonl'}"
    assert not (folder / "dead-letters.jsonl").exists()
    assert "dead letter" not in spool_status(env)

    in_kafka = ids_in_kafka(kafka_broker, topic)
    assert sorted(in_kafka) == sorted((everything - {"poison-client"}) | set(source))
