"""`tickstream up` (the whole pipeline on this machine), `dashboard` and `config`."""

from __future__ import annotations

import sys
from typing import Any

import click

from tickstream.cli.kafka import create_topics
from tickstream.cli.options import (
    LAKE_FIELDS,
    SECURITY_FIELDS,
    port_option,
    settings_from,
    settings_options,
)
from tickstream.cli.stream import run_stream
from tickstream.config import Settings, env_name, settings_env

DASHBOARD_FIELDS = (
    "kafka_bootstrap_servers",
    *SECURITY_FIELDS,
    "bars_topic",
    "bars_live_topic",
    *LAKE_FIELDS,
    "dashboard_host",
    "dashboard_port",
    "dashboard_token",
    "dashboard_token_file",
    "dashboard_public",
    "metrics_url",
    "metrics_port",
)


@click.command("dashboard")
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
    from tickstream.dashboard.auth import credential

    settings = settings_from(options)
    secret = credential(settings)  # refused here, in one line, if it must have one and has none
    guarded = " (credential required)" if secret else ""
    click.echo(f"dashboard on {dashboard_url(settings)}{guarded}", err=True)
    serve(settings)


def dashboard_url(settings: Settings) -> str:
    host = settings.dashboard_host
    shown = "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host
    return f"http://{shown}:{settings.dashboard_port}/"


@click.command("config")
@settings_options(*Settings.model_fields)
def config_cmd(**options: Any) -> None:
    """Print the effective settings (environment, then flags) after validation."""
    settings = settings_from(options)
    for field in Settings.model_fields:
        value = getattr(settings, field)
        shown = ",".join(value) if isinstance(value, tuple) else value
        click.echo(f"{env_name(field)}={shown if shown is not None else ''}")


UP_METRICS_PORT = 9464  # `up` serves the job's metrics here unless METRICS_PORT says otherwise


@click.command("up")
@port_option
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

    from tickstream.dashboard.auth import credential
    from tickstream.kafka.local import LocalKafka

    settings = settings_from(options)
    credential(settings)  # a dashboard that would be refused is refused before anything starts
    if settings.metrics_port is None:  # `up` serves the metrics (the dashboard reads them)
        settings = settings.model_copy(update={"metrics_port": UP_METRICS_PORT})
    broker = LocalKafka(settings.tickstream_home, port=port, jars_dir=settings.jars_dir)
    result = broker.start()
    verb = "already running" if result.already_running else "started"
    click.echo(f"kafka {verb} on {result.bootstrap} (data {result.info.data_dir})")
    settings = settings.model_copy(update={"kafka_bootstrap_servers": result.bootstrap})
    create_topics(result.bootstrap, settings)

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
