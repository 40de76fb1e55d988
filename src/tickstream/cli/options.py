"""What the commands share: flags made from settings fields, the field groups, the group class
that turns a user's error into one line."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar, get_args, get_origin

import click

from tickstream.config import Settings, env_name, flag_name, load_settings
from tickstream.errors import TickstreamError

F = TypeVar("F", bound=Callable[..., Any])

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


class Group(click.Group):
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


def port_option(func: F) -> F:
    return click.option(
        "--port",
        type=click.IntRange(1, 65535),
        default=9092,
        show_default=True,
        envvar="TICKSTREAM_KAFKA_PORT",
        help="Port of the local broker's client listener [env: TICKSTREAM_KAFKA_PORT].",
    )(func)
