"""Delta Lake in tickstream's Spark session (jars from the cache, the SQL extension on)."""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import SparkSession


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
