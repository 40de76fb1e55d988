"""Reading and keeping the lake: `tickstream bars`, `reconcile`, `lake convert|optimize|vacuum`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC as UTC_ZONE
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import click

from tickstream.cli.options import (
    HOME_FIELDS,
    KAFKA_FIELDS,
    LAKE_FIELDS,
    SECURITY_FIELDS,
    Group,
    settings_from,
    settings_options,
)
from tickstream.config import Settings
from tickstream.errors import TickstreamError

R = TypeVar("R")

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from tickstream.lake.layout import Lake


SESSION_NAMES = ("utc", "us-equities", "cme-futures")


@click.command("bars")
@settings_options(*LAKE_FIELDS)
@click.option(
    "--symbol",
    "symbols",
    multiple=True,
    help="Only these symbols (repeat the option, or separate them by commas).",
)
@click.option("--from", "start", help="Bars whose window starts at or after this ISO time (UTC).")
@click.option("--to", "end", help="... and before this ISO time (UTC).")
@click.option(
    "--kind",
    type=click.Choice(["time", "tick", "volume", "dollar"]),
    default="time",
    show_default=True,
    help="Time bars, or the bars cut every TICK_BARS ticks, VOLUME_BARS of volume or "
    "DOLLAR_BARS of traded value (--from/--to then select by the first tick's time).",
)
@click.option(
    "--resolution",
    help="Roll the stored bars up: 1m, 5m, 15m, 30m, 1h, 4h, 1d (a whole multiple of the "
    "stored bars; default: as stored).",
)
@click.option(
    "--session",
    type=click.Choice(list(SESSION_NAMES)),
    default="utc",
    show_default=True,
    help="What a day is (1d), and which hours intraday bars keep: UTC days; NYSE regular "
    "hours (us-equities, America/New_York); CME equity futures days from 17:00 Chicago the "
    "evening before (cme-futures). Holidays and DST from the exchange's calendar.",
)
@click.option(
    "--extended/--regular",
    default=False,
    show_default=True,
    help="Keep bars outside the session's regular hours (they count in the next session).",
)
@click.option(
    "--fill", is_flag=True, help="Also emit intervals with no trades (close carried, volume 0)."
)
@click.option("--limit", type=click.IntRange(min=1), help="At most this many bars (the first).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json", "parquet"]),
    default="table",
    show_default=True,
)
@click.option(
    "--output",
    "output_file",
    type=click.Path(dir_okay=False, writable=True),
    help="Write to this file instead of the terminal (required for parquet).",
)
def bars_cmd(
    symbols: tuple[str, ...],
    start: str | None,
    end: str | None,
    kind: str,
    resolution: str | None,
    session: str,
    extended: bool,
    fill: bool,
    limit: int | None,
    fmt: str,
    output_file: str | None,
    **options: Any,
) -> None:
    """Read closed bars from the lake (the Delta table, without Spark), as stored or rolled up
    to a coarser resolution: a table, CSV, JSON lines or Parquet.

    \b
    Examples:
      tickstream bars --symbol ES --resolution 1h
      tickstream bars --symbol ES --resolution 1d --session cme-futures
      tickstream bars --symbol AAPL,MSFT --resolution 5m --fill --format csv --output bars.csv
      tickstream bars --symbol ES --kind dollar --limit 20
    """
    from tickstream.lake import Lake, read_bars

    if fmt == "parquet" and output_file is None:
        raise TickstreamError("--format parquet writes a file", "add --output bars.parquet")
    settings = settings_from(options)
    wanted = [s.strip() for item in symbols for s in item.split(",") if s.strip()]
    root = Lake.from_settings(settings)
    if not root.holds_lake():
        raise TickstreamError(
            f"no lake at {root}: no bars table, tick archive or job checkpoint there",
            "set OUTPUT_PATH (or --output-path) to the folder or s3a:// URI the job writes",
        )
    frame = read_bars(
        root,
        symbol=wanted,
        start=_utc_naive(start, "--from"),
        end=_utc_naive(end, "--to"),
        resolution=resolution,
        session=session,
        extended=extended,
        fill=fill,
        limit=limit,
        kind=kind,
    )
    write_bars(frame, fmt, output_file)


def write_bars(frame: Any, fmt: str, output_file: str | None) -> None:
    """The bars in ``fmt``, to ``output_file`` or the terminal. Times are UTC, shown without
    a zone (``2013-09-03 00:05:00``), as in the CSV export."""
    import csv
    import json
    from pathlib import Path

    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        assert output_file is not None
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), output_file)
        click.echo(f"{len(frame)} bars written to {output_file}", err=True)
        return
    columns = list(frame.columns)
    rows = [tuple(_plain(v) for v in row) for row in frame.itertuples(index=False)]

    def write(out: Any) -> None:
        if fmt == "json":
            for row in rows:
                out.write(json.dumps(dict(zip(columns, row, strict=True)), default=str) + "\n")
        elif fmt == "csv":
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(columns)
            writer.writerows(rows)
        else:
            _print_table(columns, rows, out)

    if output_file:
        with Path(output_file).open("w", newline="", encoding="utf-8") as handle:
            write(handle)
    else:
        write(sys.stdout)
    if fmt == "table" or output_file:
        where = f" written to {output_file}" if output_file else ""
        click.echo(f"({len(rows)} bars{where})", err=True)


def _plain(value: Any) -> Any:
    """A DataFrame cell as a plain value, a time as naive UTC (as the CSV export shows it)."""
    from tickstream.lake.read import plain_value

    value = plain_value(value)
    return value.replace(tzinfo=None) if isinstance(value, datetime) else value


def _print_table(columns: list[str], rows: list[tuple[Any, ...]], out: Any = None) -> None:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4f}".rstrip("0").rstrip(".")
        return str(value) if value is not None else ""

    texts = [[cell(v) for v in row] for row in rows]
    widths = [max([len(c), *(len(t[i]) for t in texts)]) for i, c in enumerate(columns)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)), file=out)
    for t in texts:
        click.echo("  ".join(v.ljust(w) for v, w in zip(t, widths, strict=True)), file=out)


@click.command("reconcile")
@settings_options(*KAFKA_FIELDS, *SECURITY_FIELDS, *LAKE_FIELDS, "window_duration")
@click.option("--from", "start", help="Also check an event-time range from this ISO time (UTC).")
@click.option("--to", "end", help="... to this ISO time (UTC).")
def reconcile_cmd(start: str | None, end: str | None, **options: Any) -> None:
    """Account for every message: in bars, open windows, duplicates, late, rejected, heartbeats.

    Adds up Kafka's offsets, the job's counters and the lake's files (read by DuckDB), and
    says whether they agree. Exit 0 if everything adds up, 1 if not. Run it while the job
    is stopped, or expect the lag to show messages it has not read yet.
    """
    from tickstream.reconcile import reconcile

    settings = settings_from(options)
    report = reconcile(settings, _utc_naive(start, "--from"), _utc_naive(end, "--to"))
    for line in report.lines():
        click.echo(line)
    if not report.balanced:
        sys.exit(1)


def _utc_naive(value: str | None, flag: str) -> datetime | None:
    """An ISO time as a naive UTC datetime (naive input is taken as UTC)."""
    from tickstream.errors import ConfigError

    if value is None:
        return None
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"bad setting {flag}={value!r}: expected an ISO time") from None
    return stamp if stamp.tzinfo is None else stamp.astimezone(UTC_ZONE).replace(tzinfo=None)


@click.group(cls=Group)
def lake() -> None:
    """The lake's Delta tables (bars, ticks, rejects, late)."""


