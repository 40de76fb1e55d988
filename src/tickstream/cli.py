"""The ``tickstream`` command. It only wires settings to the modules that do the work."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC as UTC_ZONE
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, TypeVar, get_args, get_origin

import click
from pydantic import SecretStr

from tickstream import __version__
from tickstream.config import Settings, env_name, flag_name, load_settings
from tickstream.errors import TickstreamError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from tickstream.lake.layout import Lake

F = TypeVar("F", bound=Callable[..., Any])
R = TypeVar("R")

KAFKA_FIELDS = ("kafka_bootstrap_servers", "kafka_topic")
SECURITY_FIELDS = (
    "kafka_security_protocol",
    "kafka_sasl_mechanism",
    "kafka_sasl_username",
    "kafka_sasl_password",
    "kafka_ssl_ca_location",
)
HOME_FIELDS = ("tickstream_home", "tickstream_jars_dir")
# Where the lake is: OUTPUT_PATH, and an object store's endpoint and credentials.
LAKE_FIELDS = (
    "output_path",
    "s3_endpoint",
    "s3_region",
    "s3_access_key_id",
    "s3_secret_access_key",
    "s3_path_style_access",
)


def settings_options(*fields: str) -> Callable[[F], F]:
    """Add one ``--flag`` per settings field; each says its environment variable and default."""

    def decorate(func: F) -> F:
        for field in reversed(fields):
            info = Settings.model_fields[field]
            default = info.default
            shown = ",".join(default) if isinstance(default, tuple) else default
            if shown is None:
                shown = "unset"
            help_text = f"{info.description} [env: {env_name(field)}; default: {shown}]"
            flag = flag_name(field)
            choices = get_args(info.annotation) if get_origin(info.annotation) is Literal else ()
            if choices:
                help_text = help_text.replace(" [env:", f" One of {'|'.join(choices)}. [env:", 1)
            if info.annotation is bool:
                flag = f"{flag}/--no-{flag.removeprefix('--')}"
            func = click.option(flag, field, default=None, help=help_text)(func)
        return func

    return decorate


def settings_from(options: dict[str, Any]) -> Settings:
    return load_settings({k: v for k, v in options.items() if k in Settings.model_fields})


class _Group(click.Group):
    """Turns errors a user can fix into one line on stderr and their exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TickstreamError as exc:
            click.echo(f"tickstream: error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("tickstream: interrupted", err=True)
            ctx.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tickstream")
def cli() -> None:
    """tickstream: stock ticks into Kafka, event-time OHLCV bars with Spark, a Delta/CSV lake.

    Every setting is an environment variable (WATERMARK) and a flag (--watermark);
    a flag wins. Run `tickstream COMMAND --help` for a command's settings.
    """


# --- tickstream kafka ------------------------------------------------------------------------


@cli.group(cls=_Group)
def kafka() -> None:
    """Run a local single-node Kafka broker (KRaft) on 127.0.0.1, and manage topics."""


def _port_option(func: F) -> F:
    return click.option(
        "--port",
        type=click.IntRange(1, 65535),
        default=9092,
        show_default=True,
        envvar="TICKSTREAM_KAFKA_PORT",
        help="Port of the local broker's client listener [env: TICKSTREAM_KAFKA_PORT].",
    )(func)


@kafka.command("start")
@_port_option
@click.option(
    "--timeout", type=float, default=90.0, show_default=True, help="Seconds to wait for readiness."
)
@settings_options(*HOME_FIELDS, "kafka_topic")
def kafka_start(port: int, timeout: float, **options: Any) -> None:
    """Start the local broker in the background (or find it running) and create the topics.

    Reports ready only once the broker answers an admin request, then prints its
    bootstrap address. Running it again is harmless.
    """
    from tickstream.kafka_local import LocalKafka

    settings = settings_from(options)
    broker = LocalKafka(settings.tickstream_home, port=port, jars_dir=settings.jars_dir)
    result = broker.start(timeout=timeout)
    verb = "already running" if result.already_running else "started"
    info = result.info
    click.echo(f"kafka {verb}: bootstrap {info.bootstrap} (pid {info.pid}, data {info.data_dir})")
    _create_topics(result.bootstrap, settings)
    click.echo(result.bootstrap)


def _create_topics(bootstrap: str, settings: Settings, extra: dict[str, str] | None = None) -> None:
    from tickstream.kafka_admin import ensure_topics, pipeline_topics

    created, warnings = ensure_topics(bootstrap, pipeline_topics(settings), extra=extra)
    for name in created:
        click.echo(f"created topic {name}")
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)


