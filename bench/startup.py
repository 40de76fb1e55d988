"""Benchmark: how long `tickstream stream --once` takes on an empty topic, the whole command.

What a user waits for before the job reads anything: Python's imports, Spark's JVM and
session, the lake's preparation, the query's start and its first (empty) micro-batch, and the
stop. Measured on a local broker (started first, not counted), cold every time (a new process
and JVM per command), side by side in one run, in a rotating order:

- ``first start``: a new lake (no checkpoint yet);
- ``restart``: the same lake again (the checkpoint exists; an empty topic runs no batch);

each with the driver's class archive (``tickstream jars archive``, made by scripts/bootstrap.sh;
docs/engine.md) and without it (the same jar cache without the archive's folder).

    .venv/bin/python bench/startup.py            # 3 rounds
    .venv/bin/python bench/startup.py --rounds 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from tickstream.config import load_settings
from tickstream.jvm.cds import FOLDER
from tickstream.jvm.spark import class_archive
from tickstream.kafka.admin import TopicSpec, ensure_topics
from tickstream.kafka.local import LocalKafka, free_port

REPO = Path(__file__).resolve().parents[1]
JARS = REPO / ".tickstream" / "jars"
TICKSTREAM = REPO / ".venv" / "bin" / "tickstream"


def without_archive(home: Path) -> Path:
    """A jar cache of links to the repository's, without the class archive."""
    jars = home / "jars-no-archive"
    jars.mkdir()
    for folder in JARS.iterdir():
        if folder.name != FOLDER:
            (jars / folder.name).symlink_to(folder.resolve())
    return jars


def run_once(env: dict[str, str], lake: Path) -> float:
    started = time.monotonic()
    result = subprocess.run(
        [str(TICKSTREAM), "stream", "--once", "--output-path", str(lake)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"tickstream stream --once failed: {result.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="tickstream-bench-startup-"))
    broker = LocalKafka(home / "broker", port=free_port(), jars_dir=JARS, heap="512m")
    bootstrap = broker.start().bootstrap
    try:
        ensure_topics(bootstrap, [TopicSpec(t, 3) for t in ("empty", "bars", "bars-live")])
        settings = load_settings({"tickstream_jars_dir": JARS})
        archive = class_archive(settings)
        if not archive.is_file():
            raise SystemExit(f"no class archive at {archive}: run `tickstream jars archive`")
        base = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "KAFKA_TOPIC": "empty",
            "TICKSTREAM_HOME": str(home / "home"),
        }
        designs = {
            "class archive": {**base, "TICKSTREAM_JARS_DIR": str(JARS)},
            "no archive": {**base, "TICKSTREAM_JARS_DIR": str(without_archive(home))},
        }
        times: dict[tuple[str, str], list[float]] = {}
        names = list(designs)
        for round_ in range(args.rounds):
            for name in names[round_ % 2 :] + names[: round_ % 2]:
                lake = home / f"lake-{round_}-{name.replace(' ', '-')}"
                first = run_once(designs[name], lake)
                again = run_once(designs[name], lake)
                times.setdefault((name, "first start"), []).append(first)
                times.setdefault((name, "restart"), []).append(again)
                print(f"round {round_ + 1} {name:14} first {first:5.1f}s  restart {again:5.1f}s")
        print(
            f"\n`tickstream stream --once` on an empty topic, whole command, cold JVM, "
            f"{args.rounds} rounds (median, min-max):"
        )
        for kind in ("first start", "restart"):
            with_ = statistics.median(times[("class archive", kind)])
            without = statistics.median(times[("no archive", kind)])
            for name in names:
                ts = times[(name, kind)]
                print(
                    f"  {kind:12} {name:14} {statistics.median(ts):5.1f}s "
                    f"({min(ts):.1f}-{max(ts):.1f})"
                )
            print(f"  {kind:12} archive / none  {with_ / without:.2f}x")
    finally:
        broker.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
