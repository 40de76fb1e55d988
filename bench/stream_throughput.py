"""Benchmark: drain the same ticks from Kafka with tickstream's job and with the original design.

Puts each input into a topic of its own on a local broker (3 partitions), then drains it, side
by side in one run and one Spark session (local[2], JVM warmed up first on the 120,000 ES ticks
of the test data; the JVM's start-up is timed separately):

- ``read only`` and ``read + parse``: what Spark's Kafka source costs alone, and with tickstream's
  parsing and validation (noop sink): the ceiling for everything after it; ``parse-full``
  (``--designs ...,parse-full``) parses every message the full way, without the fast path for
  valid ticks (``TickParser``), to compare the two, and ``parse-full-lenient`` without the strict
  JSON check (``JsonShape``), as the full path was before issue 26;
- ``tickstream``: the bars job with every output (bars, CSV bars, tick archive, rejects, late),
  ``--once`` (availableNow), micro-batches of ``--batch`` messages;
- ``parquet-lake``: the same job with the lake writer it had before Delta Lake (each table's rows
  of a batch written as Parquet into a staging folder by Spark, then renamed into place), for
  the Delta writer's cost side by side; ``all-stats``: the job with Delta's default file
  statistics (min/max/nulls of the first 32 columns, instead of the two readers filter by);
  ``serial-writes``: the job appending a batch's tables one after the other, not at once, and
  its tick archive with one task;
- ``bars-topics``: the same job with the bars on Kafka too, as the product's defaults have them
  (closed bars in one transaction per micro-batch, forming bars outside transactions);
- ``builtin`` (``--designs ...,builtin``): the design spike of Spark's built-in stateful
  operators (see ``drain_builtin`` and docs/engine.md);
- ``cold``: ``tickstream stream --once`` as a user runs it (a new process and JVM, the product's
  defaults); it is also run on an empty topic, and its rate is the input over the difference;
- ``flink`` / ``flink-warm``: Flink SQL as a design (``bench/flink_bars.py``: PyFlink in a venv
  the bench makes, Flink's Kafka SQL connector through Maven; versions in versions.env), cold
  like ``cold``, or warm (the same query on the warm-up topic first, in the same JVM); its bars
  are checked equal to tickstream's on the ES ticks;
- ``original``: the design tickstream started from, written here as the baseline: six queries on
  one topic (bars to Parquet, bars to CSV, ticks to Parquet, ticks to CSV, raw JSON to Parquet and
  to text), each with ``from_json``, the bars with dedup on (symbol, ts_epoch_ms) and
  ``first``/``last`` in a windowed aggregation, file sinks; all six run at once.

Inputs: the 500,000 real ES ticks (``../shared/data``, or the 120,000 of the test data), a
simulated market of ``--sim-ticks`` ticks over ``--symbols`` symbols (one tick per millisecond of
event time: windows close as it runs), and ``--state-ticks`` simulated ticks over 10 s of event
time (every tick in an open window: a realistic state). Each input's largest dedup-index state
is printed. Each input is drained ``--rounds`` times by each design, in a rotating order (the
first drain of an input is slower, whichever design runs it); prints each design's best in
ticks/s, and the ratios of tickstream to the original design and to the pre-Delta lake writer.

    .venv/bin/python bench/stream_throughput.py                     # ES + 2,000,000 simulated
    .venv/bin/python bench/stream_throughput.py --sim-ticks 500000  # quicker
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from tickstream.bars.job import BarsJob
from tickstream.bars.parse import Rules, parse_events
from tickstream.bars.report import BatchReport
from tickstream.bars.writer import LakeWriter
from tickstream.config import Settings, load_settings, settings_env
from tickstream.jvm.spark import build_spark
from tickstream.jvm.versions import parse_versions_env
from tickstream.kafka.admin import TopicSpec, ensure_topics
from tickstream.kafka.local import LocalKafka, free_port
from tickstream.kafka.producer import TickProducer
from tickstream.lake.layout import Lake, batch_file
from tickstream.sources.base import TickSource
from tickstream.sources.replay import ReplaySource
from tickstream.sources.simulate import SimulateSource

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "es_futures_ticks_2013-09.csv.gz"
TEST_DATA = REPO / "tests" / "data" / "es_ticks_2013-09_120k.csv.gz"
SIM_START_MS = 1_764_000_000_000  # 2025-11-24T16:00:00Z
# The realistic-state input's event times span this much: every tick sits in an open window
# until the end (as ~1.8M do in a 10,000/s feed with 1-minute bars and a 2-minute watermark).
STATE_SPAN_MS = 10_000


def produce(settings: Settings, topic: str, source: TickSource) -> int:
    ensure_topics(settings.kafka_bootstrap_servers, [TopicSpec(topic, 3)])
    producer = TickProducer(
        settings.model_copy(update={"kafka_topic": topic}),
        stop=threading.Event(),
        notify=lambda m: None,
    )
    producer.connect(30)
    stats = producer.run(source)
    if not stats.ok:
        raise SystemExit(f"producing {topic} failed: {stats.summary()}")
    return stats.acknowledged


def bench_broker(home: Path, batch: int) -> tuple[LocalKafka, Settings]:
    """A local broker under ``home``, started, and the settings the benchmarks' drains use."""
    broker = LocalKafka(
        home / "broker", port=free_port(), jars_dir=REPO / ".tickstream" / "jars", heap="1g"
    )
    settings = load_settings(
        {
            "kafka_bootstrap_servers": broker.start().bootstrap,
            "console_bars": False,
            "spark_master": "local[2]",
            "tickstream_home": home,
            "tickstream_jars_dir": REPO / ".tickstream" / "jars",
            "max_offsets_per_trigger": batch,
            "heartbeat_interval_sec": 1.0,
            # The drain of the lake path, comparable with the figures before bars on Kafka.
            "bars_topic": "off",
            "bars_live_topic": "off",
        }
    )
    return broker, settings


