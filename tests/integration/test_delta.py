"""Delta Lake in tickstream's Spark session (jars from the cache, the SQL extension on)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession

from tests.reference import lake_sql
from tickstream.bars.job import BarsJob
from tickstream.bars.writer import LakeWriter, convert_to_delta, parquet_tables
from tickstream.config import Settings
from tickstream.errors import TickstreamError
from tickstream.lake.layout import Lake


def test_a_batch_appended_again_is_skipped_also_after_a_restart(
    spark: SparkSession, tmp_path: Path
) -> None:
    """What the lake relies on for exactly-once: a micro-batch run again after a crash finds its
    commit, marked with its batch id, and appends nothing; a commit by someone else (compaction)
    is stepped over when a new run reads the marks."""

    def frame(rows: list[tuple[str, int]]) -> DataFrame:
        return spark.createDataFrame(
            [(s, n, "2026-11-28") for s, n in rows], "symbol string, n long, date string"
        )

    writer = LakeWriter(Lake(tmp_path))
    writer.append(frame([("ES", 1), ("NQ", 2)]), "ticks", 0)
    writer.append(frame([("ES", 3)]), "ticks", 1)
    writer.append(frame([("ES", 3)]), "ticks", 1)  # the same run, batch 1 again
    spark.sql(f"OPTIMIZE delta.`{(tmp_path / 'ticks').as_posix()}`")  # a commit not the job's
    restarted = LakeWriter(Lake(tmp_path))  # a new run: reads the marks from the log
    assert restarted.last_batch("ticks") == 1
    restarted.append(frame([("ES", 3)]), "ticks", 1)  # batch 1 run again after a crash
    restarted.append(frame([("NQ", 4)]), "ticks", 2)
    assert restarted.last_batch("late") == -1  # a table never written
    assert lake_sql(tmp_path, "SELECT symbol, n FROM ticks ORDER BY n") == [
        ("ES", 1),
        ("NQ", 2),
        ("ES", 3),
        ("NQ", 4),
    ]


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

    assert convert_to_delta(spark, Lake(out)) == ["ticks"]
    assert parquet_tables(Lake(out)) == []
    assert lake_sql(out, "SELECT date, count(*) FROM ticks GROUP BY date ORDER BY date") == [
        ("2026-11-27", 1),
        ("2026-11-28", 2),
    ]
    assert convert_to_delta(spark, Lake(out)) == []  # converting again changes nothing
