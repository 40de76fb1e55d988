"""Benchmark: replay real ticks at max speed into a local broker with acks=all.

Prints ticks/s for the whole path (read file, convert, encode, produce, flush: every
tick acknowledged by the broker), and for the stages without Kafka, to show where the
time goes. The whole path runs with the durable spool off and on, side by side in the
same run (alternating, so the machine's load falls on both), and prints their ratio.
Starts its own broker on a free port unless --bootstrap is given.

    .venv/bin/python bench/produce_throughput.py [--file F] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from tickstream.config import load_settings
from tickstream.kafka.admin import TopicSpec, ensure_topics
from tickstream.kafka.local import LocalKafka, free_port
from tickstream.kafka.producer import TickProducer
from tickstream.kafka.spool import Spool
from tickstream.sources.replay import ReplaySource

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "es_futures_ticks_2013-09.csv.gz"
FALLBACK = REPO / "tests" / "data" / "es_ticks_2013-09_120k.csv.gz"


def replay(path: Path) -> ReplaySource:
    return ReplaySource(path, symbol="ES", tz="America/Chicago", speed=None)


def stage_read(path: Path) -> tuple[int, float]:
    t0 = time.perf_counter()
    n = sum(len(c) for c in replay(path).chunks())
    return n, time.perf_counter() - t0


def stage_encode(path: Path) -> tuple[int, float]:
    t0 = time.perf_counter()
    n = sum(len(c.encode()) for c in replay(path).chunks())
    return n, time.perf_counter() - t0


def full_path(
    path: Path, bootstrap: str, compression: str, spool_dir: Path | None = None
) -> tuple[int, float]:
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    ensure_topics(bootstrap, [TopicSpec(topic, 3)])
    settings = load_settings(
        {
            "kafka_bootstrap_servers": bootstrap,
            "kafka_topic": topic,
            "kafka_compression": compression,
            "heartbeat_interval_sec": 1.0,
        }
    )
    spool = None
    if spool_dir is not None:
        spool = Spool(spool_dir / topic, max_bytes=8 << 30, fsync_interval_s=1.0).open()
    producer = TickProducer(
        settings, stop=threading.Event(), notify=lambda m: print(m, file=sys.stderr), spool=spool
    )
    producer.connect(30)
    try:
        stats = producer.run(replay(path))
    finally:
        if spool is not None:
            spool.close()
    if not stats.ok or stats.acknowledged != stats.sent or stats.spool_pending:
        raise SystemExit(f"delivery failed: {stats.summary()} {stats.errors}")
    return stats.acknowledged, stats.elapsed_s


def report(name: str, n: int, rates: list[float], runs: int) -> None:
    print(
        f"{name:>28}: {n:,} ticks  median {statistics.median(rates):>10,.0f} ticks/s"
        f"  best {max(rates):>10,.0f} ticks/s  ({runs} runs)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--file", type=Path, default=SHARED if SHARED.is_file() else FALLBACK)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--bootstrap", help="an existing broker; default: start a local one")
    parser.add_argument("--compression", default="lz4")
    args = parser.parse_args()

    broker = None
    bootstrap = args.bootstrap
    home = Path(tempfile.mkdtemp(prefix="tickstream-bench-"))
    if bootstrap is None:
        broker = LocalKafka(home, port=free_port(), jars_dir=REPO / ".tickstream" / "jars")
        bootstrap = broker.start().bootstrap
    try:
        print(f"file: {args.file} | broker: {bootstrap} (acks=all, idempotent, {args.compression})")
        for name, stage in (
            ("read+convert", lambda: stage_read(args.file)),
            ("read+convert+encode", lambda: stage_encode(args.file)),
        ):
            rates = []
            for _ in range(args.runs):
                n, seconds = stage()
                rates.append(n / seconds)
            report(name, n, rates, args.runs)
        # The whole path without and with the spool, alternating (the first of a pair warms
        # the broker for the second, so the order flips each run).
        spool_dir = home / "spool"
        designs = {
            "full path to Kafka, acked": None,
            "the same with the spool": spool_dir,
        }
        by_design: dict[str, list[float]] = {name: [] for name in designs}
        names = list(designs)
        for run in range(args.runs):
            for name in names if run % 2 == 0 else reversed(names):
                n, seconds = full_path(args.file, bootstrap, args.compression, designs[name])
                by_design[name].append(n / seconds)
        for name in names:
            report(name, n, by_design[name], args.runs)
        off, on = (statistics.median(by_design[name]) for name in names)
        print(f"{'spool on / off':>28}: {on / off:.2f}x (medians)")
    finally:
        if broker is not None:
            broker.stop()


if __name__ == "__main__":
    main()