def es(path: Path) -> ReplaySource:
    return ReplaySource(path, symbol="ES", tz="America/Chicago", speed=None)


# --- the designs --------------------------------------------------------------------------------


def drain_tickstream(
    spark: SparkSession,
    settings: Settings,
    *,
    parquet_lake: bool = False,
    parallel_writes: bool = True,
    spark_bars: bool = False,
) -> None:
    """The bars job, ``--once``; ``parquet_lake``: with the pre-Delta lake writer, one table
    after the other as the job wrote its lake then; ``parallel_writes`` off: the batch's Delta
    appends one after the other, the tick archive by one task; ``spark_bars``: the bars
    appended by Spark, as before the driver wrote them."""
    job = BarsJob(settings, spark, on_batch=_note_state)
    if parquet_lake:
        job.lake = ParquetLakeWriter(job.root)
    if spark_bars:
        job.lake = SparkBarsWriter(job.root, spark)
    job.parallel_writes = parallel_writes and not parquet_lake
    query = job.start(once=True)
    query.awaitTermination()
    if query.exception() is not None:
        raise SystemExit(f"tickstream failed: {query.exception()}")
    job.lock.release()  # the lake is free again (a stop would be timed too)


# The most ticks the dedup index held at once (the open windows' ticks) in the last drain.
STATE = {"ticks": 0, "activity_bars": 0}


def _note_state(report: BatchReport) -> None:
    STATE["ticks"] = max(STATE["ticks"], report.open_rows)
    STATE["activity_bars"] = sum(report.totals.activity_bars.values())


def drain_cold(settings: Settings, out: Path) -> None:
    """`tickstream stream --once` as a user runs it: a new process and JVM, the product's
    defaults (micro-batches of up to MAX_OFFSETS_PER_TRIGGER, 500,000), bars topics off."""
    env = {
        **os.environ,
        **{k: v for k, v in settings_env(settings).items() if k not in COLD_DEFAULTS},
    }
    command([str(REPO / ".venv" / "bin" / "tickstream"), "stream", "--once"], env=env)


def command(args: list[str], env: dict[str, str] | None = None) -> str:
    """Run a design's command to its end; its output, or the run stops with its error's end."""
    result = subprocess.run(
        args, env=env, capture_output=True, text=True, check=False, timeout=3600
    )
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args[:3])} failed: {result.stderr[-3000:]}")
    return result.stdout


