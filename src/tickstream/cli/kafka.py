"""`tickstream kafka ...` (the local broker, topics) and `tickstream jars ...` (the jar cache)."""

from __future__ import annotations

import sys
from typing import Any

import click

from tickstream.cli.options import (
    HOME_FIELDS,
    KAFKA_FIELDS,
    SECURITY_FIELDS,
    Group,
    port_option,
    settings_from,
    settings_options,
)
from tickstream.config import Settings


@click.group(cls=Group)
def kafka() -> None:
    """Run a local single-node Kafka broker (KRaft) on 127.0.0.1, and manage topics."""


@kafka.command("start")
@port_option
@click.option(
    "--timeout", type=float, default=90.0, show_default=True, help="Seconds to wait for readiness."
)
@settings_options(*HOME_FIELDS, "kafka_topic")
def kafka_start(port: int, timeout: float, **options: Any) -> None:
    """Start the local broker in the background (or find it running) and create the topics.

    Reports ready only once the broker answers an admin request, then prints its
    bootstrap address. Running it again is harmless.
    """
    from tickstream.kafka.local import LocalKafka

    settings = settings_from(options)
    broker = LocalKafka(settings.tickstream_home, port=port, jars_dir=settings.jars_dir)
    result = broker.start(timeout=timeout)
    verb = "already running" if result.already_running else "started"
    info = result.info
    click.echo(f"kafka {verb}: bootstrap {info.bootstrap} (pid {info.pid}, data {info.data_dir})")
    create_topics(result.bootstrap, settings)
    click.echo(result.bootstrap)


def create_topics(bootstrap: str, settings: Settings, extra: dict[str, str] | None = None) -> None:
    from tickstream.kafka.admin import ensure_topics, pipeline_topics

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
    from tickstream.kafka.local import LocalKafka

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
    from tickstream.kafka.admin import is_ready
    from tickstream.kafka.local import LocalKafka

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
    from tickstream.kafka.clients import client_security

    settings = settings_from(options)
    create_topics(settings.kafka_bootstrap_servers, settings, client_security(settings))
    click.echo("topics ready")


@click.group(cls=Group)
def jars() -> None:
    """The JVM jars (Kafka broker, Spark's Kafka connector), resolved by Maven into a cache."""


@jars.command("fetch")
@settings_options(*HOME_FIELDS)
def jars_fetch(**options: Any) -> None:
    """Resolve the pinned jars with Maven (once; later runs reuse the cache)."""
    from tickstream.jvm.jars import ensure_jars

    settings = settings_from(options)
    cache = ensure_jars(settings.jars_dir)
    click.echo(
        f"jars ready in {cache.root} (Kafka {cache.versions.kafka}, Spark {cache.versions.spark})"
    )


@jars.command("archive")
@settings_options(*HOME_FIELDS)
@click.option("--force", is_flag=True, help="Make it again even if it exists.")
def jars_archive(force: bool, **options: Any) -> None:
    """Make the Spark driver's class archive (Java's class-data sharing): later starts of the
    job map Spark's classes from it instead of loading them (once per set of jars; a rehearsal
    of the bars job, ~30 s)."""
    from tickstream.jvm.cds import make_archive
    from tickstream.jvm.spark import class_archive

    settings = settings_from(options)
    archive = class_archive(settings)
    if archive.is_file() and not force:
        click.echo(f"class archive ready: {archive}")
        return
    click.echo("making the Spark driver's class archive (a rehearsal of the bars job) ...")
    make_archive(archive)
    click.echo(f"class archive ready: {archive}")


@jars.command("path")
@settings_options(*HOME_FIELDS)
def jars_path(**options: Any) -> None:
    """Print the jar folders and whether they are complete."""
    from tickstream.jvm.jars import jar_cache

    cache = jar_cache(settings_from(options).jars_dir)
    state = "complete" if cache.is_complete() else "missing: run `tickstream jars fetch`"
    click.echo(
        f"kafka broker:    {cache.kafka_dir}\nspark connector: {cache.connector_dir}\n"
        f"delta lake:      {cache.delta_dir}\nengine:          {cache.engine_dir}\n({state})"
    )