def _on_lake(
    settings: Settings,
    root: Lake,
    command: str,
    work: Callable[[SparkSession, Lake], R],
    *,
    job_stopped: bool = True,
) -> R:
    """Run ``work`` on the lake in a Spark session of its own, stopped after."""
    from tickstream.jvm.spark import build_spark

    if root.remote and not job_stopped:
        # Delta's log on S3 takes one writing process at a time (S3SingleDriverLogStore: S3
        # has no put-if-absent, so two drivers could each write the same commit number).
        raise TickstreamError(
            f"on S3 a Delta table takes commits from one process at a time, and the bars job "
            f"may be writing to {root}",
            f"stop the job first and run `tickstream lake {command} --job-stopped` (the running "
            "job compacts its finished dates by itself)",
        )

    spark = build_spark(settings, app_name=f"tickstream-lake-{command}")
    try:
        return work(spark, root)
    finally:
        spark.stop()


_JOB_STOPPED = click.option(
    "--job-stopped",
    is_flag=True,
    help="On an S3 lake: confirm that no bars job is writing to it (required there).",
)


@lake.command("convert")
@settings_options(*LAKE_FIELDS, *HOME_FIELDS)
def lake_convert(**options: Any) -> None:
    """Turn tables written as plain Parquet by an earlier tickstream into Delta tables in place."""
    from tickstream.bars.writer import convert_to_delta, parquet_tables
    from tickstream.lake.layout import Lake

    settings = settings_from(options)
    root = Lake.from_settings(settings)
    if not parquet_tables(root):
        click.echo(f"nothing to convert in {root}: its tables are Delta tables already")
        return
    converted = _on_lake(settings, root, "convert", convert_to_delta)
    click.echo(f"converted to Delta tables in {root}: {', '.join(converted)}")