# --- Flink SQL as a design (bench/flink_bars.py, in a venv of its own) ---------------------------

FLINK_VENV = REPO / ".tickstream" / "bench" / "flink-venv"


def flink_setup(jars_dir: Path) -> tuple[Path, Path]:
    """PyFlink in a venv of its own and Flink's Kafka SQL connector in the jar cache, at the
    versions pinned in versions.env (made on first use); returns (python, connector jar)."""
    pins = parse_versions_env((REPO / "versions.env").read_text(encoding="utf-8"))
    flink, connector = pins["FLINK_VERSION"], pins["FLINK_KAFKA_CONNECTOR_VERSION"]
    python = FLINK_VENV / "bin" / "python"
    stamp = FLINK_VENV / ".apache-flink"
    if not stamp.is_file() or stamp.read_text(encoding="utf-8") != flink:
        print(f"installing PyFlink {flink} into {FLINK_VENV} (once) ...")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(FLINK_VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, f"apache-flink=={flink}"], check=True)
        stamp.write_text(flink, encoding="utf-8")
    folder = jars_dir / f"flink-kafka-{connector}"
    if not list(folder.glob("flink-sql-connector-kafka-*.jar")):
        print(f"resolving flink-sql-connector-kafka {connector} with Maven (once) ...")
        subprocess.run(
            [
                "mvn",
                "-B",
                "-q",
                "-f",
                str(REPO / "bench" / "flink" / "pom.xml"),
                "package",
                f"-Dflink.kafka.version={connector}",
                f"-Djars.dir={jars_dir}",
            ],
            check=True,
        )
    return python, next(folder.glob("flink-sql-connector-kafka-*.jar"))


def _flink_bars(settings: Settings, out: Path, python: Path, jar: Path, *extra: str) -> str:
    """bench/flink_bars.py on the settings' topic, bars into ``out/flink-bars.jsonl``; its
    last line of output (a JSON object with the bars and the query's seconds)."""
    out.mkdir(parents=True, exist_ok=True)
    script = str(REPO / "bench" / "flink_bars.py")
    topic, bootstrap = settings.kafka_topic, settings.kafka_bootstrap_servers
    output = command(
        [str(python), script, bootstrap, topic, str(out / "flink-bars.jsonl"), str(jar), *extra]
    )
    return output.strip().splitlines()[-1]


def drain_flink_warm(settings: Settings, out: Path, python: Path, jar: Path) -> float:
    """Flink SQL on the topic after the same query on the warm-up topic in the same JVM: the
    second query's own seconds, as Flink reports them (warm, like ``tickstream``)."""
    line = _flink_bars(settings, out, python, jar, "--warm-up", "warmup")
    return float(json.loads(line)["seconds"])


def drain_flink(settings: Settings, out: Path, python: Path, jar: Path) -> None:
    """Flink SQL's bars of the topic (bench/flink_bars.py), parallelism 2, into
    ``out/flink-bars.jsonl``: a new process and JVM (a local mini-cluster), like ``cold``."""
    _flink_bars(settings, out, python, jar)


BAR_FIELDS = ("open", "high", "low", "close", "volume", "trade_count")


def compare_bars(tickstream_lake: Path, flink_jsonl: Path) -> str:
    """tickstream's closed bars against Flink's: every one of ours equal to Flink's bar of the
    same (symbol, window); Flink also closes the windows still open at the end of the input
    (its bounded source ends with a final watermark), which tickstream keeps open."""
    from tickstream.lake.read import read_bars

    ours = read_bars(tickstream_lake)
    theirs = {}
    for line in flink_jsonl.read_text(encoding="utf-8").splitlines():
        bar = json.loads(line)
        theirs[(bar["symbol"], bar["window_start_ms"])] = bar
    unequal = []
    for row in ours.itertuples(index=False):
        key = (row.symbol, int(row.window_start.timestamp() * 1000))
        bar = theirs.get(key)
        if (
            bar is None
            or any(not math.isclose(getattr(row, f), bar[f], rel_tol=1e-9) for f in BAR_FIELDS)
            or not math.isclose(row.vwap, bar["vwap"], rel_tol=1e-9)
        ):
            unequal.append(key)
    if unequal:
        raise SystemExit(
            f"Flink SQL's bars differ from tickstream's: {len(unequal)} of {len(ours)}, "
            f"e.g. {unequal[:3]}"
        )
    return (
        f"{len(ours):,} closed bars of tickstream, each equal to Flink SQL's "
        f"(open, high, low, close, volume, trade_count, vwap); Flink also closed "
        f"{len(theirs) - len(ours)} windows still open at the end of the input"
    )


