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
            # A transaction's commit marker takes an offset of its own after its last record:
            # the end of a partition is known by this event, not by a record's offset.
            "enable.partition.eof": True,
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
                p, offset, value = msg.partition(), msg.offset(), msg.value()
                assert p is not None
                assert offset is not None
                error = msg.error()
                if error is not None and error.code() == KafkaError._PARTITION_EOF:
                    if offset >= ends[p]:
                        remaining.discard(p)
                    continue
                if error is not None:
                    raise AssertionError(f"consume error: {error}")
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


class TopicEnds:
    """Reads a topic's end offsets again and again through one consumer (cheap to poll)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "test-ends"})
        metadata = self.consumer.list_topics(topic, timeout=10)
        self.partitions = sorted(metadata.topics[topic].partitions)

    def total(self) -> int:
        """The sum of the partitions' end offsets."""
        return sum(_end_offset(self.consumer, self.topic, p) for p in self.partitions)

    def close(self) -> None:
        self.consumer.close()
