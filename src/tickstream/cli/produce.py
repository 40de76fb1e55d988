"""`tickstream produce`: a source into Kafka, through the spool where it is on."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from tickstream.cli.options import (
    KAFKA_FIELDS,
    SECURITY_FIELDS,
    settings_from,
    settings_options,
)
from tickstream.errors import ConfigError

if TYPE_CHECKING:
    from tickstream.config import Settings
    from tickstream.kafka.spool import SpoolStatus

# With the spool, how long the producer waits for Kafka at its start before it starts anyway,
# spooling: a first answer usually takes well under a second.
SPOOLED_CONNECT_S = 5.0

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


@click.command("produce")
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
    help="Say what the spool holds (ticks Kafka has not acknowledged, dead letters) and exit.",
)
@click.option(
    "--resend-dead-letters",
    "resend_dead",
    is_flag=True,
    help="Send the ticks Kafka refused for good (the dead letters beside the spool) again, "
    "keep those it refuses again, and exit.",
)
@click.option(
    "--drop-dead-letters",
    "drop_dead",
    is_flag=True,
    help="Delete the dead letters beside the spool, saying how many, and exit.",
)
def produce(
    count: int | None,
    duration: float | None,
    start: str | None,
    connect_timeout: float,
    status_every: float | None,
    show_status: bool,
    resend_dead: bool,
    drop_dead: bool,
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
    start sends what Kafka had not acknowledged. Kafka down at the start is an outage too:
    the producer starts, spools, and sends once Kafka answers. `--status` says what it holds.
    """
    import threading

    from tickstream.cli.progress import ProgressLine, StatusLines, spool_text
    from tickstream.cli.signals import stop_on_signals
    from tickstream.errors import EnvironmentProblem
    from tickstream.kafka.producer import ProduceStats, TickProducer
    from tickstream.kafka.spool import Spool, SpoolFullError, spool_status
    from tickstream.sources.factory import build_source

    settings = settings_from(options)
    if show_status:
        click.echo(describe_spool(spool_status(settings.spool_folder)))
        return
    if resend_dead or drop_dead:
        if resend_dead and drop_dead:
            raise ConfigError("--resend-dead-letters or --drop-dead-letters, not both")
        click.echo(dead_letters(settings, resend=resend_dead, timeout_s=connect_timeout))
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
            if spool is None:
                partitions = producer.connect(connect_timeout)
            else:
                # With the spool, Kafka down at the start is an outage like any other: the
                # ticks are spooled, and sent once it answers.
                try:
                    partitions = producer.connect(min(connect_timeout, SPOOLED_CONNECT_S))
                except EnvironmentProblem:
                    producer.start_offline()
                    partitions = []
            routed = f"{len(partitions)} partitions" if partitions else "partitions once it answers"
            notify(
                f"{source.name} -> {settings.kafka_topic} ({routed}) "
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


def dead_letters(settings: Settings, *, resend: bool, timeout_s: float) -> str:
    """Re-send or drop the dead letters beside the spool, holding the spool (no producer runs
    on it meanwhile); what was done, in one line."""
    from tickstream.kafka.deadletters import DeadLetters
    from tickstream.kafka.deadletters import resend as send_again
    from tickstream.kafka.spool import Spool

    dead = DeadLetters(settings.spool_folder)
    if not dead.path.exists():
        return f"dead letters at {dead.path}: none"
    spool = Spool(settings.spool_folder, max_bytes=int(settings.spool_max_bytes)).open()
    try:
        letters = dead.read()
        if not letters:
            return f"dead letters at {dead.path}: none"
        if not resend:
            dead.replace([])
            return f"dropped {len(letters):,} dead letter{_s(len(letters))} from {dead.path}"
        refused = send_again(settings, letters, timeout_s)
        dead.replace(refused)
        text = f"re-sent {len(letters) - len(refused):,} of {len(letters):,} dead letters"
        if refused:
            text += (
                f"; Kafka refused {len(refused):,} again ({refused[-1].reason}): kept at "
                f"{dead.path}"
            )
        return text
    finally:
        spool.close()


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def describe_spool(status: SpoolStatus) -> str:
    """`tickstream produce --status`: what the spool holds, in one line."""
    from tickstream.kafka.spool import format_size

    if not status.exists:
        return f"spool at {status.folder}: none (no producer has spooled to it)"
    running = (
        f"; a producer (pid {status.producer_pid}) is running on it"
        if status.producer_pid is not None
        else ""
    )
    dead = (
        f"; {status.dead_letters:,} dead letter{_s(status.dead_letters)} (ticks Kafka refused "
        "for good: --resend-dead-letters or --drop-dead-letters)"
        if status.dead_letters
        else ""
    )
    if not status.pending:
        return f"spool at {status.folder}: empty, Kafka has every tick{running}{dead}"
    return (
        f"spool at {status.folder}: {status.pending:,} ticks Kafka has not acknowledged, "
        f"{format_size(status.size_bytes)} in {status.segments} segment{_s(status.segments)}"
        f"{running or '; the next producer sends them first'}{dead}"
    )
