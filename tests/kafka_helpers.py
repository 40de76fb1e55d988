"""Reading a topic back, independently of tickstream's own code."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes


def consume_all(bootstrap: str, topic: str, timeout: float = 60.0) -> list[Record]:
    """Every record of every partition, from the beginning to the current end."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = sorted(metadata.topics[topic].partitions)
        ends = {p: _end_offset(consumer, topic, p) for p in partitions}
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions if ends[p] > 0])
        records: list[Record] = []
        remaining = {p for p in partitions if ends[p] > 0}
        deadline = time.monotonic() + timeout
        while remaining:
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out reading {topic}; partitions left: {remaining}")
            for msg in consumer.consume(num_messages=10_000, timeout=1.0):
                if msg.error():
                    raise AssertionError(f"consume error: {msg.error()}")
                p, offset, value = msg.partition(), msg.offset(), msg.value()
                assert p is not None
                assert offset is not None
                records.append(Record(p, offset, msg.key(), value or b""))
                if offset + 1 >= ends[p]:
                    remaining.discard(p)
        return records
    finally:
        consumer.close()


_SETTLING = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._UNKNOWN_PARTITION,
}


def _end_offset(consumer: Consumer, topic: str, partition: int, timeout: float = 30.0) -> int:
    """The partition's end offset, retrying while leadership settles (a new topic, a restart)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return int(
                consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1]
            )
        except KafkaException as exc:
            # A new partition's leader may take a moment to act as one, whatever the metadata
            # says: librdkafka does not mark these as retriable, but they are transient.
            transient = exc.args[0].retriable() or exc.args[0].code() in _SETTLING
            if time.monotonic() > deadline or not transient:
                raise
            time.sleep(0.2)
