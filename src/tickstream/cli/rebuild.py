"""`tickstream lake rebuild`: bars rebuilt from the lake's tick archive (bars/rebuild.py)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import click

from tickstream.cli.options import HOME_FIELDS, LAKE_FIELDS, settings_from, settings_options
from tickstream.errors import ConfigError, TickstreamError

if TYPE_CHECKING:
    from tickstream.bars.rebuild import Outcome, Plan, Request
    from tickstream.config import Settings
    from tickstream.lake.layout import Lake


@click.command("rebuild")
@settings_options(*LAKE_FIELDS, "spark_master", *HOME_FIELDS)
@click.option(
    "--window-duration",
    "window",
    help="The time bars' window, a whole number of milliseconds or more: '30 seconds', "
    "'500 ms', '5 minutes' [default: the job's WINDOW_DURATION].",
)
@click.option(
    "--kind",
    type=click.Choice(["time", "tick", "volume", "dollar"]),
    default="time",
    show_default=True,
    help="Time bars, or bars cut every N ticks, N of volume or N of traded value.",
)
@click.option(
    "--threshold",
    help="The tick, volume or dollar bars' threshold: N, or SYMBOL=N,...,*=N "
    "[default: the TICK_BARS, VOLUME_BARS or DOLLAR_BARS setting].",
)
@click.option(
    "--symbol",
    "symbols",
    multiple=True,
    help="Only these symbols (repeat the option, or separate them by commas).",
)
@click.option(
    "--from", "start", help="From this ISO time (UTC): time bars whose window starts then or later."
)
@click.option("--to", "end", help="... to this ISO time (UTC), excluded.")
@click.option(
    "--into",
    "into",
    help="Write the bars into a new lake at this path (local or s3a://).",
)
@click.option(
    "--replace",
    is_flag=True,
    help="Rewrite the range of this lake's own time bars, in one Delta commit.",
)
@click.option(
    "--job-stopped",
    is_flag=True,
    help="With --replace on an S3 lake: confirm that no bars job is writing to it.",
)
def lake_rebuild(
    window: str | None,
    kind: str,
    threshold: str | None,
    symbols: tuple[str, ...],
    start: str | None,
    end: str | None,
    into: str | None,
    replace: bool,
    job_stopped: bool,
    **options: Any,
) -> None:
    """Rebuild bars from the lake's tick archive, with the job's own bar logic: any window,
    any kind, any range.

    A rebuild with the job's window and thresholds gives the job's bars exactly. Windows the
    job has not closed yet (its watermark) are reported as open, not written.

    \b
    Examples:
      tickstream lake rebuild --window-duration '30 seconds' --into data/bars-30s
      tickstream lake rebuild --kind dollar --threshold ES=2500000 --into data/dollar
      tickstream lake rebuild --from 2013-09-02 --to 2013-09-03 --replace
    """
    began = time.monotonic()
    settings = settings_from(options)
    request = _request(settings, kind, window, threshold, symbols, start, end)
    if (into is None) == (not replace):
        raise ConfigError(
            "say where the rebuilt bars go",
            "--into PATH for a new lake, or --replace for this lake's own bars",
        )
    from tickstream.bars.rebuild import check_target, plan
    from tickstream.lake.layout import Lake, ObjectStore
    from tickstream.lake.lock import LakeLock

    lake = Lake.from_settings(settings)
    target = Lake(into, ObjectStore.from_settings(settings)) if into else None
    check_target(lake, request, target, None)
    built = plan(lake, request, settings.window_ms)
    check_target(lake, request, target, built)
    lock = LakeLock(lake)
    if replace:
        if lake.remote and not job_stopped:
            raise TickstreamError(
                f"on S3 nothing stops the bars job from committing to {lake} during the "
                "replacement",
                "stop the job first and run `tickstream lake rebuild ... --replace --job-stopped`",
            )
        lock.acquire()  # refuses, in one line, while a job runs on this lake
    try:
        outcome = _run(settings, lake, built, target)
    finally:
        lock.release()
    seconds = time.monotonic() - began
    for line in summary(built, outcome, target or lake, seconds, replacing=replace):
        click.echo(line)


def _request(
    settings: Settings,
    kind: str,
    window: str | None,
    threshold: str | None,
    symbols: tuple[str, ...],
    start: str | None,
    end: str | None,
) -> Request:
    from tickstream.bars.rebuild import Request
    from tickstream.config.forms import THRESHOLDS_FORM, Thresholds, parse_duration
    from tickstream.lake.read import parse_instant

    text = window or settings.window_duration
    try:
        count, unit = parse_duration(text)
    except ValueError as exc:
        raise ConfigError(
            f"bad --window-duration {text!r}: a window is a whole number of milliseconds; {exc}"
        ) from None
    window_ms = round(count * unit * 1000)
    found = None
    if kind != "time":
        try:
            found = Thresholds.parse(threshold) if threshold else settings.thresholds(kind)
        except ValueError:
            raise ConfigError(
                f"bad --threshold {threshold!r}", f"expected {THRESHOLDS_FORM}"
            ) from None
        if found is None:
            raise ConfigError(
                f"{kind} bars need a threshold",
                f"pass --threshold (e.g. 1000), or set {kind.upper()}_BARS",
            )
    elif threshold is not None:
        raise ConfigError("--threshold is for tick, volume and dollar bars", "leave it out")
    lo, hi = parse_instant(start, "--from"), parse_instant(end, "--to")
    if lo is not None and hi is not None and hi <= lo:
        raise ConfigError(f"--to {end} is not after --from {start}")
    wanted = tuple(s.strip().upper() for item in symbols for s in item.split(",") if s.strip())
    return Request(
        kind=kind,
        window_ms=window_ms,
        thresholds=found,
        symbols=wanted,
        start_ms=None if lo is None else int(lo.timestamp() * 1000),
        end_ms=None if hi is None else int(hi.timestamp() * 1000),
    )


def _run(settings: Settings, lake: Lake, built: Plan, into: Lake | None) -> Outcome:
    from tickstream.bars.rebuild import run
    from tickstream.cli.progress import ProgressLine

    progress = ProgressLine("rebuilding: ticks", built.ticks)
    spark = None
    try:
        if built.request.kind == "time":
            from tickstream.jvm.spark import build_spark

            spark = build_spark(
                settings, app_name="tickstream-lake-rebuild", object_store=lake.remote
            )
        return run(spark, lake, built, into=into, progress=progress.update)
    finally:
        progress.close()
        if spark is not None:
            spark.stop()


def summary(
    built: Plan, outcome: Outcome, target: Lake, seconds: float, *, replacing: bool
) -> list[str]:
    """What the rebuild did, in a line, and what it left open."""
    from tickstream.bars.rebuild import iso
    from tickstream.lake.resample import duration_text

    request = built.request
    what = (
        f"time bars ({duration_text(request.window_ms)})"
        if request.kind == "time"
        else f"{request.kind} bars ({request.thresholds.text() if request.thresholds else ''})"
    )
    rate = outcome.ticks / seconds if seconds > 0 else 0.0
    lines = [
        f"rebuilt {outcome.bars:,} {what} from {outcome.ticks:,} ticks in {seconds:.1f} s "
        f"({rate:,.0f} ticks/s, whole command): {target.url(request.table)} version "
        f"{outcome.version}"
        + (f", in place of {outcome.replaced:,} stored bars" if replacing else "")
    ]
    if outcome.open_bars or outcome.open_ticks:
        lines.append(
            f"left open: {_count(outcome.open_bars, 'bar')} ({_count(outcome.open_ticks, 'tick')}) "
            "at or after "
            f"{iso(built.complete_ms or 0)}, which the job's watermark has not closed: not "
            "written"
        )
    if built.complete_ms is None:
        lines.append("note: no job state in this lake: the archive was taken as complete")
    if replacing:
        lines.append("note: bars_csv/ keeps the CSV export as the job wrote it")
    return lines


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")