@kafka.command("stop")
@click.option(
    "--timeout", type=float, default=60.0, show_default=True, help="Seconds to wait before SIGKILL."
)
@settings_options(*HOME_FIELDS)
def kafka_stop(timeout: float, **options: Any) -> None:
    """Stop the local broker: SIGTERM, wait for a controlled shutdown, then report."""
    from tickstream.kafka_local import LocalKafka

    settings = settings_from(options)
    info, killed = LocalKafka(settings.tickstream_home).stop(timeout=timeout)
    if info is None:
        click.echo("kafka is not running")
    elif killed:
        click.echo(f"kafka (pid {info.pid}) did not stop within {timeout:g}s and was killed")
    else:
        click.echo(f"kafka stopped (pid {info.pid}, was {info.bootstrap})")


@kafka.command("status")
@settings_options(*HOME_FIELDS)
def kafka_status(**options: Any) -> None:
    """Say whether the local broker runs, where, and where its data lives. Exit 3 if stopped."""
    from tickstream.kafka_admin import is_ready
    from tickstream.kafka_local import LocalKafka

    settings = settings_from(options)
    broker = LocalKafka(settings.tickstream_home)
    info = broker.status()
    if info is None:
        click.echo(f"kafka is not running (data dir {broker.data_dir})")
        sys.exit(3)
    answering = "answering" if is_ready(info.bootstrap) else "NOT answering admin requests"
    click.echo(
        f"kafka is running: bootstrap {info.bootstrap}, pid {info.pid}, {answering}\n"
        f"  data dir: {info.data_dir}\n  log:      {info.log_file}"
    )


@kafka.command("create-topics")
@settings_options(*KAFKA_FIELDS, *SECURITY_FIELDS)
def kafka_create_topics(**options: Any) -> None:
    """Create the pipeline's topics on KAFKA_BOOTSTRAP_SERVERS if they are missing."""
    from tickstream.kafka_admin import client_security

    settings = settings_from(options)
    _create_topics(settings.kafka_bootstrap_servers, settings, client_security(settings))
    click.echo("topics ready")


# --- tickstream produce ----------------------------------------------------------------------

PRODUCER_FIELDS = (
    *KAFKA_FIELDS,
    *SECURITY_FIELDS,
    "producer_source",
    "tickers",
    "msgs_per_sec",
    "sim_seed",
    "replay_file",
    "replay_symbol",
    "replay_tz",
    "replay_speed",
    "replay_rebase",
    "replay_on_bad_row",
    "yfinance_mode",
    "yfinance_stream_url",
    "yfinance_poll_sec",
    "simulate_if_no_yfinance",
    "heartbeat_interval_sec",
    "send_timeout_sec",
    "kafka_compression",
    "producer_spool",
    "spool_dir",
    "spool_max_bytes",
    "spool_fsync_interval_sec",
    "tickstream_home",
)


def _parse_start(value: str | None) -> int | None:
    from tickstream.config import parse_instant_ms
    from tickstream.errors import ConfigError

    try:
        return None if value is None else parse_instant_ms(value)
    except ValueError as exc:
        raise ConfigError(f"bad setting --start={value!r}: {exc}") from None


