"""The lake on object storage: a real S3-compatible server (S3Proxy, started locally). Spark writes
through Hadoop's S3A filesystem, the ``deltalake`` package and pyarrow read over the S3 protocol,
and the whole pipeline runs with its lake there."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.fs as pafs
import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from tests.conftest import repo_jars_dir
from tests.helpers import wait_until
from tests.integration.test_bars_job import WINDOW_MS, as_dicts, assert_reconciled
from tests.reference import lake_bars, lake_sql, reference_bars
from tests.s3_local import ACCESS_KEY, REGION, SECRET_KEY, LocalS3
from tests.streams import es_ticks, send_heartbeat, send_hostile
from tickstream.config import Settings, load_settings
from tickstream.lake.layout import Lake, ObjectStore


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalS3]:
    server = LocalS3(tmp_path_factory.mktemp("s3"), repo_jars_dir()).start()
    try:
        yield server
    finally:
        server.stop()


def local_store(s3: LocalS3) -> ObjectStore:
    return ObjectStore(s3.endpoint, REGION, ACCESS_KEY, SECRET_KEY, path_style=True)


def use_s3(spark: SparkSession, s3: LocalS3, bucket: str) -> None:
    """Point S3A at the local server for this bucket: the job's S3A settings, per bucket."""
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    for key, value in local_store(s3).hadoop().items():
        conf.set(key.replace("fs.s3a.", f"fs.s3a.bucket.{bucket}.", 1), value)


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

    options = Lake(f"s3a://{bucket}/lake", local_store(s3)).storage_options
    table = DeltaTable(f"s3://{bucket}/lake/ticks", storage_options=options)
    assert table.version() == 3
    got = pa.table(table.to_pyarrow_table()).sort_by("seq").to_pylist()
    assert [(r["symbol"], r["seq"], r["price"], r["date"]) for r in got] == rows
    assert len(table.file_uris()) == 3  # one file per date after the compaction
    assert all(uri.startswith(f"s3://{bucket}/lake/ticks/date=") for uri in table.file_uris())


def lake_env(s3: LocalS3, bucket: str) -> dict[str, str]:
    """The settings that put the pipeline's lake on the local S3 server."""
    return {
        "OUTPUT_PATH": f"s3a://{bucket}/lake",
        "S3_ENDPOINT": s3.endpoint,
        "S3_REGION": REGION,
        "S3_ACCESS_KEY_ID": ACCESS_KEY,
        "S3_SECRET_ACCESS_KEY": SECRET_KEY,
        "S3_PATH_STYLE_ACCESS": "true",
    }