# Designs run as a command of their own (a new JVM): each is also timed on an empty topic, and
# its rate is the input over (its time less that start-up).
CMD_DESIGNS = ("cold", "flink")

# The bars-topics design's topics (the product's defaults publish bars to Kafka).
BARS_OUT, BARS_LIVE_OUT = "bench-bars", "bench-bars-live"

# The activity design's kinds: bars every 500 ticks, 5,000 of volume, 1,000,000 of value, for
# every symbol (the job cuts them from the tick archive through the oldest open window).
ACTIVITY_ON = {"tick_bars": "500", "volume_bars": "5000", "dollar_bars": "1000000"}

# Settings the cold run leaves at the product's defaults.
COLD_DEFAULTS = ("MAX_OFFSETS_PER_TRIGGER", "SPARK_MASTER")


class ParquetLakeWriter(LakeWriter):
    """The lake writer before Delta Lake (tickstream at fc8749a), for the benchmark only: each
    table's rows of a batch written as Parquet by Spark into a staging folder, then each file
    renamed into place under a name fixed by the batch; a batch's bars (a few rows, computed on
    the driver) written by pyarrow the same way."""

    def append(self, df: DataFrame, table: str, batch_id: int, *, files: int = 1) -> None:
        stage = Path(self.lake.key(*Lake.STAGING, table, f"batch={batch_id}"))
        shutil.rmtree(stage, ignore_errors=True)
        df.coalesce(1).write.mode("overwrite").partitionBy("date").parquet(stage.as_posix())
        for part_dir in sorted(stage.glob("date=*")):
            for staged in sorted(part_dir.glob("part-*.parquet")):
                target = Path(self.lake.key(table, part_dir.name, batch_file(batch_id, "parquet")))
                target.parent.mkdir(parents=True, exist_ok=True)
                staged.replace(target)
        shutil.rmtree(stage, ignore_errors=True)

    def append_rows(
        self,
        rows: Sequence[dict[str, Any]],
        schema: T.StructType,
        table: str,
        batch_id: int,
    ) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        def encode(group: list[dict[str, Any]]) -> bytes:
            out = pa.BufferOutputStream()
            pq.write_table(pa.Table.from_pylist(group), out)
            return bytes(out.getvalue())

        self.publish_by_date(rows, table, batch_id, "parquet", encode)


class SparkBarsWriter(LakeWriter):
    """The Delta writer before the driver wrote the bars with the deltalake package: a batch's
    bars appended by Spark (a DataFrame of a few rows, a Spark job and a commit)."""

    def __init__(self, lake: Lake, spark: SparkSession) -> None:
        super().__init__(lake)
        self.spark = spark

    def append_rows(
        self,
        rows: Sequence[dict[str, Any]],
        schema: T.StructType,
        table: str,
        batch_id: int,
    ) -> None:
        names = schema.fieldNames()
        frame = self.spark.createDataFrame([tuple(r[c] for c in names) for r in rows], schema)
        self.append(frame, table, batch_id)


STATS_COLUMNS = "spark.databricks.delta.properties.defaults.dataSkippingNumIndexedCols"
# Delta's own default: statistics of the first 32 columns of each file.
ALL_STATS = {STATS_COLUMNS: "32"}
# No statistics at all (a reader of a time range then opens every file of the date).
NO_STATS = {STATS_COLUMNS: "0"}
# Delta's per-commit work that a reader does not need: a checksum file after every commit (it
# sums the table's state), and a checkpoint of the log every 10 commits (a Spark job each).
LEAN_DELTA = {
    "spark.databricks.delta.writeChecksumFile.enabled": "false",
    "spark.databricks.delta.properties.defaults.checkpointInterval": "100",
}