@cli.command("produce")
@settings_options(*PRODUCER_FIELDS)
@click.option("--count", type=click.IntRange(min=1), help="Stop after this many ticks.")
@click.option(
    "--duration", type=click.FloatRange(min=0, min_open=True), help="Stop after this many seconds."
)
@click.option(
    "--start",
    help="simulate: a synthetic event-time clock from this ISO time (reproducible timestamps); "
    "default: the wall clock.",
)
@click.option(
    "--connect-timeout",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds to wait for the broker and the topic at start-up.",
)
@click.option(
    "--status-every",
    type=click.FloatRange(min=0, min_open=True),
    help="Print a status line every this many seconds (instead of a live line on a terminal).",
)
@click.option(
    "--status",
    "show_status",
    is_flag=True,
    help="Say what the spool holds (ticks Kafka has not acknowledged) and exit.",
)
def produce(
    count: int | None,
    duration: float | None,
    start: str | None,
    connect_timeout: float,
    status_every: float | None,
    show_status: bool,
    **options: Any,
) -> None:
    """Publish ticks to Kafka: simulated (default), replayed from a file, or live (yfinance).

    \b
    Examples:
      tickstream produce --count 10000 --seed 7
      tickstream produce --source replay --file ticks.csv.gz --symbol ES \\
          --tz America/Chicago --speed max
      tickstream produce --source yfinance --tickers AAPL,MSFT

    Idempotent (acks=all) and asynchronous. Ctrl-C or SIGTERM stops reading the
    source, flushes what is queued and prints the counts; the exit code is 1 if any
    message could not be delivered.

    With the spool (PRODUCER_SPOOL: on for live sources by default), every tick is written
    to SPOOL_DIR before Kafka gets it: an outage or a crash loses nothing, and the next
    start sends what Kafka had not acknowledged. `--status` says what it holds.
    """
    import threading

    from tickstream.producer import ProduceStats, TickProducer
    from tickstream.progress import ProgressLine, StatusLines, spool_text
    from tickstream.signals import stop_on_signals
    from tickstream.sources.factory import build_source
    from tickstream.spool import Spool, SpoolFullError, spool_status

    settings = settings_from(options)
    if show_status:
        click.echo(describe_spool(spool_status(settings.spool_folder)))
        return
    start_ms = _parse_start(start)
    stop = threading.Event()

    def notify(message: str) -> None:
        click.echo(f"produce: {message}", err=True)

    def report_bad_row(where: str, reason: str) -> None:
        click.echo(f"produce: {where}: {reason} (skipped)", err=True)

    with stop_on_signals(stop, notify, "flushing and stopping"):
        source = build_source(
            settings,
            stop=stop,
            notify=notify,
            report_bad_row=report_bad_row,
            count=count,
            duration_s=duration,
            start_ms=start_ms,
        )
        spool = None
        if settings.spool_wanted(source.live):
            spool = Spool(
                settings.spool_folder,
                max_bytes=int(settings.spool_max_bytes),
                fsync_interval_s=settings.spool_fsync_interval_sec,
            ).open()
        else:
            left = spool_status(settings.spool_folder)
            if left.pending:
                notify(
                    f"the spool at {left.folder} holds {left.pending:,} ticks of an earlier run; "
                    "they are sent by a producer with the spool on (--spool on)"
                )
        full: SpoolFullError | None = None
        try:
            producer = TickProducer(settings, stop=stop, notify=notify, spool=spool)
            partitions = producer.connect(connect_timeout)
            notify(
                f"{source.name} -> {settings.kafka_topic} ({len(partitions)} partitions) "
                f"at {settings.kafka_bootstrap_servers}"
                + (f"; spool at {spool.folder}" if spool is not None else "")
            )
            progress = ProgressLine(source.name, enabled=False if status_every else None)
            if progress.enabled:
                progress.total = source.total
            status = StatusLines(notify, status_every) if status_every else None

            def on_progress(s: ProduceStats, queued: int) -> None:
                extra = " | ".join(filter(None, (f"queued {queued:,}", spool_text(s))))
                progress.update(s.sent, extra)
                if status is not None:
                    status.update(s, queued)

            try:
                stats = producer.run(source, on_progress)
            except SpoolFullError as exc:
                full, stats = exc, producer.stats
            finally:
                progress.close()
        finally:
            if spool is not None:
                spool.close()
    click.echo(f"produce: {stats.summary()}", err=True)
    for error in stats.errors:
        click.echo(f"produce: error: {error}", err=True)
    if full is not None:
        raise full
    if not stats.ok:
        sys.exit(1)


