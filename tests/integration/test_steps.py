"""The steps of one micro-batch, each on a small hand-made DataFrame (real Spark, no Kafka)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from tickstream.bars.partials import Partial
from tickstream.bars.source import Index, classify
from tickstream.bars.steps import (
    OUTCOME,
    accepted_ticks,
    late_ticks,
    reject_rows,
    summarize,
    with_outcome,
)

WINDOW = 60_000
# What each batch holds after the dedup index (see tickstream.bars.source: keyed, classify).
KEYED = T.StructType(
    [
        T.StructField("kind", T.StringType()),
        T.StructField("reason", T.StringType()),
        T.StructField("symbol", T.StringType()),
        T.StructField("ts_epoch_ms", T.LongType()),
        T.StructField("price", T.DoubleType()),
        T.StructField("volume", T.DoubleType()),
        T.StructField("seq", T.LongType()),
        T.StructField("event_id", T.StringType()),
        T.StructField("source", T.StringType()),
        T.StructField("raw", T.BinaryType()),
        T.StructField("kafka_partition", T.IntegerType()),
        T.StructField("kafka_offset", T.LongType()),
        T.StructField("kafka_timestamp", T.TimestampType()),
        T.StructField("window_start_ms", T.LongType()),
        T.StructField("window_end_ms", T.LongType()),
        T.StructField("content", T.LongType()),
    ]
)
CLASSIFIED = T.StructType(
    [*KEYED.fields, T.StructField("copy", T.StringType()), T.StructField("batch_id", T.LongType())]
)
KAFKA_TIME = dt.datetime(2026, 11, 28, 9, 0, tzinfo=dt.UTC)


def tick(
    ts: int, price: float, event_id: str, copy: str, *, partition: int = 0, seq: int = 1
) -> tuple[Any, ...]:
    start = ts - ts % WINDOW
    raw = f'{{"event_id":"{event_id}"}}'.encode()
    # The content hash stands in for xxhash64 of the fields: equal if and only if they are.
    return (
        "tick", None, "ES", ts, price, 2.0, seq, event_id, "replay", raw, partition, ts, KAFKA_TIME,
        start, start + WINDOW, ts * 1000 + round(price * 100), copy,
    )  # fmt: skip


def other(
    kind: str, reason: str | None, ts: int | None, partition: int, raw: bytes
) -> tuple[Any, ...]:
    return (
        kind, reason, None, ts, None, None, None, None, None, raw, partition, 99, KAFKA_TIME,
        None, None, None, None,
    )  # fmt: skip


@pytest.fixture
def batch(spark: SparkSession) -> DataFrame:
    rows = [
        tick(60_100, 10.0, "a", "accepted"),
        tick(60_050, 11.0, "b", "accepted", partition=1),
        tick(60_100, 10.0, "a", "duplicate", partition=2),
        tick(60_200, 99.0, "b", "conflict"),
        tick(120_500, 12.0, "c", "accepted", partition=1),
        tick(1_000, 9.0, "old", "late"),  # its window ended at 60,000: the index says late
        other("heartbeat", None, 200_000, 2, b"{}"),
        other("reject", "malformed_json", None, 0, b"{oops"),
    ]
    return spark.createDataFrame([(*r, 5) for r in rows], CLASSIFIED)


def test_each_message_has_one_outcome(batch: DataFrame) -> None:
    outcomes = {
        (r["event_id"], r["kafka_partition"]): r[OUTCOME] for r in with_outcome(batch).collect()
    }
    assert outcomes[("old", 0)] == "late"
    assert outcomes[("a", 0)] == "accepted"
    assert outcomes[("a", 2)] == "duplicate"
    assert outcomes[("b", 0)] == "conflict"
    assert outcomes[(None, 2)] == "heartbeat"
    assert outcomes[(None, 0)] == "reject"


def test_one_summary_holds_every_count_and_the_partials(batch: DataFrame) -> None:
    summary = summarize(with_outcome(batch))
    assert summary.counts == {
        "accepted": 3,
        "duplicate": 1,
        "conflict": 1,
        "late": 1,
        "heartbeat": 1,
        "reject": 1,
    }
    assert summary.messages == 8
    assert summary.valid_ticks == 6
    assert summary.rejected == {"malformed_json": 1, "event_id_conflict": 1}
    # Every valid tick and heartbeat moves its partition's clock; rejects do not.
    assert summary.partition_max_ms == {"0": 60_200, "1": 120_500, "2": 200_000}
    by_window = {p.key: p for p in summary.partials}
    assert by_window[("ES", 60_000)] == Partial(
        symbol="ES",
        window_start_ms=60_000,
        first=(60_050, 1, "b"),
        open=11.0,
        last=(60_100, 1, "a"),
        close=10.0,
        high=11.0,
        low=10.0,
        volume=4.0,
        pv=42.0,
        count=2,
        price_sum=21.0,
    )
    assert by_window[("ES", 120_000)].count == 1


def test_the_rows_of_each_table(batch: DataFrame) -> None:
    tagged = with_outcome(batch)
    archive = accepted_ticks(tagged).collect()
    assert sorted(r["event_id"] for r in archive) == ["a", "b", "c"]
    assert {r["batch_id"] for r in archive} == {5}
    assert "window_start_ms" not in accepted_ticks(tagged).columns

    late = late_ticks(tagged, 60_000).collect()
    assert [(r["event_id"], r["late_by_ms"], r["date"]) for r in late] == [
        ("old", 59_000, "1970-01-01")
    ]

    rejects = {r["reason"]: r for r in reject_rows(tagged, "events", 1000).collect()}
    assert set(rejects) == {"malformed_json", "event_id_conflict"}
    assert rejects["malformed_json"]["raw_text"] == "{oops"
    assert rejects["event_id_conflict"]["raw"] == b'{"event_id":"b"}'
    assert rejects["event_id_conflict"]["topic"] == "events"
    assert rejects["event_id_conflict"]["date"] == "2026-11-28"
    too_big = reject_rows(tagged, "events", 3).collect()
    assert all(r["raw_text"] is None for r in too_big)  # oversized: raw bytes only


def new_index(tmp_path: Path, partitions: int) -> Index:
    """A new index as the job opens one for a new lake (chunks of sequence numbers)."""
    return Index((tmp_path / "index").as_posix(), partitions, str(uuid.uuid4()), sequences=True)


def keyed_rows(spark: SparkSession, rows: list[tuple[Any, ...]]) -> DataFrame:
    """The rows as the dedup index receives them (without their expected ``copy``)."""
    return spark.createDataFrame([r[:-1] for r in rows], KEYED)


def copies(
    spark: SparkSession, rows: list[tuple[Any, ...]], index: Index, batch_id: int, watermark_ms: int
) -> dict[tuple[str | None, int, int], str | None]:
    """What the index makes of the rows as batch ``batch_id``: the copy class of each."""
    out = classify(keyed_rows(spark, rows), index, batch_id, watermark_ms).collect()
    assert {r["batch_id"] for r in out} == {batch_id}
    return {(r["event_id"], r["kafka_partition"], r["kafka_offset"]): r["copy"] for r in out}


PRODUCER = "3f9c0a7d5e21b6c4"
# The same cases with the producer's own event_ids, which the index keeps in chunks of
# sequence numbers ("a" and "b" share a chunk) instead of whole.
NUMBERED = {
    "a": f"{PRODUCER}-5",
    "b": f"{PRODUCER}-6",
    "c": "0123456789abcdef-70",
    "old": f"{PRODUCER}-1000",
}


@pytest.fixture(params=["whole", "numbered"])
def name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """The event_id a test's tick ``a``, ``b``... has: as such, or the producer's form."""
    if request.param == "whole":
        return lambda n: n
    return NUMBERED.__getitem__


def test_the_dedup_index_classifies_across_batches_and_evicts_closed_windows(
    spark: SparkSession, tmp_path: Path, name: Callable[[str], str]
) -> None:
    """The index in Spark's state store, batch after batch, as the job calls it."""
    index = new_index(tmp_path, 3)
    first = [
        tick(60_100, 10.0, name("a"), "accepted", partition=1),
        tick(60_100, 10.0, name("a"), "duplicate", partition=2),  # the later copy by partition
        tick(60_050, 11.0, name("b"), "accepted"),
        tick(60_200, 99.0, name("b"), "conflict", partition=1),  # same id, other content
        other("heartbeat", None, 200_000, 2, b"{}"),
        other("reject", "malformed_json", None, 0, b"{oops"),
    ]
    got = copies(spark, first, index, 0, 0)
    assert got == {(r[7], r[10], r[11]): r[-1] for r in first}

    second = [
        tick(60_100, 10.0, name("a"), "duplicate"),  # its first copy is in the index, from batch 0
        tick(60_050, 12.0, name("b"), "conflict", partition=2),
        tick(120_500, 12.0, name("c"), "accepted", partition=1),
    ]
    got = copies(spark, second, index, 1, 60_000)
    assert got == {(r[7], r[10], r[11]): r[-1] for r in second}
    # A batch run again (after a crash) reads the same version: the same answer.
    again = copies(spark, second, index, 1, 60_000)
    assert again == got

    # The watermark passes 120,000: the entries of the window ending at 120,000 (a and b) are
    # evicted; a reuse of "a" in an open window is then a new tick, "c" is still known.
    third = [
        tick(180_100, 30.0, name("a"), "accepted"),
        tick(120_500, 12.0, name("c"), "duplicate", partition=2),
    ]
    got = copies(spark, third, index, 2, 120_000)
    assert got == {(r[7], r[10], r[11]): r[-1] for r in third}