def test_the_pipeline_on_s3_is_exact_through_a_sigkill_and_restart(
    kafka_broker: str,
    make_topic: Callable[..., str],
    stream_proc: Callable[..., subprocess.Popen[str]],
    s3: LocalS3,
    base_settings: Settings,
) -> None:
    """OUTPUT_PATH=s3a://...: checkpoints, job state, Delta tables and the CSV export on S3.
    The job is SIGKILLed mid-stream and restarted: the bars equal the independent computation,
    nothing is missing or doubled, and every message is accounted for."""
    topic = make_topic(partitions=3)
    ticks = es_ticks()[:30_000]  # real ES ticks, in order but for the hostile copies' disorder
    sent = send_hostile(kafka_broker, topic, ticks, seed=11)
    send_heartbeat(kafka_broker, topic, ticks[-1].ts_epoch_ms + 10 * WINDOW_MS)
    env = lake_env(s3, s3.bucket("pipeline"))
    settings = load_settings(
        {
            "kafka_bootstrap_servers": kafka_broker,
            "kafka_topic": topic,
            **{name.lower(): value for name, value in env.items()},
        }
    )
    lake = Lake.from_settings(settings)
    args = ("--max-offsets-per-trigger", "3000", "--processing-trigger", "1 second")

    def committed() -> int:
        return len([n for n in lake.names(*Lake.COMMITS) if n.isdigit()])

    first = stream_proc(topic, lake.url(), *args, env=env)
    wait_until(
        lambda: first.poll() is not None or committed() >= 2,
        timeout=300,
        message="two committed batches on S3",
    )
    assert first.poll() is None, first.communicate()[0]
    time.sleep(random.Random(2026).uniform(0.0, 2.0))
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(60)
    assert 0 < committed() < 12  # killed mid-stream

    last = stream_proc(topic, lake.url(), "--once", *args, env=env)
    output, _ = last.communicate(timeout=600)
    assert last.returncode == 0, output
    assert f"lake s3a://{env['OUTPUT_PATH'].removeprefix('s3a://')}" in output
    assert SECRET_KEY not in output

    location = f"s3://{env['OUTPUT_PATH'].removeprefix('s3a://')}"
    options = lake.storage_options
    expected = reference_bars(as_dicts(ticks), WINDOW_MS)
    assert len(expected) > 500
    assert lake_bars(location, options) == expected
    archive = lake_sql(location, "SELECT count(*), count(DISTINCT event_id) FROM ticks", options)
    assert archive == [(len(ticks), len(ticks))]
    rejects = lake_sql(location, "SELECT reason, count(*) FROM rejects GROUP BY reason", options)
    assert Counter(dict(rejects)) == Counter(sent.rejects)
    # The CSV export: one object per date and batch, holding the same bars once.
    csv_objects = [
        info.path
        for info in lake.fs.get_file_info(pafs.FileSelector(lake.key("bars_csv"), recursive=True))
        if info.is_file
    ]
    assert csv_objects
    assert all(path.rsplit("/", 1)[1].startswith("part-") for path in csv_objects)
    csv_bars = sum(len(pa_csv.read_csv(lake.fs.open_input_stream(path))) for path in csv_objects)
    assert csv_bars == len(expected)
    assert_reconciled(settings)

    # `tickstream bars` reads the bars over S3, without Spark.
    child_env = {
        **os.environ,
        **env,
        "TICKSTREAM_HOME": str(base_settings.tickstream_home),
        "TICKSTREAM_JARS_DIR": str(base_settings.jars_dir),
        "SPARK_MASTER": "local[2]",
    }
    listed = subprocess.run(
        [sys.executable, "-m", "tickstream", "bars", "--format", "csv"],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert len(listed.stdout.splitlines()) == len(expected) + 1  # and a header
    # Compaction by hand: refused while a job may write (one writer process on S3), then run.
    lake_cmd = [sys.executable, "-m", "tickstream", "lake", "optimize"]
    refused = subprocess.run(lake_cmd, env=child_env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1
    assert "--job-stopped" in refused.stderr.strip().splitlines()[-1]
    compacted = subprocess.run(
        [*lake_cmd, "--job-stopped"], env=child_env, capture_output=True, text=True, timeout=300
    )
    assert compacted.returncode == 0, compacted.stderr
    assert "ticks:" in compacted.stdout
    assert lake_bars(location, options) == expected
    assert lake_sql(location, "SELECT count(*) FROM ticks", options) == [(len(ticks),)]
    # The lake is on the server, not in a local folder named after the URI.
    assert lake.is_dir("_checkpoints", "bars", "commits")
    assert not Path("s3a:").exists()

    # Rebuilt at 30 seconds from the archive on S3 into a new lake on S3, with the same command
    # as on a local path; --replace there needs the job's confirmed stop, as compaction does.
    bucket_root = env["OUTPUT_PATH"].rsplit("/", 1)[0]
    rebuild_cmd = [sys.executable, "-m", "tickstream", "lake", "rebuild"]
    refused = subprocess.run(
        [*rebuild_cmd, "--replace"], env=child_env, capture_output=True, text=True, timeout=120
    )
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1
    assert "--job-stopped" in refused.stderr
    rebuilt = subprocess.run(
        [*rebuild_cmd, "--window-duration", "30s", "--into", f"{bucket_root}/rebuilt-30s"],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert lake_bars(location.replace("/lake", "/rebuilt-30s"), options) == reference_bars(
        as_dicts(ticks), 30_000
    )
