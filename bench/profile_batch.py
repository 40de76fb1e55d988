"""Profile: where a micro-batch's time goes at a realistic state.

Fills a topic on a local broker (3 partitions) with ``--ticks`` simulated ticks over 100 symbols
whose event times span 10 s, so every tick stays in an open window and in the dedup index (the
state of a 10,000/s feed at the original defaults is ~1.8M ticks), then drains it with the bars
job (``--once``, micro-batches of ``--batch``, the product's default 500,000; bars topics off)
in one Spark session (local[2]), warmed first on the 120,000 ES ticks of the test data unless
``--cold``. It prints:

- each micro-batch: its messages, wall time and the ticks in open windows after it;
- for the measured drain, Spark's stages from its event log, grouped by where they were called
  (the Python line): wall time, task run time and CPU time summed over tasks, GC, shuffle
  bytes, and the wall time of the batches outside any stage (the driver, the lake's commits);
- a CPU profile of the driver JVM (Java Flight Recorder, started before the drain and dumped
  after it): the share of samples by the top frame's package group and the hottest methods.

    .venv/bin/python bench/profile_batch.py                  # 2,000,000 ticks, batches of 500,000
    .venv/bin/python bench/profile_batch.py --ticks 1000000 --batch 250000
    .venv/bin/python bench/profile_batch.py --es --cold --compilations \
        --java-options=-XX:TieredStopAtLevel=1
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from stream_throughput import (  # noqa: E402
    SHARED,
    SIM_START_MS,
    STATE_SPAN_MS,
    TEST_DATA,
    bench_broker,
    es,
    produce,
)

from tickstream.bars.job import BarsJob  # noqa: E402
from tickstream.bars.report import BatchReport  # noqa: E402
from tickstream.jvm.java import java_executable  # noqa: E402
from tickstream.jvm.spark import build_spark, spark_conf  # noqa: E402
from tickstream.sources.simulate import SimulateSource  # noqa: E402

# The top frame of a CPU sample, grouped by what it belongs to (first match wins).
GROUPS = (
    ("RocksDB (JNI)", ("org.rocksdb.",)),
    ("state store", ("org.apache.spark.sql.execution.streaming.state.",)),
    ("dedup index", ("io.tickstream.engine.DedupIndex",)),
    ("parse fast path", ("io.tickstream.engine.TickParser", "com.fasterxml.jackson.")),
    ("Kafka client", ("org.apache.kafka.",)),
    ("Parquet", ("org.apache.parquet.", "shaded.parquet.")),
    ("generated code", ("org.apache.spark.sql.catalyst.expressions.GeneratedClass",)),
    ("compression", ("org.xerial.snappy.", "com.github.luben.zstd", "net.jpountz.lz4")),
    ("columnar cache", ("org.apache.spark.sql.execution.columnar.",)),
    ("shuffle", ("org.apache.spark.shuffle.", "org.apache.spark.storage.", "org.apache.spark.io.")),
    ("Spark SQL", ("org.apache.spark.sql.",)),
    ("Spark core", ("org.apache.spark.",)),
    ("Delta", ("io.delta.", "org.apache.spark.sql.delta.")),
    ("Scala", ("scala.",)),
    ("JDK", ("java.", "jdk.", "sun.")),
)


def group_of(frame: str) -> str:
    for name, prefixes in GROUPS:
        if frame.startswith(prefixes):
            return name
    return "other"


def label(info: dict[str, Any]) -> str:
    """What a stage of the bars job does, from the RDDs it runs (every stage is called from
    the same Python line, the micro-batch function)."""
    rdds = {r["Name"] for r in info["RDD Info"]}
    scopes = {json.loads(r["Scope"]).get("name") for r in info["RDD Info"] if r.get("Scope")}
    if "DataSourceRDD" in rdds:
        return "read, parse, keys; shuffle write by event_id"
    if info["Stage Name"].startswith("save"):
        return "lake write (the tick archive's Parquet)"
    if "StateStoreRDD" in rdds:
        return "dedup index, cache, summary's map side"
    if "SortAggregate" in scopes or "HashAggregate" in scopes:
        return "summary's reduce side"
    return f"other: {info['Stage Name'][:50]}"


def stages(event_log: Path, since_ms: int) -> list[dict[str, Any]]:
    """The completed stages of an event log file submitted after ``since_ms``."""
    found = []
    for line in event_log.read_text().splitlines():
        event = json.loads(line)
        if event.get("Event") == "SparkListenerStageCompleted":
            info = event["Stage Info"]
            if info.get("Submission Time", 0) < since_ms:
                continue
            metrics = {a["Name"]: a.get("Value", 0) for a in info.get("Accumulables", [])}
            found.append(
                {
                    "site": label(info),
                    "start": info["Submission Time"],
                    "end": info["Completion Time"],
                    "tasks": info["Number of Tasks"],
                    "run_ms": int(metrics.get("internal.metrics.executorRunTime", 0)),
                    "cpu_ms": int(metrics.get("internal.metrics.executorCpuTime", 0)) // 10**6,
                    "gc_ms": int(metrics.get("internal.metrics.jvmGCTime", 0)),
                    "shuffle_mb": int(metrics.get("internal.metrics.shuffle.write.bytesWritten", 0))
                    / 2**20,
                }
            )
    return found


def print_timeline(found: list[dict[str, Any]], since_ms: int) -> None:
    """Each stage in order: when it started (from the drain's start), how long, what it did."""
    print("\nstages in order (start s, wall s, tasks, what):")
    for s in sorted(found, key=lambda s: s["start"]):
        print(
            f"  {(s['start'] - since_ms) / 1000:>7.1f} {(s['end'] - s['start']) / 1000:>6.1f} "
            f"{s['tasks']:>4}  {s['site']}"
        )


def print_stages(found: list[dict[str, Any]], wall_s: float) -> None:
    by_site: dict[str, dict[str, float]] = defaultdict(Counter)  # type: ignore[arg-type]
    for s in found:
        row = by_site[s["site"]]
        row["stages"] += 1
        row["wall_s"] += (s["end"] - s["start"]) / 1000
        for key in ("run_ms", "cpu_ms", "gc_ms", "shuffle_mb"):
            row[key] += s[key]
    print(f"\nSpark stages of the drain ({wall_s:.1f}s wall), by what they do:")
    heads = ("n", 4), ("wall s", 7), ("task s", 7), ("cpu s", 7), ("gc s", 5), ("shuf MB", 8)
    print(f"  {'what the stage does':<58} " + " ".join(f"{h:>{w}}" for h, w in heads))
    for site, row in sorted(by_site.items(), key=lambda kv: -kv[1]["wall_s"]):
        print(
            f"  {site[-58:]:<58} {row['stages']:>4.0f} {row['wall_s']:>7.1f} "
            f"{row['run_ms'] / 1000:>7.1f} {row['cpu_ms'] / 1000:>7.1f} "
            f"{row['gc_ms'] / 1000:>5.1f} {row['shuffle_mb']:>8.0f}"
        )
    # Wall time covered by at least one stage; the rest is the driver's.
    intervals = sorted((s["start"], s["end"]) for s in found)
    covered, reach = 0, 0
    for start, end in intervals:
        if end > reach:
            covered += end - max(start, reach)
            reach = end
    print(
        f"  wall time in at least one stage: {covered / 1000:.1f}s; outside any: "
        f"{wall_s - covered / 1000:.1f}s (the driver: planning, commits, the lake's log)"
    )


def jfr_events(jfr: Path, event: str) -> list[dict[str, Any]]:
    """The recording's events of one type, as `jfr print --json` gives them."""
    jfr_tool = (java_executable() or Path("java")).parent / "jfr"
    out = subprocess.run(
        [str(jfr_tool), "print", "--json", "--events", event, str(jfr)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    events: list[dict[str, Any]] = json.loads(out)["recording"]["events"]
    return events


def print_profile(jfr: Path, top: int) -> None:
    samples = jfr_events(jfr, "jdk.ExecutionSample")
    groups: Counter[str] = Counter()
    methods: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    for sample in samples:
        frames = sample["values"]["stackTrace"]["frames"] if sample["values"]["stackTrace"] else []
        if not frames:
            continue
        method = frames[0]["method"]
        name = f"{method['type']['name']}.{method['name']}".replace("/", ".")
        groups[group_of(name)] += 1
        methods[name] += 1
        threads[(sample["values"]["sampledThread"] or {}).get("javaName", "?").split(" ")[0]] += 1
    total = sum(groups.values()) or 1
    print(f"\nJVM CPU samples (JFR, top frame): {total:,}")
    for name, n in groups.most_common():
        print(f"  {name:<22} {100 * n / total:5.1f}%")
    print("  hottest methods:")
    for name, n in methods.most_common(top):
        print(f"    {100 * n / total:5.1f}%  {name[-100:]}")
    print("  by thread:")
    for name, n in threads.most_common(6):
        print(f"    {100 * n / total:5.1f}%  {name}")


def _seconds(duration: str) -> float:
    """Seconds of an ISO-8601 duration as `jfr print --json` writes it (PT0.0123S, PT1M2.5S)."""
    match = re.fullmatch(r"PT(?:([0-9]+)H)?(?:([0-9]+)M)?(?:([0-9.]+)S)?", duration)
    if match is None:
        return 0.0
    hours, minutes, seconds = (float(part or 0) for part in match.groups())
    return 3600 * hours + 60 * minutes + seconds


def print_compilations(jfr: Path) -> None:
    """The drain's JIT compilations: how many and how long, by tier (1-3: C1, 4: C2), and C2's
    by package (the first three parts of the class's name)."""
    tiers: Counter[int] = Counter()
    tier_s: Counter[int] = Counter()
    packages: Counter[str] = Counter()
    package_s: Counter[str] = Counter()
    for event in jfr_events(jfr, "jdk.Compilation"):
        values = event["values"]
        tier, seconds = int(values["compileLevel"]), _seconds(values["duration"])
        tiers[tier] += 1
        tier_s[tier] += seconds
        if tier == 4:
            name = values["method"]["type"]["name"].replace("/", ".")
            package = ".".join(name.split(".")[:3]).split("$")[0]
            packages[package] += 1
            package_s[package] += seconds
    print(f"\nJIT compilations during the drain: {sum(tiers.values()):,}")
    for tier in sorted(tiers):
        compiler = "C2" if tier == 4 else "C1"
        print(f"  tier {tier} ({compiler}) {tiers[tier]:>7,} {tier_s[tier]:>7.1f}s")
    print("  C2's, by package:")
    for package, seconds in package_s.most_common(12):
        print(f"    {package:<40} {packages[package]:>6,} {seconds:>6.1f}s")


def thread_cpu(pid: int) -> Counter[str]:
    """CPU seconds each thread of a process has used so far, summed by thread name (digits
    dropped: "Executor task launch worker for task 3.0" and "for task 4.0" are one)."""
    used: Counter[str] = Counter()
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue  # ended meanwhile
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        name = re.sub(r"[0-9]+", "#", name).strip()
        used[name] += (int(fields[11]) + int(fields[12])) / tick
    return used


def print_cpu(before: dict[str, Counter[str]], after: dict[str, Counter[str]], wall: float) -> None:
    cores = os.cpu_count()
    print(f"\nCPU used during the drain, by process and thread ({wall:.1f}s wall, {cores} cores):")
    for process in after:
        spent = after[process] - before[process]
        total = sum(spent.values())
        print(f"  {process:<28} {total:>6.1f}s ({total / wall:.2f} cores)")
        for name, seconds in spent.most_common(6):
            print(f"    {name:<26} {seconds:>6.1f}s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ticks", type=int, default=2_000_000)
    parser.add_argument("--batch", type=int, default=500_000)
    parser.add_argument("--cold", action="store_true", help="no warm-up drain first")
    parser.add_argument("--top", type=int, default=25, help="hottest methods to print")
    parser.add_argument("--keep", action="store_true", help="keep the event log and the JFR file")
    parser.add_argument("--timeline", action="store_true", help="also print each stage in order")
    parser.add_argument(
        "--es",
        action="store_true",
        help="drain the real ES ticks instead (../shared/data's 500,000, else the test data's)",
    )
    parser.add_argument(
        "--java-options",
        default="",
        help="more options for the job's JVM, e.g. -XX:TieredStopAtLevel=1 (JIT experiments)",
    )
    parser.add_argument(
        "--compilations",
        action="store_true",
        help="record every JIT compilation of the drain and print them by compiler and package",
    )
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="tickstream-profile-"))
    events = home / "events"
    events.mkdir()
    broker, base = bench_broker(home, args.batch)
    try:
        produce(base, "warmup", es(TEST_DATA))
        if args.es:
            path = SHARED if SHARED.is_file() else TEST_DATA
            count, what = produce(base, "state", es(path)), f"real ES ticks ({path.name})"
        else:
            source = SimulateSource(
                [f"S{i:03d}" for i in range(100)],
                0,
                seed=11,
                count=args.ticks,
                start_ms=SIM_START_MS,
                step_ms=STATE_SPAN_MS / args.ticks,
            )
            count, what = produce(base, "state", source), "ticks, all in open windows"
        extra = {}
        if args.java_options:
            driver = spark_conf(base)["spark.driver.extraJavaOptions"]
            extra["spark.driver.extraJavaOptions"] = f"{driver} {args.java_options}"
        spark = build_spark(
            base,
            app_name="tickstream-profile",
            extra={
                **extra,
                "spark.eventLog.enabled": "true",
                "spark.eventLog.dir": str(events),
                "spark.eventLog.compress": "false",
            },
        )

        def drain(topic: str) -> float:
            settings = base.model_copy(
                update={"kafka_topic": topic, "output_path": home / f"lake-{topic}"}
            )

            def note(report: BatchReport) -> None:
                print(
                    f"  batch {report.batch_id}: {report.messages:>9,} messages "
                    f"{report.seconds:>6.1f}s  open-window ticks after it: {report.open_rows:,}"
                )

            job = BarsJob(settings, spark, on_batch=note)
            t0 = time.perf_counter()
            query = job.start(once=True)
            query.awaitTermination()
            if query.exception() is not None:
                raise SystemExit(f"the job failed: {query.exception()}")
            seconds = time.perf_counter() - t0
            job.stop()  # lets go of the lake's lock
            return seconds

        if not args.cold:
            print("warm-up drain (120,000 ES ticks):")
            drain("warmup")
        pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()  # type: ignore[union-attr]
        jcmd = (java_executable() or Path("java")).parent / "jcmd"
        jfr = home / "drain.jfr"
        subprocess.run(
            [
                str(jcmd),
                str(pid),
                "JFR.start",
                "name=drain",
                "settings=profile",
                # By default JFR records only compilations that took 100 ms or more.
                *(["jdk.Compilation#threshold=0ms"] if args.compilations else []),
            ],
            check=True,
            capture_output=True,
        )
        pids = {
            "Spark's JVM (the job)": int(pid),
            "the broker's JVM": broker.pid or 0,
            "Python (the driver)": os.getpid(),
        }
        cpu_before = {name: thread_cpu(p) for name, p in pids.items()}
        codegen = spark.sparkContext._jvm.org.apache.spark.metrics.source.CodegenMetrics  # type: ignore[union-attr]
        compiled_before = codegen.METRIC_COMPILATION_TIME().getCount()
        since = int(time.time() * 1000)
        jvm = "cold" if args.cold else "warm"
        print(f"\ndrain of {count:,} {what} ({jvm} JVM):")
        wall = drain("state")
        cpu_after = {name: thread_cpu(p) for name, p in pids.items()}
        compiled = codegen.METRIC_COMPILATION_TIME().getCount() - compiled_before
        subprocess.run(
            [str(jcmd), str(pid), "JFR.stop", "name=drain", f"filename={jfr}"],
            check=True,
            capture_output=True,
        )
        print(f"  {wall:.1f}s, {count / wall:,.0f} ticks/s")
        print_cpu(cpu_before, cpu_after, wall)
        print(f"  classes Spark generated and compiled during the drain: {compiled:,}")
        spark.stop()
        # Spark rolls its event log into a folder of files (events_1_..., events_2_...).
        logs = sorted(events.rglob("events_*"))
        found = [s for log in logs for s in stages(log, since)]
        if args.timeline:
            print_timeline(found, since)
        print_stages(found, wall)
        print_profile(jfr, args.top)
        if args.compilations:
            print_compilations(jfr)
    finally:
        broker.stop()
        if args.keep:
            print(f"kept: {events} and {home / 'drain.jfr'}")
        else:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