def test_the_dedup_index_says_late_first_and_leaves_other_messages_alone(
    spark: SparkSession, tmp_path: Path, name: Callable[[str], str]
) -> None:
    """A tick of a window the watermark has closed is late, whatever the index holds: it is
    neither looked up (a late copy of a known id is not a conflict) nor kept."""
    index = new_index(tmp_path, 2)
    rows = [
        tick(1_000, 9.0, name("old"), "late"),
        other("heartbeat", None, 5, 0, b"{}"),
        tick(60_100, 10.0, name("a"), "accepted"),
    ]
    got = copies(spark, rows, index, 0, 60_000)
    assert got == {(r[7], r[10], r[11]): r[-1] for r in rows}
    rows = [
        tick(61_000, 9.0, name("old"), "accepted"),  # the late copy was not kept
        tick(1_000, 9.0, name("a"), "late", partition=1),  # same id, other content: still late
    ]
    got = copies(spark, rows, index, 1, 60_000)
    assert got == {(r[7], r[10], r[11]): r[-1] for r in rows}


def test_numbered_event_ids_are_kept_per_number_across_chunks_and_evictions(
    spark: SparkSession, tmp_path: Path
) -> None:
    """Numbers 60-75 span two chunks (0-63, 64-127) and two windows: evicting one window
    clears its numbers only, in both chunks, and the rest are still known."""
    index = new_index(tmp_path, 2)

    def at(n: int, ts: int, copy: str, **kw: Any) -> tuple[Any, ...]:
        return tick(ts, 10.0, f"{PRODUCER}-{n}", copy, **kw)

    first = [at(n, 60_100 if n <= 70 else 120_100, "accepted") for n in range(60, 76)]
    got = copies(spark, first, index, 0, 0)
    assert set(got.values()) == {"accepted"}

    # The watermark passes 120,000: numbers 60-70 leave, 71-75 stay.
    second = [
        at(60, 180_100, "accepted"),  # reused in an open window: a new tick
        at(66, 180_200, "accepted", partition=1),
        at(71, 120_100, "duplicate"),
        at(75, 120_999, "conflict", partition=2),
    ]
    got = copies(spark, second, index, 1, 120_000)
    assert got == {(r[7], r[10], r[11]): r[-1] for r in second}


def test_only_the_canonical_spelling_of_a_number_is_kept_as_one(
    spark: SparkSession, tmp_path: Path
) -> None:
    """Event_ids are strings: "-05", "-5", upper-case hex and a longer prefix are four ids,
    each accepted once, though three of them spell the producer's number 5 another way."""
    index = new_index(tmp_path, 2)
    spellings = [
        f"{PRODUCER}-5",
        f"{PRODUCER}-05",
        f"{PRODUCER.upper()}-5",
        f"0{PRODUCER}-5",
        f"{PRODUCER}-0",
        f"{PRODUCER}-00",
        f"{PRODUCER}-9223372036854775807",  # 19 digits: kept whole
    ]
    rows = [
        tick(60_100 + i, 10.0, eid, copy, partition=partition)
        for partition, copy in ((0, "accepted"), (1, "duplicate"))
        for i, eid in enumerate(spellings)
    ]
    got = copies(spark, rows, index, 0, 0)
    assert got == {(r[7], r[10], r[11]): r[-1] for r in rows}
    again = [tick(60_100 + i, 10.0, e, "duplicate", partition=2) for i, e in enumerate(spellings)]
    got = copies(spark, again, index, 1, 0)
    assert set(got.values()) == {"duplicate"}
