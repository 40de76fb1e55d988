"""The one Spark session factory for every Spark code path in tickstream.

``local[*]`` by default, any master by setting. Spark's Kafka connector comes
from the jar cache (``spark.jars``), so nothing is downloaded at run time; on a
cluster the driver ships those jars to the executors. Logs stay at WARN, and the
UI either stays off or takes the next free port.

>>> spark = build_spark(load_settings(), app_name="tickstream-bars")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from tickstream.config import Settings
from tickstream.errors import EnvironmentProblem
from tickstream.jvm import cds
from tickstream.jvm.jars import ensure_jars
from tickstream.jvm.java import find_java, java_executable
from tickstream.jvm.versions import pinned
from tickstream.lake.layout import ObjectStore, is_object_store

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_LOG4J2 = """status = warn
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n%ex
rootLogger.level = warn
rootLogger.appenderRef.console.ref = console
logger.kafka.name = org.apache.kafka
logger.kafka.level = error
logger.jetty.name = org.sparkproject.jetty
logger.jetty.level = warn
logger.nativeloader.name = org.apache.hadoop.util.NativeCodeLoader
logger.nativeloader.level = error
logger.trigger.name = org.apache.spark.sql.execution.streaming.ProcessingTimeExecutor
logger.trigger.level = error
logger.dag.name = org.apache.spark.scheduler.DAGScheduler
logger.dag.level = error
# A query that ends is reported by tickstream itself, in one line (`the bars job failed: ...`);
# Spark's own report would add a stack trace, also when a graceful stop ends a batch early.
logger.mbe.name = org.apache.spark.sql.execution.streaming.MicroBatchExecution
logger.mbe.level = fatal
# Delta's OPTIMIZE and VACUUM plans are wide; Spark warns once that it shortened their text.
logger.strings.name = org.apache.spark.sql.catalyst.util.SparkStringUtils
logger.strings.level = error
# On S3: Parquet asks every file it writes to sync, which an object store cannot (its upload
# completes at close); S3A warns at each file. And it finds no metrics configuration file.
logger.s3sync.name = org.apache.hadoop.fs.s3a.S3ABlockOutputStream
logger.s3sync.level = error
logger.metrics.name = org.apache.hadoop.metrics2.impl.MetricsConfig
logger.metrics.level = error
# Ctrl-C interrupts a Hadoop shell command a task may be running; Hadoop warns with the whole
# InterruptedException's stack trace, on a stop that is clean.
logger.shell.name = org.apache.hadoop.util.Shell
logger.shell.level = error
"""


def spark_jars_dir() -> Path:
    """The folder of jars pyspark ships (its own Spark distribution)."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent / "jars"


def check_pyspark_version() -> None:
    import pyspark

    want = pinned().spark
    if pyspark.__version__ != want:
        raise EnvironmentProblem(
            f"pyspark {pyspark.__version__} is installed but tickstream is pinned to Spark {want}",
            f"pip install 'pyspark=={want}' (or reinstall tickstream)",
        )


MAINTENANCE_POOL = "lake-maintenance"

# The pools of Spark's fair scheduler: the micro-batches run in the default one, the lake's
# compaction (tickstream.bars.maintenance) in its own; each gets its share of the cores.
_POOL = "<schedulingMode>FIFO</schedulingMode><weight>1</weight><minShare>0</minShare>"
_POOLS = f"""<?xml version="1.0"?>
<allocations>
  <pool name="default">{_POOL}</pool>
  <pool name="{MAINTENANCE_POOL}">{_POOL}</pool>
</allocations>
"""


