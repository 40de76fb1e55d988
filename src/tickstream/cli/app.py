"""The ``tickstream`` command: the group, with each command registered from its own module."""

from __future__ import annotations

import click

from tickstream import __version__
from tickstream.cli.kafka import jars, kafka
from tickstream.cli.lake import bars_cmd, lake, reconcile_cmd
from tickstream.cli.options import Group
from tickstream.cli.produce import produce
from tickstream.cli.rebuild import lake_rebuild
from tickstream.cli.stream import stream
from tickstream.cli.up import config_cmd, dashboard_cmd, up


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tickstream")
def cli() -> None:
    """tickstream: stock ticks into Kafka, event-time OHLCV bars with Spark, a Delta/CSV lake.

    Every setting is an environment variable (WATERMARK) and a flag (--watermark);
    a flag wins. Run `tickstream COMMAND --help` for a command's settings.
    """


COMMANDS = (
    kafka,
    produce,
    stream,
    bars_cmd,
    reconcile_cmd,
    jars,
    lake,
    dashboard_cmd,
    config_cmd,
    up,
)
for command in COMMANDS:
    cli.add_command(command)
lake.add_command(lake_rebuild)


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv, prog_name="tickstream")


__all__ = ["cli", "main"]
