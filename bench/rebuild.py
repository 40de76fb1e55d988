"""Benchmark: `tickstream lake rebuild` beside DuckDB, the same bars from the same archive.

Each input goes through the real job first (`tickstream stream --once` on a local broker, 3
partitions, 1-minute bars, 2-minute watermark), which leaves a lake with its tick archive and
its last windows open (DuckDB's query leaves out the windows the rebuild reports open). Then,
side by side in one run, alternating over ``--rounds``, on that archive:

- ``rebuild`` (cold): `tickstream lake rebuild --window-duration W --into X`, the whole command
  as a user runs it (a new process, a new Spark JVM on local[2]);
- ``rebuild`` (warm): the same rebuild (``bars/rebuild.py``) in one Spark session started before
  the timing (what a long-lived driver, or a notebook, pays);
- ``duckdb`` (cold / warm): the same bars in DuckDB SQL over the archive read through its Delta
  log with ``deltalake``, written as a Delta table with ``deltalake``; cold is a new Python
  process, warm is in this one;
- ``tick bars`` (cold): `tickstream lake rebuild --kind tick --threshold 1000 --into X`.

A rebuild is a batch: no open-window state; the archive's size and files are printed. DuckDB's
bars are checked equal to the rebuild's (VWAP and average price within 1e-12: summation order).

    .venv/bin/python bench/rebuild.py                   # ES 500k + 1,000,000 simulated, 2 rounds
    .venv/bin/python bench/rebuild.py --sim-ticks 0     # ES only
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
from deltalake import DeltaTable, write_deltalake

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stream_throughput import (
    REPO,
    SHARED,
    SIM_START_MS,
    TEST_DATA,
    bench_broker,
    command,
    es,
    produce,
)

from tickstream.bars import rebuild as R
from tickstream.config import settings_env
from tickstream.jvm.spark import build_spark
from tickstream.lake.layout import Lake
from tickstream.sources.simulate import SimulateSource

TICKSTREAM = str(REPO / ".venv" / "bin" / "tickstream")

# The same bars as the job's, in DuckDB: the archive holds each accepted tick once.
DUCKDB_BARS = """
SELECT symbol,
       make_timestamp(w * 1000) AS window_start,
       make_timestamp((w + {window_ms}) * 1000) AS window_end,
       arg_min(price, (ts_epoch_ms, seq, event_id)) AS open,
       max(price) AS high, min(price) AS low,
       arg_max(price, (ts_epoch_ms, seq, event_id)) AS close,
       sum(volume) AS volume,
       CASE WHEN sum(volume) > 0 THEN sum(price * volume) / sum(volume) END AS vwap,
       count(*) AS trade_count,
       sum(price) / count(*) AS price_avg,
       (arg_max(price, (ts_epoch_ms, seq, event_id)) - arg_min(price, (ts_epoch_ms, seq, event_id)))
         / arg_min(price, (ts_epoch_ms, seq, event_id)) * 100.0 AS pct_change,
       strftime(make_timestamp(w * 1000), '%Y-%m-%d') AS date