def describe_spool(status: Any) -> str:
    """`tickstream produce --status`: what the spool holds, in one line."""
    from tickstream.progress import format_size

    if not status.exists:
        return f"spool at {status.folder}: none (no producer has spooled to it)"
    running = (
        f"; a producer (pid {status.producer_pid}) is running on it"
        if status.producer_pid is not None
        else ""
    )
    if not status.pending:
        return f"spool at {status.folder}: empty, Kafka has every tick{running}"
    return (
        f"spool at {status.folder}: {status.pending:,} ticks Kafka has not acknowledged, "
        f"{format_size(status.size_bytes)} in {status.segments} segment"
        f"{'s' if status.segments != 1 else ''}{running or '; the next producer sends them first'}"
    )


# --- tickstream stream / bars -----------------------------------------------------------------

STREAM_FIELDS = (
    *KAFKA_FIELDS,
    *SECURITY_FIELDS,
    *LAKE_FIELDS,
    "window_duration",
    "watermark",
    "processing_trigger",
    "max_offsets_per_trigger",
    "starting_offsets",
    "fail_on_data_loss",
    "tick_min_time",
    "tick_max_ahead",
    "max_message_bytes",
    "dlq_topic",
    "bars_topic",
    "bars_live_topic",
    "metrics_port",
    "metrics_host",
    "console_bars",
    "spark_master",
    "spark_shuffle_partitions",
    "lake_compaction",
    "lake_compaction_interval",
    *HOME_FIELDS,
)


def run_stream(
    settings: Settings, *, once: bool = False, ui: bool = False, stop: Any = None
) -> None:
    """Run the bars job until stopped (or, with ``once``, until the topic is drained)."""
    import threading

    from tickstream.bars.console import Console
    from tickstream.bars.job import BarsJob
    from tickstream.signals import stop_on_signals
    from tickstream.spark import build_spark

    stop = stop or threading.Event()

    def notify(message: str) -> None:
        click.echo(f"job  {message}", err=True)

    from tickstream.kafka_admin import KafkaWatch, check_access

    check_access(settings)  # wrong credentials or a missing topic: one line, before Spark starts
    console = Console(
        echo=click.echo, show_bars=settings.console_bars, watermark_ms=settings.watermark_ms
    )
    spark = build_spark(settings, app_name="tickstream-bars", ui=ui)
    job = BarsJob(settings, spark, on_batch=console.on_batch, notify=notify)
    with (
        stop_on_signals(stop, notify, "finishing the current micro-batch"),
        KafkaWatch(settings, notify),
    ):
        query = job.start(once=once)
        notify(
            f"reading {settings.kafka_topic} at {settings.kafka_bootstrap_servers}; "
            f"bars of {settings.window_duration}, watermark {settings.watermark}; "
            f"lake {job.root}"
        )
        outputs = [f"bars to {t}" for t in (settings.bars_topic,) if t]
        outputs += [f"forming bars to {t}" for t in (settings.bars_live_topic,) if t]
        if settings.metrics_port:
            where = f"{settings.metrics_host}:{settings.metrics_port}"
            outputs.append(f"metrics on http://{where}/metrics")
        if outputs:
            notify("; ".join(outputs))
        while query.isActive and not stop.is_set():
            query.awaitTermination(1)
            console.tick()
        job.stop()  # on a signal; after --once, it ends the lake's compaction thread
        console.tick(force=True)
        error = job.failure()
        if error is not None:
            raise TickstreamError(f"the bars job failed: {str(error).splitlines()[0][:500]}")
    notify("stopped; a restart resumes from the checkpoint")
    spark.stop()