def drain_with(spark: SparkSession, settings: Settings, conf: dict[str, str]) -> None:
    """The bars job with some of the session's configuration changed for the drain."""
    kept: dict[str, str | None] = {key: spark.conf.get(key, None) for key in conf}
    for key, value in conf.items():
        spark.conf.set(key, value)
    try:
        drain_tickstream(spark, settings)
    finally:
        for key, old in kept.items():
            if old is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, old)


def _kafka(spark: SparkSession, settings: Settings) -> DataFrame:
    options = {
        "kafka.bootstrap.servers": settings.kafka_bootstrap_servers,
        "subscribe": settings.kafka_topic,
        "startingOffsets": "earliest",
    }
    if settings.max_offsets_per_trigger:
        options["maxOffsetsPerTrigger"] = str(settings.max_offsets_per_trigger)
    return spark.readStream.format("kafka").options(**options).load()


def _run_all(queries: list[tuple[DataFrame, str, dict[str, str]]], out: Path) -> None:
    started = []
    for i, (frame, fmt, options) in enumerate(queries):
        writer = (
            frame.writeStream.format(fmt)
            .options(**options)
            .option("checkpointLocation", str(out / f"_chk{i}"))
            .trigger(availableNow=True)
        )
        if fmt != "noop":
            writer = writer.option("path", str(out / f"sink{i}"))
        started.append(writer.start())
    for query in started:
        query.awaitTermination()
        if query.exception() is not None:
            raise SystemExit(f"query failed: {query.exception()}")


def drain_read_only(spark: SparkSession, settings: Settings, out: Path) -> None:
    _run_all([(_kafka(spark, settings).select("value"), "noop", {})], out)


def drain_read_parse(
    spark: SparkSession,
    settings: Settings,
    out: Path,
    *,
    fast_path: bool = True,
    strict: bool = True,
) -> None:
    rules = Rules(settings.tick_min_ms, settings.tick_max_ahead_ms, settings.max_message_bytes)
    kafka = _kafka(spark, settings)
    parsed = parse_events(kafka, rules, fast_path=fast_path, strict=strict)
    parsed = parsed.drop("raw", "raw_text")
    _run_all([(parsed, "noop", {})], out)


ORIGINAL_JSON = T.StructType(
    [
        T.StructField("symbol", T.StringType()),
        T.StructField("ts_epoch_ms", T.LongType()),
        T.StructField("price", T.DoubleType()),
        T.StructField("volume", T.DoubleType()),
    ]
)


def drain_original(spark: SparkSession, settings: Settings, out: Path) -> None:
    """The design tickstream started from: six queries, each reading the whole topic."""

    def ticks() -> DataFrame:
        j = F.from_json(F.col("value").cast("string"), ORIGINAL_JSON)
        return (
            _kafka(spark, settings)
            .select(j.alias("j"))
            .select("j.*")
            .where(F.col("symbol").isNotNull())
            .withColumn("ts", F.timestamp_millis("ts_epoch_ms"))
        )

    def bars() -> DataFrame:
        return (
            ticks()
            .dropDuplicates(["symbol", "ts_epoch_ms"])
            .withWatermark("ts", settings.watermark)
            .groupBy(F.window("ts", settings.window_duration), "symbol")
            .agg(
                F.first("price").alias("open"),
                F.max("price").alias("high"),
                F.min("price").alias("low"),
                F.last("price").alias("close"),
                F.sum("volume").alias("volume"),
                (F.sum(F.col("price") * F.col("volume")) / F.sum("volume")).alias("vwap"),
                F.count(F.lit(1)).alias("trade_count"),
                F.avg("price").alias("price_avg"),
            )
            .select(
                "symbol",
                "window.start",
                "window.end",
                "open",
                "high",
                "low",
                "close",
                "volume",
                "vwap",
                "trade_count",
                "price_avg",
            )
        )

    def raw() -> DataFrame:
        return _kafka(spark, settings).select(F.col("value").cast("string").alias("value"))

    csv = {"header": "true"}
    _run_all(
        [
            (bars(), "parquet", {}),
            (bars(), "csv", csv),
            (ticks(), "parquet", {}),
            (ticks(), "csv", csv),
            (raw(), "parquet", {}),
            (raw(), "text", {}),
        ],
        out,
    )


