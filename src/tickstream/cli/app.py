"""The ``tickstream`` command: the group, with each command registered from its own module."""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from typing import NoReturn

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


def main(argv: list[str] | None = None) -> NoReturn:
    try:
        cli.main(args=argv, prog_name="tickstream")
    except SystemExit as exc:
        end(exc.code)
    end(0)


def end(code: int | str | None) -> NoReturn:
    """End the process with ``code`` once its work is done, without the interpreter's teardown.

    Arrow's reader threads may still be finishing a scan of the lake when the command returns
    (deltalake reads through a Python file system, so they take the GIL); one that does so
    while the interpreter tears itself down aborts the process ("terminate called without an
    active exception", exit 134), after the command did its work and said so. Seen in 1 of 30
    refused `lake rebuild` runs; apache/arrow#39862 is the open upstream report. So: what
    Python's own exit does that matters here (join the threads that are not daemons, run the
    atexit handlers, flush the standard streams), then ``os._exit``. docs/lake.md.
    """
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    current = threading.current_thread()
    for thread in threading.enumerate():
        if thread is not current and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for out in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more to say
            out.flush()
    os._exit(code or 0)


__all__ = ["cli", "main"]
