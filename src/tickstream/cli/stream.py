"""`tickstream stream`: the bars job."""

from __future__ import annotations

from typing import Any

import click

from tickstream.cli.options import (
    HOME_FIELDS,
    KAFKA_FIELDS,
    LAKE_FIELDS,
    SECURITY_FIELDS,
    settings_from,
    settings_options,
)
from tickstream.config import Settings
from tickstream.errors import TickstreamError

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
    "activity_bars_topic",
    "tick_bars",
    "volume_bars",
    "dollar_bars",
    "metrics_port",
    "metrics_host",
    "console_bars",
    "spark_master",
    "spark_shuffle_partitions",
    "lake_compaction",
    "lake_compaction_interval",
    *HOME_FIELDS,
)


PYTHON_TRACEBACK = "Traceback (most recent call last):"


def failure_line(text: str) -> str:
    """One line for a failed query: its first line, or, when the failure came from the job's
    Python code (Spark's message then carries a Python traceback after "An exception was raised
    by the Python Proxy"), the exception's own first line, after the traceback's frames."""
    lines = text.splitlines()
    if PYTHON_TRACEBACK in text:
        after = lines[[i for i, line in enumerate(lines) if PYTHON_TRACEBACK in line][-1] + 1 :]
        frames = [i for i, line in enumerate(after) if line.startswith((" ", "\t"))]
        # The exception's first line follows the last frame (its message may go on below).
        for line in after[frames[-1] + 1 if frames else 0 :]:
            if line.strip() and not line.startswith("==="):
                return line.strip()[:500]
    return (lines[0] if lines else text)[:500]


def run_stream(
    settings: Settings, *, once: bool = False, ui: bool = False, stop: Any = None
) -> None:
    """Run the bars job until stopped (or, with ``once``, until the topic is drained)."""
    import threading

    from tickstream.bars.job import BarsJob
    from tickstream.cli.console import Console
    from tickstream.cli.signals import stop_on_signals
    from tickstream.jvm.spark import build_spark

    stop = stop or threading.Event()

    def notify(message: str) -> None:
        click.echo(f"job  {message}", err=True)

    from tickstream.kafka.admin import KafkaWatch, check_access

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
        for kind in settings.activity_kinds:
            outputs.append(f"{kind} bars of {getattr(settings, kind + '_bars')}")
        if job.publisher is not None and job.publisher.activity_topic:
            outputs.append(f"tick, volume and dollar bars to {job.publisher.activity_topic}")
        if settings.metrics_port:
            where = f"{settings.metrics_host}:{settings.metrics_port}"
            outputs.append(f"metrics on http://{where}/metrics")
        if outputs:
            notify("; ".join(outputs))
        while query.isActive and not stop.is_set():
            try:
                query.awaitTermination(1)
            except Exception:  # the query failed: job.failure() below says why, in one line
                break
            console.tick()
        job.stop()  # on a signal; after --once, it ends the lake's compaction thread
        console.tick(force=True)
        error = job.failure()
        if isinstance(error, TickstreamError):
            raise error
        if error is not None:
            raise TickstreamError(f"the bars job failed: {failure_line(str(error))}")
    notify("stopped; a restart resumes from the checkpoint")
    spark.stop()


@click.command("stream")
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