FROM (SELECT *, ts_epoch_ms - ts_epoch_ms % {window_ms} AS w FROM ticks)
GROUP BY symbol, w
HAVING w + {window_ms} <= {complete_ms}
ORDER BY window_start, symbol
"""

DUCKDB_SCRIPT = """
import sys, duckdb
from deltalake import DeltaTable, write_deltalake
lake, out, sql = sys.argv[1], sys.argv[2], sys.stdin.read()
con = duckdb.connect()
con.execute("SET TimeZone='UTC'")
con.register("ticks", DeltaTable(lake + "/ticks").to_pyarrow_dataset())
write_deltalake(out + "/bars", con.sql(sql).to_arrow_table(), partition_by=["date"])
"""


def duckdb_bars(lake: Path, out: Path, sql: str) -> None:
    """DuckDB in this process: the archive through its Delta log, the bars to a Delta table."""
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    con.register("ticks", DeltaTable(str(lake / "ticks")).to_pyarrow_dataset())
    write_deltalake(str(out / "bars"), con.sql(sql).to_arrow_table(), partition_by=["date"])


def same_bars(a: Path, b: Path) -> bool:
    def rows(path: Path) -> list[tuple[object, ...]]:
        table = DeltaTable(str(path / "bars")).to_pyarrow_table()
        names = ("symbol", "window_start", "open", "high", "low", "close", "volume", "vwap")
        found = sorted(zip(*(table.column(n).to_pylist() for n in names), strict=True))
        return [(r[0], r[1].replace(tzinfo=None), *r[2:]) for r in found]

    x, y = rows(a), rows(b)
    return len(x) == len(y) and all(
        p[:7] == q[:7] and (p[7] == q[7] or math.isclose(p[7], q[7], rel_tol=1e-12))
        for p, q in zip(x, y, strict=True)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--es", type=Path, default=SHARED if SHARED.exists() else TEST_DATA)
    parser.add_argument("--sim-ticks", type=int, default=1_000_000)
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--window", default="30 seconds")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--home",
        type=Path,
        help="Keep the lakes here, and reuse the ones found (default: a temp dir)",
    )
    args = parser.parse_args()
    window_ms = _ms(args.window)

    home = args.home or Path(tempfile.mkdtemp(prefix="tickstream-bench-rebuild-"))
    home.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(home / "broker", ignore_errors=True)
    broker, base = bench_broker(home, 100_000)
    try:
        inputs = {f"ES real ({args.es.name})": ("es", es(args.es))}
        if args.sim_ticks:
            symbols = [f"S{i:03d}" for i in range(args.symbols)]
            source = SimulateSource(
                symbols, 0, seed=7, count=args.sim_ticks, start_ms=SIM_START_MS, step_ms=20
            )
            inputs[f"simulated, {args.symbols} symbols, one tick per 20 ms"] = ("sim", source)
        lakes = {}
        for name, (topic, source) in inputs.items():
            lake = home / f"lake-{topic}"
            settings = base.model_copy(update={"kafka_topic": topic, "output_path": lake})
            env = {**os.environ, **settings_env(settings)}
            env.pop("SPARK_MASTER", None)
            env.pop("MAX_OFFSETS_PER_TRIGGER", None)
            t0 = time.perf_counter()
            reused = (lake / "ticks").is_dir()
            if not reused:
                produce(base, topic, source)
                command([TICKSTREAM, "stream", "--once"], env=env)
            files = len(DeltaTable(str(lake / "ticks")).file_uris())
            ticks = DeltaTable(str(lake / "ticks")).to_pyarrow_dataset().count_rows()
            print(
                f"{name}: {ticks:,} ticks in the archive ({files} files), "
                + (
                    f"the lake reused from {lake}"
                    if reused
                    else f"the job took {time.perf_counter() - t0:.1f}s, cold"
                )
            )
            lakes[name] = (lake, env, ticks)

        spark = build_spark(base, app_name="tickstream-bench-rebuild")
        spark.range(1).count()
        print(f"windows of {args.window}; Spark local[2]; best of {args.rounds} rounds")
        results: dict[tuple[str, str], list[float]] = {}
        for name, (lake, env, ticks) in lakes.items():
            built = R.plan(Lake(lake), R.Request(window_ms=window_ms), 60_000)
            sql = DUCKDB_BARS.format(window_ms=window_ms, complete_ms=built.complete_ms)
            runs = {
                "rebuild, cold command": lambda lake=lake, env=env, out=None: command(
                    [
                        TICKSTREAM,
                        "lake",
                        "rebuild",
                        "--window-duration",
                        args.window,
                        "--into",
                        str(out),
                    ],
                    env=env,
                ),
                "rebuild, warm JVM": lambda lake=lake, built=built, out=None: R.run(
                    spark, Lake(lake), built, into=Lake(out)
                ),
                "duckdb, cold command": lambda lake=lake, sql=sql, out=None: subprocess.run(
                    [sys.executable, "-c", DUCKDB_SCRIPT, str(lake), str(out)],
                    input=sql,
                    text=True,
                    check=True,
                ),
                "duckdb, warm process": lambda lake=lake, sql=sql, out=None: duckdb_bars(
                    lake, out, sql
                ),
                "tick bars (1000), cold command": lambda lake=lake, env=env, out=None: command(
                    [
                        TICKSTREAM,
                        "lake",
                        "rebuild",
                        "--kind",
                        "tick",
                        "--threshold",
                        "1000",
                        "--into",
                        str(out),
                    ],
                    env=env,
                ),
            }
            outs = {}
            for round_ in range(args.rounds):
                order = list(runs)
                order = order[round_ % len(order) :] + order[: round_ % len(order)]
                for design in order:
                    out = home / f"out-{len(results)}-{design[:6]}-{round_}"
                    shutil.rmtree(out, ignore_errors=True)
                    t0 = time.perf_counter()
                    runs[design](out=out)
                    results.setdefault((name, design), []).append(time.perf_counter() - t0)
                    outs[design] = out
            same = same_bars(outs["rebuild, cold command"], outs["duckdb, cold command"])
            print(f"\n{name}: {ticks:,} ticks; DuckDB's bars equal the rebuild's: {same}")
            base_rate = ticks / min(results[(name, "duckdb, cold command")])
            for design in runs:
                best = min(results[(name, design)])
                rate = ticks / best
                print(
                    f"  {design:32s} {best:7.2f}s  {rate:12,.0f} ticks/s  "
                    f"{rate / base_rate:5.2f}x duckdb cold"
                )
        spark.stop()
    finally:
        broker.stop()
        for out in home.glob("out-*"):
            shutil.rmtree(out, ignore_errors=True)
        if args.home is None:
            shutil.rmtree(home, ignore_errors=True)


def _ms(text: str) -> int:
    from tickstream.config.forms import parse_duration

    count, unit = parse_duration(text)
    return round(count * unit * 1000)


if __name__ == "__main__":
    main()
