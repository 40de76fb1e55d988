"""Delta Lake in tickstream's Spark session (jars from the cache, the SQL extension on)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from tests.reference import lake_sql
from tickstream.bars.job import BarsJob
from tickstream.bars.lake import convert_to_delta, parquet_tables
from tickstream.config import Settings
from tickstream.errors import TickstreamError


def test_a_batch_appended_twice_with_the_same_transaction_is_written_once(
    spark: SparkSession, tmp_path: Path
) -> None:
    """What the lake relies on for exactly-once: a micro-batch re-run after a crash commits with
    the same (txnAppId, txnVersion) and Delta skips it."""
    table = (tmp_path / "ticks").as_posix()

    def append(batch_id: int, rows: list[tuple[str, int]]) -> None:
        frame = spark.createDataFrame(rows, "symbol string, n long")
        (
            frame.write.format("delta")
            .mode("append")
            .option("txnAppId", "bars-job")
            .option("txnVersion", batch_id)
            .save(table)
        )

    append(0, [("ES", 1), ("NQ", 2)])
    append(1, [("ES", 3)])
    append(1, [("ES", 3)])  # the re-run of batch 1
    append(0, [("ES", 1), ("NQ", 2)])  # an older batch
    rows = spark.read.format("delta").load(table).orderBy("n").collect()
    assert [(r.symbol, r.n) for r in rows] == [("ES", 1), ("NQ", 2), ("ES", 3)]
    history = spark.sql(f"DESCRIBE HISTORY delta.`{table}`").collect()
    assert len(history) == 2


def test_a_lake_of_plain_parquet_tables_is_refused_then_converted_in_place(
    spark: SparkSession, base_settings: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "lake"
    rows = [("ES", 1.0, "2026-11-27"), ("ES", 2.0, "2026-11-28"), ("NQ", 3.0, "2026-11-28")]
    frame = spark.createDataFrame(rows, "symbol string, price double, date string")
    frame.write.partitionBy("date").parquet((out / "ticks").as_posix())  # as tickstream 0.1 did
    job = BarsJob(base_settings.model_copy(update={"output_path": out}), spark)
    with pytest.raises(
        TickstreamError, match=r"plain Parquet .*\(ticks\).*tickstream lake convert"
    ):
        job.start()

    assert convert_to_delta(spark, out) == ["ticks"]
    assert parquet_tables(out) == []
    assert lake_sql(out, "SELECT date, count(*) FROM ticks GROUP BY date ORDER BY date") == [
        ("2026-11-27", 1),
        ("2026-11-28", 2),
    ]
    assert convert_to_delta(spark, out) == []  # converting again changes nothing