@lake.command("optimize")
@settings_options(*LAKE_FIELDS, "spark_master", *HOME_FIELDS)
@click.option(
    "--zorder/--no-zorder",
    default=False,
    show_default=True,
    help="Also cluster each table's rows by symbol and time (rewrites every file).",
)
@_JOB_STOPPED
def lake_optimize(zorder: bool, job_stopped: bool, **options: Any) -> None:
    """Compact the small files of every table's date partitions into a few large ones.

    Safe while the job runs on a local or mounted lake: the compaction commits no data change,
    readers see the same rows before and after, and the job's appends never conflict with it.
    On S3, Delta takes commits from one process at a time: stop the job and pass --job-stopped.
    The job also compacts its finished date partitions by itself (LAKE_COMPACTION).
    """
    from tickstream.bars.maintenance import optimize
    from tickstream.lake.layout import Lake

    settings = settings_from(options)
    root = Lake.from_settings(settings)
    done = _on_lake(
        settings, root, "optimize", partial(optimize, zorder=zorder), job_stopped=job_stopped
    )
    if not done:
        click.echo(f"nothing to compact in {root}: no table has a commit yet")
    for c in done:
        click.echo(
            f"{c.table}: {c.files_removed} files compacted into {c.files_added} "
            f"in {c.partitions} date partition{'s' if c.partitions != 1 else ''}"
        )


@lake.command("vacuum")
@settings_options(*LAKE_FIELDS, "lake_retention", "spark_master", *HOME_FIELDS)
@_JOB_STOPPED
def lake_vacuum(job_stopped: bool, **options: Any) -> None:
    """Delete data files no table version within LAKE_RETENTION still uses.

    Files replaced by a compaction, and those of micro-batches that crashed before their
    commit, stay until then: a reader that started earlier may still be reading them, and
    time travel to a version within the retention works. Safe while the job runs on a local or
    mounted lake; on S3, stop the job and pass --job-stopped.
    """
    from tickstream.bars.maintenance import vacuum
    from tickstream.lake.layout import Lake

    settings = settings_from(options)
    root = Lake.from_settings(settings)
    hours = settings.lake_retention_hours
    done = _on_lake(
        settings, root, "vacuum", partial(vacuum, retention_hours=hours), job_stopped=job_stopped
    )
    if not done:
        click.echo(f"nothing to vacuum in {root}: no table has a commit yet")
    for v in done:
        unused = f"unused for {settings.lake_retention}"
        click.echo(f"{v.table}: {v.files_deleted} files {unused} deleted")
