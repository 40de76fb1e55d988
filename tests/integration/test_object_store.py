"""The lake's stack on object storage: Spark writes Delta tables to a real S3-compatible server
(S3Proxy, started locally) through Hadoop's S3A filesystem, and the ``deltalake`` package reads
them back over the S3 protocol."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from tests.conftest import repo_jars_dir
from tests.s3_local import ACCESS_KEY, REGION, SECRET_KEY, LocalS3


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalS3]:
    server = LocalS3(tmp_path_factory.mktemp("s3"), repo_jars_dir()).start()
    try:
        yield server
    finally:
        server.stop()


def use_s3(spark: SparkSession, s3: LocalS3, bucket: str) -> None:
    """Point S3A at the local server for this bucket (per-bucket settings)."""
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    prefix = f"fs.s3a.bucket.{bucket}."
    for key, value in {
        "endpoint": s3.endpoint,
        "endpoint.region": REGION,
        "path.style.access": "true",
        "connection.ssl.enabled": "false",
        "access.key": ACCESS_KEY,
        "secret.key": SECRET_KEY,
    }.items():
        conf.set(prefix + key, value)


def storage_options(s3: LocalS3) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": s3.endpoint,
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_ALLOW_HTTP": "true",
        "AWS_S3_ALLOW_UNSAFE_RENAME": "true",
    }


def test_delta_tables_on_s3_written_by_spark_read_by_deltalake(
    spark: SparkSession, s3: LocalS3
) -> None:
    bucket = s3.bucket("lake")
    use_s3(spark, s3, bucket)
    rows = [("ES", i, 1700.0 + i / 4, "2013-09-0" + str(1 + i % 3)) for i in range(300)]
    frame = spark.createDataFrame(rows, "symbol string, seq long, price double, date string")
    path = f"s3a://{bucket}/lake/ticks"
    for batch in range(3):  # three micro-batches' commits
        (
            frame.filter(F.col("seq").between(batch * 100, batch * 100 + 99))
            .coalesce(1)
            .write.format("delta")
            .mode("append")
            .partitionBy("date")
            .option("userMetadata", f"tickstream-bars-job:{batch}")
            .save(path)
        )
    metrics = spark.sql(f"OPTIMIZE delta.`{path}`").collect()[0]["metrics"]
    assert metrics["numFilesRemoved"] == 9
    assert metrics["numFilesAdded"] == 3

    table = DeltaTable(f"s3://{bucket}/lake/ticks", storage_options=storage_options(s3))
    assert table.version() == 3
    got = pa.table(table.to_pyarrow_table()).sort_by("seq").to_pylist()
    assert [(r["symbol"], r["seq"], r["price"], r["date"]) for r in got] == rows
    assert len(table.file_uris()) == 3  # one file per date after the compaction
    # The objects are on the server's disk, under the bucket, as Delta wrote them.
    objects = Path(s3.root / "objects" / bucket / "lake" / "ticks")
    assert any((objects / "_delta_log").glob("*.json"))