def _config_file(path: Path, text: str) -> Path:
    """``path`` holding ``text`` (written when missing or different)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
    return path


def spark_conf(
    settings: Settings,
    *,
    ui: bool = False,
    extra: Mapping[str, str] | None = None,
    object_store: bool = False,
    class_archive_dump: Path | None = None,
) -> dict[str, str]:
    """The configuration every tickstream session starts from. Hadoop's S3A filesystem is
    attached for a lake on S3 (an ``s3a://`` OUTPUT_PATH, with the S3_* settings), or when
    ``object_store`` asks (it adds ~1.7 s to a session's start, so not otherwise). A local
    driver maps the class archive made for its class path when there is one
    (:mod:`tickstream.jvm.cds`); ``class_archive_dump`` has it write one there as it exits."""
    on_s3 = is_object_store(settings.output_path)
    object_store = object_store or on_s3
    jars = ensure_jars(settings.jars_dir, quiet=True)
    connector = jars.spark_jars(spark_jars_dir(), object_store=object_store)
    log4j = _config_file(settings.tickstream_home.resolve() / "spark-log4j2.properties", _LOG4J2)
    pools = _config_file(settings.tickstream_home.resolve() / "spark-pools.xml", _POOLS)
    # HotSpot does not JIT-compile methods over 8,000 bytes of bytecode by default; the code
    # Spark generates for parsing and validating a message is larger, and interpreted it runs
    # several times slower (measured in bench/stream_throughput.py).
    java_opts = f"-Dlog4j2.configurationFile=file:{log4j} -XX:-DontCompileHugeMethods"
    local = settings.spark_master.startswith("local")
    driver_opts = java_opts
    if local:
        archive = cds.archive_file(settings.jars_dir, _class_path_key(connector))
        if class_archive_dump is not None:
            driver_opts += " " + cds.dump_options(class_archive_dump)
        elif cds.use_options(archive):
            driver_opts += " " + cds.use_options(archive)
    conf = {
        "spark.master": settings.spark_master,
        "spark.sql.session.timeZone": "UTC",
        "spark.driver.extraJavaOptions": driver_opts,
        "spark.executor.extraJavaOptions": java_opts,
        "spark.ui.enabled": "true" if ui else "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.port.maxRetries": "64",
        "spark.sql.adaptive.enabled": "false",
        # The lake's compaction runs beside the micro-batches in a pool of its own: fair
        # scheduling shares the cores between them instead of queueing one behind the other.
        "spark.scheduler.mode": "FAIR",
        "spark.scheduler.allocation.file": str(pools),
        # Delta Lake, the lake's table format (its SQL: OPTIMIZE, VACUUM, DESCRIBE HISTORY).
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        # Delta rebuilds a table's state with this many tasks (default 50): the lake's logs
        # are small, and one task halves the cost of an append (docs/lake.md).
        "spark.databricks.delta.snapshotPartitions": "1",
        # Delta keeps min/max/null counts of the first N columns (default 32) of each file in
        # the log, so a reader can skip files. Readers filter by symbol and time, the first two
        # columns of ticks, late and bars: statistics of the others would only make the log
        # (and every snapshot of it) larger. New tables only (docs/lake.md).
        "spark.databricks.delta.properties.defaults.dataSkippingNumIndexedCols": "2",
        "spark.sql.streaming.stateStore.providerClass": (
            "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"
        ),
        # Each micro-batch commits the state store by writing a changelog of what changed, not
        # a snapshot of the whole store (snapshots are made in the background).
        "spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled": "true",
        # Counting the store's rows costs a read before every write and delete (measured: ~10%
        # of a drain); the job counts what it needs itself.
        "spark.sql.streaming.stateStore.rocksdb.trackTotalNumberOfRows": "false",
        # The micro-batch is cached for the steps that read it again, for a few seconds:
        # compressing it costs more than the memory it saves (measured: ~6%).
        "spark.sql.inMemoryColumnarStorage.compressed": "false",
        "spark.sql.shuffle.partitions": str(settings.spark_shuffle_partitions),
        # Hostile input must become a reject, never an exception that stops the job: with
        # ANSI mode a bad cast or an overflow throws; without it, it yields null, which the
        # validation turns into a reason.
        "spark.sql.ansi.enabled": "false",
        "spark.pyspark.driver.python": sys.executable,
    }
    if local:
        # One JVM: the jars go on its class path when it starts, where a class archive can
        # hold their classes too (spark.jars would have the executor fetch and load them again
        # in a class loader of its own before its first task: ~1.5 s of a start, measured).
        conf["spark.driver.extraClassPath"] = os.pathsep.join(str(p) for p in connector)
    else:
        # The driver ships these jars to the cluster's executors.
        conf["spark.jars"] = ",".join(str(p) for p in connector)
    if local:
        # The job runs no Python on executors; in local mode they are this interpreter anyway.
        conf["spark.pyspark.python"] = sys.executable
        # One machine: bind to loopback so a laptop's hostname or VPN does not matter.
        conf["spark.driver.host"] = "127.0.0.1"
        conf["spark.driver.bindAddress"] = "127.0.0.1"
    if on_s3:
        for key, value in ObjectStore.from_settings(settings).hadoop().items():
            conf[f"spark.hadoop.{key}"] = value  # the keys are redacted in Spark's UI and logs
        # S3 has no rename: Spark's default checkpoint manager writes each checkpoint file as
        # a temporary object, then copies it (and on S3A it cannot create a file in a folder
        # that has no object yet). This one writes a file with one upload, which appears
        # whole when it completes, and abandons it on failure (SPARK-40039).
        conf["spark.sql.streaming.checkpointFileManagerClass"] = (
            "org.apache.spark.internal.io.cloud.AbortableStreamBasedCheckpointFileManager"
        )
    conf.update(extra or {})
    return conf


def _class_path_key(extra: list[Path]) -> str:
    """The class path a local driver starts with: its extra jars, then Spark's own."""
    spark_jars = sorted(spark_jars_dir().glob("*.jar"))
    return cds.class_path_key(java_executable() or Path("java"), [*extra, *spark_jars])


def class_archive(settings: Settings) -> Path:
    """Where the class archive of a local driver with these settings is (or would be)."""
    jars = ensure_jars(settings.jars_dir, quiet=True)
    on_s3 = is_object_store(settings.output_path)
    connector = jars.spark_jars(spark_jars_dir(), object_store=on_s3)
    return cds.archive_file(settings.jars_dir, _class_path_key(connector))


def _launch_jvm_in_own_session(conf: Mapping[str, str], app_name: str) -> None:
    """Start Spark's JVM in a session of its own, once per process.

    A signal sent to the whole process group (Ctrl-C, `timeout`, systemd, a container runtime)
    then reaches only the Python driver, which stops the job gracefully: the JVM is not shut
    down under a running micro-batch. It still exits with the driver: PySpark's gateway quits
    when its stdin (a pipe from this process) closes.
    """
    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway

    if SparkContext._gateway is not None:
        return
    spark_conf_obj = SparkConf(loadDefaults=False).setAll(list(conf.items())).setAppName(app_name)
    gateway = launch_gateway(  # type: ignore[no-untyped-call]
        spark_conf_obj, popen_kwargs={"start_new_session": True}
    )
    SparkContext._ensure_initialized(gateway=gateway, conf=spark_conf_obj)


def build_spark(
    settings: Settings,
    app_name: str = "tickstream",
    *,
    ui: bool = False,
    extra: Mapping[str, str] | None = None,
    object_store: bool = False,
    class_archive_dump: Path | None = None,
) -> SparkSession:
    """A SparkSession with the Kafka connector attached, quiet logs, UTC time."""
    find_java()
    check_pyspark_version()
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if settings.spark_master.startswith("local"):
        # Everything runs here: bind to the loopback address, which also spares the warning
        # that the host name resolves to it.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    conf = spark_conf(
        settings,
        ui=ui,
        extra=extra,
        object_store=object_store,
        class_archive_dump=class_archive_dump,
    )
    _launch_jvm_in_own_session(conf, app_name)
    builder = SparkSession.builder.appName(app_name)
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
