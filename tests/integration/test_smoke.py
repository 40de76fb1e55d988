"""The whole path: records produced with confluent-kafka are read back by Spark's Kafka source."""

from __future__ import annotations

from collections.abc import Callable

from confluent_kafka import Producer
from pyspark.sql import SparkSession

from tests.helpers import wait_until


def _produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    failures: list[str] = []

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    for key, value in records:
        producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
        producer.poll(0)
    assert producer.flush(30) == 0
    assert failures == []


def _records(n: int) -> list[tuple[bytes, bytes]]:
    symbols = ["AAPL", "MSFT", "GOOG", "ES", "Ünï-©ode"]
    out = []
    for i in range(n):
        symbol = symbols[i % len(symbols)]
        value = f'{{"symbol":"{symbol}","i":{i},"pad":"{"x" * (i % 97)}"}}'.encode()
        out.append((symbol.encode(), value + bytes([0, 255, i % 256])))
    return out


def test_spark_batch_reads_back_exactly_what_was_produced(
    kafka_broker: str, make_topic: Callable[..., str], spark: SparkSession
) -> None:
    topic = make_topic(partitions=3)
    records = _records(3000)
    _produce(kafka_broker, topic, records)

    rows = (
        spark.read.format("kafka")
        .option("kafka.bootstrap.servers", kafka_broker)
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .option("endingOffsets", "latest")
        .load()
        .select("key", "value", "partition", "offset", "topic")
        .collect()
    )

    assert sorted((bytes(r.key), bytes(r.value)) for r in rows) == sorted(records)
    assert {r.topic for r in rows} == {topic}
    # One key, one partition: a symbol's records stay in order in a single partition.
    partitions_by_key: dict[bytes, set[int]] = {}
    for r in rows:
        partitions_by_key.setdefault(bytes(r.key), set()).add(r.partition)
    assert all(len(p) == 1 for p in partitions_by_key.values())
    for key in partitions_by_key:
        produced = [v for k, v in records if k == key]
        read = [bytes(r.value) for r in sorted(rows, key=lambda r: r.offset) if bytes(r.key) == key]
        assert read == produced


def test_spark_structured_streaming_consumes_the_topic(
    kafka_broker: str, make_topic: Callable[..., str], spark: SparkSession
) -> None:
    topic = make_topic(partitions=3)
    first, second = _records(500), _records(1200)[500:]
    _produce(kafka_broker, topic, first)

    stream = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", kafka_broker)
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .load()
        .selectExpr("CAST(key AS STRING) AS key", "value")
    )
    table = f"smoke_{topic.replace('-', '_')}"
    query = (
        stream.writeStream.format("memory")
        .queryName(table)
        .trigger(processingTime="200 milliseconds")
        .start()
    )
    try:
        wait_until(
            lambda: spark.table(table).count() == len(first), timeout=60, message="first batch"
        )
        _produce(kafka_broker, topic, second)
        wait_until(
            lambda: spark.table(table).count() == len(first) + len(second),
            timeout=60,
            message="records produced while the query runs",
        )
        got = sorted(bytes(r.value) for r in spark.table(table).collect())
        assert got == sorted(v for _, v in first + second)
        assert query.exception() is None
    finally:
        query.stop()