@cli.command("stream")
@settings_options(*STREAM_FIELDS)
@click.option("--once", is_flag=True, help="Process what the topic holds now, then stop.")
@click.option("--ui/--no-ui", default=False, show_default=True, help="Serve the Spark UI.")
def stream(once: bool, ui: bool, **options: Any) -> None:
    """Run the Spark Structured Streaming job: ticks in Kafka -> OHLCV bars in the lake.

    \b
    Writes under OUTPUT_PATH:
      bars/   (Delta table)       closed bars              bars_csv/  the same as CSV
      ticks/  (Delta table)       the valid ticks, deduplicated
      rejects/  late/  (Delta)    bad messages with reasons; ticks after their bar closed
      _checkpoints/               Spark's checkpoint and the job's state

    Compacts each date partition once the watermark has left it (LAKE_COMPACTION).

    Prints each bar as it closes and the job's progress every few seconds. Ctrl-C or
    SIGTERM lets the running micro-batch finish, then exits 0; a restart resumes from
    the checkpoint, with nothing lost or counted twice.
    """
    run_stream(settings_from(options), once=once, ui=ui)


# tickstream.lake.resample.SESSIONS, named here so that the CLI starts without pandas (a unit
# test keeps the two equal).
SESSION_NAMES = ("utc", "us-equities", "cme-futures")