def drain_builtin(spark: SparkSession, settings: Settings, out: Path) -> None:
    """Design spike (a): Spark's built-in stateful operators, as far as they go.

    Bars: tickstream's parsing, then ``dropDuplicatesWithinWatermark("event_id")`` and a windowed
    aggregation with ``min_by``/``max_by`` over (ts, seq, event_id), RocksDB state. The tick archive
    and the rejects need a second query (an aggregation's sink gets only its bars), so the topic
    is read twice. What it cannot do at all: record late ticks (Spark drops them before the
    operators), detect event_id conflicts, or follow the slowest partition's clock.
    """
    rules = Rules(settings.tick_min_ms, settings.tick_max_ahead_ms, settings.max_message_bytes)

    def parsed() -> DataFrame:
        return parse_events(_kafka(spark, settings), rules)

    ticks = (
        parsed()
        .where(F.col("kind") == "tick")
        .withColumn("ts", F.timestamp_millis("ts_epoch_ms"))
        .withWatermark("ts", settings.watermark)
    )
    order = F.struct("ts_epoch_ms", "seq", "event_id")
    bars = (
        ticks.dropDuplicatesWithinWatermark(["event_id"])
        .groupBy(F.window("ts", settings.window_duration), "symbol")
        .agg(
            F.min_by("price", order).alias("open"),
            F.max("price").alias("high"),
            F.min("price").alias("low"),
            F.max_by("price", order).alias("close"),
            F.sum("volume").alias("volume"),
            F.sum(F.col("price") * F.col("volume")).alias("pv"),
            F.count(F.lit(1)).alias("trade_count"),
            F.sum("price").alias("price_sum"),
        )
        .select("window.start", "window.end", "*")
        .drop("window")
    )

    def write_bars(frame: DataFrame, batch_id: int) -> None:
        frame.persist()
        frame.write.mode("append").parquet(str(out / "bars"))
        frame.write.mode("append").csv(str(out / "bars_csv"))
        frame.unpersist()

    def write_archive(frame: DataFrame, batch_id: int) -> None:
        frame.persist()
        frame.where(F.col("kind") == "tick").drop("raw", "raw_text").write.mode("append").parquet(
            str(out / "ticks")
        )
        frame.where(F.col("kind") == "reject").write.mode("append").parquet(str(out / "rejects"))
        frame.unpersist()

    queries = [
        bars.writeStream.foreachBatch(write_bars)
        .option("checkpointLocation", str(out / "_chk_bars"))
        .trigger(availableNow=True)
        .start(),
        parsed()
        .writeStream.foreachBatch(write_archive)
        .option("checkpointLocation", str(out / "_chk_archive"))
        .trigger(availableNow=True)
        .start(),
    ]
    for query in queries:
        query.awaitTermination()
        if query.exception() is not None:
            raise SystemExit(f"query failed: {query.exception()}")


# --- the run ------------------------------------------------------------------------------------


