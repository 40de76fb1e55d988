"""Soak benchmark: a steady stream of ticks through the whole pipeline, for minutes.

A simulated market at --rate ticks/s (default 10,000) is produced into a local broker while the
bars job runs (Spark local mode, in this process). Every --every seconds it samples: the job's
state rows (ticks in open windows), the driver JVM's heap after a GC and its resident memory,
this process's resident memory, and the consumer lag (topic end offsets minus the offsets of
the job's last committed batch). After the warm-up (the first --warmup share of the run) it
prints whether state and memory stay flat and whether the lag grows.

It also measures what a user waits for:
- bar latency, for every bar after the warm-up: from the moment the watermark passes the end of
  its window (wall clock = window end + WATERMARK: the simulated ticks carry the wall clock as
  their event time) to the moment its file is published in the lake, p50 and p95;
- the job's start-up: Spark's, then from starting the query to its first micro-batch, and
  how long that first micro-batch takes;
- idle micro-batches: after the producer stops, heartbeats alone for a few seconds.

    .venv/bin/python bench/soak.py                 # 5 minutes, 1-minute bars, 2-minute watermark
    .venv/bin/python bench/soak.py --short         # 2 minutes, 5-second bars
    (CI runs `--short --rate 5000 --seconds 60`: tests/integration/test_soak.py)

With ``--rates R1,R2,...`` it steps the rate instead: one whole soak per rate (a new broker and
JVM each, in a child process, with the other options), lowest first, until one fails its
verdicts; it prints each step's verdict, p95 bar latency and lag, and the highest rate it
sustained at those settings (the README's one number):

    .venv/bin/python bench/soak.py --rates 10000,20000,30000 --seconds 360 --latency-target 5

Exit code 0 when the verdicts hold, 1 when one fails.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from confluent_kafka import Producer  # noqa: E402

from tickstream.bars.job import BarsJob  # noqa: E402
from tickstream.bars.report import BatchReport  # noqa: E402
from tickstream.config import load_settings  # noqa: E402
from tickstream.jvm.spark import build_spark  # noqa: E402
from tickstream.kafka.admin import ensure_topics, pipeline_topics  # noqa: E402
from tickstream.kafka.local import LocalKafka, free_port  # noqa: E402
from tickstream.kafka.producer import TickProducer  # noqa: E402
from tickstream.reconcile import committed_offsets, topic_offsets  # noqa: E402
from tickstream.sources.simulate import SimulateSource  # noqa: E402
from tickstream.ticks.codec import encode_heartbeat  # noqa: E402
from tickstream.ticks.schema import Heartbeat  # noqa: E402


@dataclass
class Sample:
    t: float
    produced: int
    state_rows: int
    heap_mb: float
    jvm_rss_mb: float
    py_rss_mb: float
    lag: int


@dataclass
class BatchTimes:
    at: float  # monotonic time the batch ended
    messages: int
    seconds: float


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def wait_until_produced(producer: TickProducer, timeout: float = 30.0) -> None:
    """Until the producer has sent its first ticks."""
    deadline = time.monotonic() + timeout
    while producer.stats.sent == 0 and time.monotonic() < deadline:
        time.sleep(0.05)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


BARS_OFF = {"bars_topic": "off", "bars_live_topic": "off"}
# The same thresholds as bench/stream_throughput.py's activity design.
ACTIVITY_ON = {"tick_bars": "500", "volume_bars": "5000", "dollar_bars": "1000000"}


def step_rates(args: argparse.Namespace) -> int:
    """One soak per rate, lowest first, until one fails; the highest that held is the figure."""
    passed: float | None = None
    rows = []
    for rate in sorted(float(r) for r in args.rates.split(",")):
        command = [sys.executable, __file__, "--rate", str(rate), "--every", str(args.every)]
        command += ["--warmup", str(args.warmup), "--trigger", args.trigger]
        command += ["--window", args.window, "--watermark", args.watermark]
        command += ["--bars-topics", args.bars_topics, "--activity", args.activity]
        if args.seconds:
            command += ["--seconds", str(args.seconds)]
        if args.latency_target is not None:
            command += ["--latency-target", str(args.latency_target)]
        if args.short:
            command.append("--short")
        print(f"\n=== step: {rate:,.0f} ticks/s ===", flush=True)
        run = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
        print(run.stdout, end="", flush=True)
        p95 = re.search(r"from the watermark passing .*? p95 ([0-9.]+)s", run.stdout)
        lag = re.search(r"after warm-up, +lag: .*second half low +([0-9,]+)", run.stdout)
        rows.append(
            (
                rate,
                "held" if run.returncode == 0 else "failed",
                f"{p95.group(1)}s" if p95 else "-",
                lag.group(1) if lag else "-",
            )
        )
        if run.returncode != 0:
            break
        passed = rate
    print(f"\nrate steps (bars of {args.window}, watermark {args.watermark}):")
    print(
        f"  {'ticks/s':>10} {'verdicts':>9} {'p95 after watermark':>20} {'lag low (2nd half)':>19}"
    )
    for rate, verdict, p95_text, lag_text in rows:
        print(f"  {rate:>10,.0f} {verdict:>9} {p95_text:>20} {lag_text:>19}")
    if passed is None:
        print("highest sustained rate: none of the steps held")
        return 1
    print(f"highest sustained rate: {passed:,.0f} ticks/s (every verdict held)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=10_000)
    parser.add_argument("--seconds", type=float, help="how long (default 300; --short: 120)")
    parser.add_argument("--every", type=float, default=5)
    parser.add_argument("--warmup", type=float, default=0.4, help="share of the run to ignore")
    parser.add_argument("--window", default="1 minute")
    parser.add_argument("--watermark", default="2 minutes")
    parser.add_argument("--trigger", default="1 second")
    parser.add_argument(
        "--bars-topics",
        choices=("on", "off"),
        default="on",
        help="publish bars to Kafka (closed bars in transactions, forming bars) or not",
    )
    parser.add_argument(
        "--activity",
        choices=("on", "off"),
        default="off",
        help="also cut tick, volume and dollar bars (TICK_BARS=500, VOLUME_BARS=5000, "
        "DOLLAR_BARS=1000000 for every symbol) or not (the product's default)",
    )
    parser.add_argument(
        "--latency-target",
        type=float,
        help="also judge the p95 bar latency: at most this many seconds after the watermark "
        "passes the window's end (the issue's target is 5)",
    )
    parser.add_argument("--short", action="store_true", help="2 min with 5-second bars")
    parser.add_argument(
        "--rates",
        help="comma-separated rates to step through, one soak each, until one fails",
    )
    args = parser.parse_args()
    if args.rates:
        return step_rates(args)
    if args.short:
        args.seconds = args.seconds or 120
        args.window, args.watermark, args.every = "5 seconds", "5 seconds", 3
    args.seconds = args.seconds or 300

    home = Path(tempfile.mkdtemp(prefix="tickstream-soak-"))
    broker = LocalKafka(
        home / "broker", port=free_port(), jars_dir=REPO / ".tickstream" / "jars", heap="1g"
    )
    bootstrap = broker.start().bootstrap
    topic = "soak"
    settings = load_settings(
        {
            "kafka_bootstrap_servers": bootstrap,
            "kafka_topic": topic,
            "output_path": home / "lake",
            "window_duration": args.window,
            "watermark": args.watermark,
            "console_bars": False,
            "spark_master": "local[2]",
            "tickstream_home": home,
            "tickstream_jars_dir": REPO / ".tickstream" / "jars",
            "msgs_per_sec": args.rate,
            "processing_trigger": args.trigger,
            **(BARS_OFF if args.bars_topics == "off" else {}),
            **(ACTIVITY_ON if args.activity == "on" else {}),
        }
    )
    ensure_topics(bootstrap, pipeline_topics(settings))  # the ticks and the bars topics
    spark_started = time.monotonic()
    spark = build_spark(settings, app_name="tickstream-soak")
    spark_seconds = time.monotonic() - spark_started
    jvm_pid = int(spark.sparkContext._jvm.ProcessHandle.current().pid())  # type: ignore[union-attr]
    runtime = spark.sparkContext._jvm.java.lang.Runtime.getRuntime()  # type: ignore[union-attr]
    batches: list[BatchTimes] = []
    latencies: list[float] = []  # ms from the watermark passing a window's end to its bar
    activity: list[float] = []  # ms from an activity bar's last tick to the bar in the lake
    slowest_cut: dict[str, float] = {}  # the batch whose activity step took longest: its parts
    watermark_ms = settings.watermark_ms

    def on_batch(report: BatchReport) -> None:
        now = time.time() * 1000
        batches.append(BatchTimes(time.monotonic(), report.messages, report.seconds))
        for bar in report.bars:
            window_end = bar["window_end"].timestamp() * 1000
            latencies.append(now - (window_end + watermark_ms))
        activity.extend(now - bar.last_ms for bar in report.activity_bars)
        if report.activity_seconds > slowest_cut.get("seconds", 0.0):
            slowest_cut.clear()
            slowest_cut.update(job.activity.timings, seconds=report.activity_seconds)
            slowest_cut["batch"] = report.seconds

    stop = threading.Event()
    producer = TickProducer(settings, stop=stop, notify=lambda m: print(m, file=sys.stderr))
    producer.connect(30)
    source = SimulateSource(settings.tickers, args.rate, seed=1, stop=stop)
    producing = threading.Thread(target=producer.run, args=(source,), daemon=True)
    producing.start()
    # The stream flows before the query starts, as for a job (re)started on a live topic: the
    # time to its first micro-batch is then the job's own, not a wait for the first tick.
    wait_until_produced(producer)

    job = BarsJob(settings, spark, on_batch=on_batch)
    query_started = time.monotonic()
    query = job.start()

    samples: list[Sample] = []
    started = time.monotonic()
    codegen = spark.sparkContext._jvm.org.apache.spark.metrics.source.CodegenMetrics  # type: ignore[union-attr]
    compiled: list[int] = []  # Spark's code generations so far, at each sample
    print(
        f"soak: {args.rate:,.0f} ticks/s for {args.seconds:g}s, "
        f"bars of {args.window}, watermark {args.watermark}"
    )
    header = ("t(s)", "produced", "state", "heap MB", "JVM RSS", "py RSS", "lag")
    print("".join(f"{h:>10}" for h in header))
    try:
        while time.monotonic() - started < args.seconds:
            time.sleep(args.every)
            if query.exception() is not None:
                raise SystemExit(f"the job failed: {query.exception()}")
            runtime.gc()
            offsets = topic_offsets(settings)
            committed = committed_offsets(job.root, topic)
            lag = sum(high - committed.get(p, low) for p, (low, high) in offsets.items())
            report = job.last_report
            s = Sample(
                t=time.monotonic() - started,
                produced=producer.stats.sent,
                state_rows=report.open_rows if report else 0,
                heap_mb=(runtime.totalMemory() - runtime.freeMemory()) / 2**20,
                jvm_rss_mb=rss_mb(jvm_pid),
                py_rss_mb=rss_mb(int(Path("/proc/self").resolve().name)),
                lag=lag,
            )
            samples.append(s)
            compiled.append(codegen.METRIC_COMPILATION_TIME().getCount())
            print(
                f"{s.t:>10.0f}{s.produced:>10,}{s.state_rows:>10,}{s.heap_mb:>10.0f}"
                f"{s.jvm_rss_mb:>10.0f}{s.py_rss_mb:>10.0f}{s.lag:>10,}"
            )
        bars_until_warm = len(latencies) if samples else 0
        warm_from = int(len(latencies) * args.warmup)
        stop.set()
        producing.join(60)
        # Heartbeats alone: the idle micro-batches.
        idle_from = len(batches)
        beats = Producer({"bootstrap.servers": bootstrap})
        idle_end = time.monotonic() + 8
        while time.monotonic() < idle_end:
            for p in range(3):
                beats.produce(
                    topic, encode_heartbeat(Heartbeat("soak", int(time.time() * 1000))), partition=p
                )
            beats.flush(10)
            time.sleep(1)
        time.sleep(3)
    finally:
        stop.set()
        producing.join(60)
        job.stop()
        spark.stop()
        broker.stop()

    steady = samples[int(len(samples) * args.warmup) :]
    half = len(steady) // 2
    early, late = steady[:half], steady[half:]
    rate = (samples[-1].produced - samples[0].produced) / (samples[-1].t - samples[0].t)

    def mean(xs: list[Sample], field: str) -> float:
        return statistics.fmean(float(getattr(x, field)) for x in xs)

    def peak(xs: list[Sample], field: str) -> float:
        return max(float(getattr(x, field)) for x in xs)

    def low(xs: list[Sample], field: str) -> float:
        return min(float(getattr(x, field)) for x in xs)

    # Micro-batches make every series a sawtooth: compare the two halves after the warm-up,
    # not single samples.
    verdicts = {
        # The lag's troughs (right after a micro-batch commits) are the backlog the job did
        # not absorb; they must not climb.
        "lag does not grow (second-half low within 10 s of input of the first)": low(late, "lag")
        <= low(early, "lag") + 10 * args.rate,
        # The state holds the ticks of open windows: at most WINDOW + WATERMARK of event time.
        # Bounded by that span in the whole steady phase = flat; a leak would outgrow it.
        "state rows stay within the open-window span (1.5 x rate x (window + watermark))": max(
            peak(early, "state_rows"), peak(late, "state_rows")
        )
        <= 1.5 * args.rate * (settings.window_seconds + settings.watermark_seconds),
        "JVM heap after GC stays flat (within 256 MB)": peak(late, "heap_mb")
        <= peak(early, "heap_mb") + 256,
    }
    steady_latency = sorted(latencies[warm_from:bars_until_warm] or latencies)
    idle = [b.seconds for b in batches[idle_from:] if b.messages <= 10]
    first = batches[0] if batches else BatchTimes(float("nan"), 0, float("nan"))
    to_first = first.at - first.seconds - query_started  # query start -> first batch begins
    p50, p95 = _percentile(steady_latency, 50), _percentile(steady_latency, 95)
    if args.latency_target is not None:
        verdicts[
            f"p95 bar latency within {args.latency_target:g} s of the watermark passing the "
            "window's end"
        ] = p95 <= args.latency_target * 1000
    print(f"produced {rate:,.0f} ticks/s on average over {samples[-1].t:.0f}s")
    warm = int(len(samples) * args.warmup)
    print(
        f"classes Spark generated and compiled after the warm-up: {compiled[-1] - compiled[warm]:,}"
        f" (in {len([b for b in batches if b.at >= started + samples[warm].t]):,} micro-batches)"
    )
    print(
        f"bar latency after warm-up ({len(steady_latency):,} bars), from the watermark passing "
        f"the window's end to the bar in the lake: p50 {p50 / 1000:.1f}s p95 {p95 / 1000:.1f}s "
        f"(from the window's end: p50 {(p50 + watermark_ms) / 1000:.1f}s "
        f"p95 {(p95 + watermark_ms) / 1000:.1f}s)"
    )
    if activity:
        late_half = sorted(activity[len(activity) // 2 :])
        print(
            f"tick, volume and dollar bars: {len(activity):,}; from the last tick to the bar in "
            f"the lake (2nd half): p50 {_percentile(late_half, 50) / 1000:.1f}s "
            f"p95 {_percentile(late_half, 95) / 1000:.1f}s (they are cut through the start of "
            "the oldest open window: WATERMARK to WATERMARK + WINDOW after their last tick)"
        )
        parts = ", ".join(
            f"{k} {v:.2f}s" for k, v in slowest_cut.items() if k not in ("ticks", "batch")
        )
        print(
            f"the slowest activity step: {slowest_cut.get('ticks', 0):,.0f} ticks cut: {parts}"
            f" (its whole micro-batch {slowest_cut.get('batch', 0):.2f}s)"
        )
    print(
        f"start-up: Spark {spark_seconds:.1f}s + the query to its first micro-batch "
        f"{to_first:.1f}s = {spark_seconds + to_first:.1f}s; the first micro-batch (the backlog "
        f"meanwhile, a cold JIT) took {first.seconds:.1f}s"
    )
    print(
        f"micro-batches {len(batches):,}, idle ones (heartbeats only) "
        + (f"median {statistics.median(idle):.2f}s max {max(idle):.2f}s" if idle else "none seen")
    )
    for name, field in (
        ("lag", "lag"),
        ("state rows", "state_rows"),
        ("heap MB", "heap_mb"),
        ("JVM RSS MB", "jvm_rss_mb"),
    ):
        print(
            f"after warm-up, {name:>10}: first half low {low(early, field):>9,.0f} mean "
            f"{mean(early, field):>9,.0f} peak {peak(early, field):>9,.0f} | second half low "
            f"{low(late, field):>9,.0f} mean {mean(late, field):>9,.0f} "
            f"peak {peak(late, field):>9,.0f}"
        )
    for name, ok in verdicts.items():
        print(f"[{'ok ' if ok else 'BAD'}] {name}")
    return 0 if all(verdicts.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