@cli.command("bars")
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
    """
    from tickstream.lake import Lake, read_bars

    if fmt == "parquet" and output_file is None:
        raise TickstreamError("--format parquet writes a file", "add --output bars.parquet")
    settings = settings_from(options)
    wanted = [s.strip() for item in symbols for s in item.split(",") if s.strip()]
    frame = read_bars(
        Lake.from_settings(settings),
        symbol=wanted,
        start=_utc_naive(start, "--from"),
        end=_utc_naive(end, "--to"),
        resolution=resolution,
        session=session,
        extended=extended,
        fill=fill,
        limit=limit,
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


@cli.command("reconcile")
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


# --- tickstream jars -------------------------------------------------------------------------


@cli.group(cls=_Group)
def jars() -> None:
    """The JVM jars (Kafka broker, Spark's Kafka connector), resolved by Maven into a cache."""


@jars.command("fetch")
@settings_options(*HOME_FIELDS)
def jars_fetch(**options: Any) -> None:
    """Resolve the pinned jars with Maven (once; later runs reuse the cache)."""
    from tickstream.jvm import ensure_jars

    settings = settings_from(options)
    cache = ensure_jars(settings.jars_dir, refresh=True)
    click.echo(
        f"jars ready in {cache.root} (Kafka {cache.versions.kafka}, Spark {cache.versions.spark})"
    )


@jars.command("path")
@settings_options(*HOME_FIELDS)
def jars_path(**options: Any) -> None:
    """Print the jar folders and whether they are complete."""
    from tickstream.jvm import jar_cache

    cache = jar_cache(settings_from(options).jars_dir)
    state = "complete" if cache.is_complete() else "missing: run `tickstream jars fetch`"
    click.echo(
        f"kafka broker:    {cache.kafka_dir}\nspark connector: {cache.connector_dir}\n"
        f"delta lake:      {cache.delta_dir}\nengine:          {cache.engine_dir}\n({state})"
    )


# --- tickstream lake -------------------------------------------------------------------------


@cli.group(cls=_Group)
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
    from tickstream.spark import build_spark

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
    from tickstream.bars.lake import convert_to_delta, parquet_tables
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


# --- tickstream dashboard -------------------------------------------------------------------

DASHBOARD_FIELDS = (
    "kafka_bootstrap_servers",
    *SECURITY_FIELDS,
    "bars_topic",
    "bars_live_topic",
    *LAKE_FIELDS,
    "dashboard_host",
    "dashboard_port",
    "metrics_url",
    "metrics_port",
)


@cli.command("dashboard")
@settings_options(*DASHBOARD_FIELDS)
def dashboard_cmd(**options: Any) -> None:
    """Serve the live dashboard: candlesticks with volume and VWAP, and the job's health.

    \b
    History comes from the lake's bars table; live candles from BARS_TOPIC and BARS_LIVE_TOPIC
    (the forming bar moves at the job's trigger pace); the health panel from the job's
    metrics (METRICS_URL, or the local METRICS_PORT). Everything the page loads is served
    from here: it works without internet access.
    """
    from tickstream.dashboard.app import serve

    settings = settings_from(options)
    click.echo(f"dashboard on {dashboard_url(settings)}", err=True)
    serve(settings)


def dashboard_url(settings: Settings) -> str:
    host = settings.dashboard_host
    shown = "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host
    return f"http://{shown}:{settings.dashboard_port}/"


# --- tickstream config / up ------------------------------------------------------------------


@cli.command("config")
@settings_options(*Settings.model_fields)
def config_cmd(**options: Any) -> None:
    """Print the effective settings (environment, then flags) after validation."""
    settings = settings_from(options)
    for field in Settings.model_fields:
        value = getattr(settings, field)
        shown = ",".join(value) if isinstance(value, tuple) else value
        click.echo(f"{env_name(field)}={shown if shown is not None else ''}")


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as environment variables, for a child process."""
    env = {}
    for field in Settings.model_fields:
        value = getattr(settings, field)
        if value is None:
            if Settings.model_fields[field].default is not None:
                env[env_name(field)] = "off"  # a topic turned off stays off in the child
            continue
        if isinstance(value, tuple):
            value = ",".join(value)
        elif isinstance(value, SecretStr):  # str() would give the mask
            value = value.get_secret_value()
        elif isinstance(value, bool):
            value = str(value).lower()
        env[env_name(field)] = str(value)
    return env


UP_METRICS_PORT = 9464  # `up` serves the job's metrics here unless METRICS_PORT says otherwise


@cli.command("up")
@_port_option
@settings_options(*Settings.model_fields)
@click.option("--ui/--no-ui", default=False, show_default=True, help="Serve the Spark UI.")
def up(port: int, ui: bool, **options: Any) -> None:
    """Run the whole pipeline on this machine: a local broker, a producer and the bars job.

    \b
    Examples:
      tickstream up                                   # simulated market, 5 ticks/s
      tickstream up --source replay --file tests/data/es_ticks_2013-09_120k.csv.gz \\
          --symbol ES --tz America/Chicago --speed 600

    Closed bars stream to the console as they close, with a status line from the producer
    and the job every few seconds; the dashboard (`tickstream dashboard`) serves candles and
    the job's health at the URL it prints, and the job's metrics are on METRICS_PORT (9464
    unless set). Ctrl-C stops everything cleanly: the producer flushes, the job finishes its
    micro-batch, and a broker that `up` started is stopped. Nothing is lost: Kafka keeps
    the ticks and the job resumes from its checkpoint next time. Inspect the output with
    `tickstream bars`, or read the Delta tables under OUTPUT_PATH.
    """
    import os
    import signal
    import subprocess
    import threading

    from tickstream.kafka_local import LocalKafka

    settings = settings_from(options)
    if settings.metrics_port is None:  # `up` serves the metrics (the dashboard reads them)
        settings = settings.model_copy(update={"metrics_port": UP_METRICS_PORT})
    broker = LocalKafka(settings.tickstream_home, port=port, jars_dir=settings.jars_dir)
    result = broker.start()
    verb = "already running" if result.already_running else "started"
    click.echo(f"kafka {verb} on {result.bootstrap} (data {result.info.data_dir})")
    settings = settings.model_copy(update={"kafka_bootstrap_servers": result.bootstrap})
    _create_topics(result.bootstrap, settings)

    env = {**os.environ, **settings_env(settings)}
    children = {
        "producer": subprocess.Popen(
            [sys.executable, "-m", "tickstream", "produce", "--status-every", "5"], env=env
        ),
        "dashboard": subprocess.Popen([sys.executable, "-m", "tickstream", "dashboard"], env=env),
    }
    stop = threading.Event()
    try:
        run_stream(settings, ui=ui, stop=stop)
    finally:
        for name, child in children.items():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
            wait_s = settings.send_timeout_sec + 30 if name == "producer" else 10
            try:
                code = child.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                child.kill()
                code = child.wait()
            if code not in (0, -signal.SIGTERM, -signal.SIGINT):
                click.echo(f"up: the {name} exited with code {code}", err=True)
        if not result.already_running:
            info, _ = broker.stop()
            if info is not None:
                click.echo(f"kafka stopped (was {info.bootstrap})")
        else:
            click.echo(f"kafka keeps running on {result.bootstrap} (`tickstream kafka stop`)")


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv, prog_name="tickstream")


__all__ = ["cli", "main"]