def timed(run: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    run()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--es", type=Path, default=SHARED if SHARED.is_file() else TEST_DATA)
    parser.add_argument("--sim-ticks", type=int, default=2_000_000)
    parser.add_argument(
        "--state-ticks",
        type=int,
        default=2_000_000,
        help="ticks of the realistic-state input: event times over 10 s, all in open windows "
        "(0: leave it out)",
    )
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--batch", type=int, default=250_000, help="messages per micro-batch")
    parser.add_argument(
        "--rounds", type=int, default=2, help="drains of each input by each design (best counts)"
    )
    parser.add_argument(
        "--designs",
        default="read,parse,parse-full,tickstream,original",
        help="comma-separated subset",
    )
    args = parser.parse_args()
    designs = args.designs.split(",")

    home = Path(tempfile.mkdtemp(prefix="tickstream-bench-"))
    broker, base = bench_broker(home, args.batch)
    bootstrap = base.kafka_bootstrap_servers
    try:
        symbols = [f"S{i:03d}" for i in range(args.symbols)]
        inputs = {
            "warm-up": produce(base, "warmup", es(TEST_DATA)),
            f"ES real ({args.es.name})": produce(base, "es", es(args.es)),
            f"simulated, {args.symbols} symbols": produce(
                base,
                "sim",
                SimulateSource(symbols, 0, seed=7, count=args.sim_ticks, start_ms=SIM_START_MS),
            ),
        }
        topics = dict(zip(inputs, ("warmup", "es", "sim"), strict=True))
        if args.state_ticks:
            name = f"simulated, {args.symbols} symbols, all {args.state_ticks:,} in open windows"
            inputs[name] = produce(
                base,
                "state",
                SimulateSource(
                    symbols,
                    0,
                    seed=11,
                    count=args.state_ticks,
                    start_ms=SIM_START_MS,
                    step_ms=STATE_SPAN_MS / args.state_ticks,
                ),
            )
            topics[name] = "state"
        ensure_topics(bootstrap, [TopicSpec(t, 3) for t in ("empty", BARS_OUT, BARS_LIVE_OUT)])
        topics["empty"] = "empty"
        t0 = time.perf_counter()
        spark = build_spark(base, app_name="tickstream-bench")
        spark.range(1).count()
        jvm_start = time.perf_counter() - t0
        print(f"broker {bootstrap}; Spark local[2] started in {jvm_start:.1f}s (not counted below)")
        print(f"micro-batches of up to {args.batch:,} messages; bars of 1 minute, watermark 2 min")

        use_flink = "flink" in designs or "flink-warm" in designs
        flink = flink_setup(REPO / ".tickstream" / "jars") if use_flink else None
        compared = home / "compared"

        def run(design: str, name: str) -> float:
            out = home / f"{design}-{topics[name]}-{time.monotonic_ns()}"
            settings = base.model_copy(
                update={"kafka_topic": topics[name], "output_path": out / "lake"}
            )
            runners: dict[str, Callable[[], None]] = {
                "read": lambda: drain_read_only(spark, settings, out),
                "parse": lambda: drain_read_parse(spark, settings, out),
                "parse-full": lambda: drain_read_parse(spark, settings, out, fast_path=False),
                "parse-full-lenient": lambda: drain_read_parse(
                    spark, settings, out, fast_path=False, strict=False
                ),
                "tickstream": lambda: drain_tickstream(spark, settings),
                "bars-topics": lambda: drain_tickstream(
                    spark,
                    settings.model_copy(
                        update={"bars_topic": BARS_OUT, "bars_live_topic": BARS_LIVE_OUT}
                    ),
                ),
                "activity": lambda: drain_tickstream(
                    spark, settings.model_copy(update=ACTIVITY_ON)
                ),
                "cold": lambda: drain_cold(settings, out),
                "flink": lambda: drain_flink(settings, out, *flink_or_fail()),
                "parquet-lake": lambda: drain_tickstream(spark, settings, parquet_lake=True),
                "all-stats": lambda: drain_with(spark, settings, ALL_STATS),
                "no-stats": lambda: drain_with(spark, settings, NO_STATS),
                "spark-bars": lambda: drain_tickstream(spark, settings, spark_bars=True),
                "serial-writes": lambda: drain_tickstream(spark, settings, parallel_writes=False),
                "lean-delta": lambda: drain_with(spark, settings, LEAN_DELTA),
                "original": lambda: drain_original(spark, settings, out),
                "builtin": lambda: drain_builtin(spark, settings, out),
            }
            if design == "flink-warm":
                seconds = drain_flink_warm(settings, out, *flink_or_fail())
            else:
                seconds = timed(runners[design])
            if topics[name] == "es" and design in ("tickstream", "flink"):
                # Kept to compare the two designs' bars of the ES ticks (the last round's).
                kept = compared / design
                shutil.rmtree(kept, ignore_errors=True)
                kept.parent.mkdir(parents=True, exist_ok=True)
                (out / "lake" if design == "tickstream" else out).rename(kept)
            shutil.rmtree(out, ignore_errors=True)
            return seconds

        def flink_or_fail() -> tuple[Path, Path]:
            assert flink is not None
            return flink

        for design in designs:  # warm the JIT on every code path first
            if design not in (*CMD_DESIGNS, "flink-warm"):  # each warms itself, or is cold
                run(design, "warm-up")
        labels = {
            "read": "read only (noop)",
            "parse": "read + parse (noop)",
            "parse-full": "read + full parse (noop)",
            "parse-full-lenient": "read + full parse, no JsonShape (noop)",
            "tickstream": "tickstream, all outputs",
            "bars-topics": "the same, bars to Kafka too",
            "activity": "the same, tick/volume/dollar bars",
            "cold": "tickstream stream --once (cold)",
            "flink": "Flink SQL, parallelism 2 (cold)",
            "flink-warm": "Flink SQL, parallelism 2 (warm)",
            "parquet-lake": "the same, pre-Delta lake writer",
            "all-stats": "the same, Delta stats 32 cols",
            "serial-writes": "the same, tables one by one",
            "lean-delta": "the same, no checksum, ckpt/100",
            "no-stats": "the same, no Delta statistics",
            "spark-bars": "the same, bars by Spark",
            "original": "original design (6 queries)",
            "builtin": "spike (a): built-in operators",
        }
        for name, count in list(inputs.items())[1:]:
            print(f"\n{name}: {count:,} messages")
            # The first design to drain an input pays more (measured: about 0.6 s a batch of
            # 250,000, whichever design it is): each round runs the designs in another order,
            # and each design's best round counts.
            best: dict[str, float] = {}
            startup: dict[str, list[float]] = {}
            state = activity_bars = 0
            for turn in range(args.rounds):
                order = designs[turn % len(designs) :] + designs[: turn % len(designs)]
                for design in order:
                    if design in CMD_DESIGNS:
                        # The same command on an empty topic: its start-up, stop and exit.
                        seconds = run(design, "empty")
                        startup.setdefault(design, []).append(seconds)
                        what = f"  {design}: its start-up"
                        print(f"  round {turn + 1}: {what:<30} {seconds:>7.1f}s")
                    STATE["ticks"] = 0
                    seconds = run(design, name)
                    if design == "tickstream":
                        state = max(state, STATE["ticks"])
                    if design == "activity":
                        activity_bars = STATE["activity_bars"]
                    best[design] = min(best.get(design, seconds), seconds)
                    print(f"  round {turn + 1}: {labels[design]:<30} {seconds:>7.1f}s")
            if state:
                print(f"  open-window state: up to {state:,} ticks in the dedup index at once")
            if "activity" in designs:
                print(f"  activity design: {activity_bars:,} tick, volume and dollar bars cut")
            rates = {design: count / best[design] for design in designs}
            for design, empty in startup.items():
                # The processing rate of a whole command: its time less its own start-up.
                rates[design] = count / max(best[design] - min(empty), 1e-9)
            for design in designs:
                extra = ""
                if design in startup:
                    extra = f"  (less its start-up, {min(startup[design]):.1f}s)"
                print(
                    f"  best: {labels[design]:<31} {best[design]:>7.1f}s  "
                    f"{rates[design]:>10,.0f} ticks/s{extra}"
                )
            pair = (compared / "tickstream", compared / "flink" / "flink-bars.jsonl")
            if topics[name] == "es" and all(p.exists() for p in pair):
                print("  " + compare_bars(*pair))
            for ours, theirs, label in (
                ("cold", "flink", "cold: tickstream / Flink SQL"),
                ("tickstream", "flink-warm", "warm: tickstream / Flink SQL"),
            ):
                if ours in rates and theirs in rates:
                    ratio = rates[ours] / rates[theirs]
                    print(f"  {label:<37} {ratio:>18.2f}x")
            others = ("original", "parquet-lake", "all-stats", "serial-writes", "lean-delta")
            others = (*others, "bars-topics", "activity")
            for other in (*others, "no-stats", "spark-bars"):
                if "tickstream" in rates and other in rates:
                    ratio = rates["tickstream"] / rates[other]
                    print(f"  {'tickstream / ' + other:<37} {ratio:>18.2f}x")
        spark.stop()
    finally:
        broker.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
