"""The one settings object: environment variables, overridable by CLI flags.

Every setting has one name. The environment variable is that name in upper
case (``WATERMARK``), the CLI flag is it in kebab case (``--watermark``), and
the compose file and README use the same names. Values are validated once, at
start-up: a bad one stops the program with a single line that names the
variable and the expected form (:func:`load_settings` raises
:class:`~tickstream.errors.ConfigError`, which the CLI turns into exit code 2).

>>> s = load_settings({"watermark": "90 seconds"})
>>> s.watermark, s.watermark_seconds
('90 seconds', 90.0)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from tickstream.config.endpoints import EndpointSettings
from tickstream.config.forms import (
    DURATION_FORM,
    THRESHOLDS_FORM,
    Thresholds,
    duration_seconds,
    normalize_duration,
    parse_bootstrap,
    parse_duration,
    parse_instant_ms,
)
from tickstream.config.job import ACTIVITY_KINDS, JobSettings
from tickstream.config.kafka import KafkaSettings
from tickstream.config.lake import LakeSettings
from tickstream.config.producer import ProducerSettings
from tickstream.errors import ConfigError

__all__ = [
    "ACTIVITY_KINDS",
    "DURATION_FORM",
    "THRESHOLDS_FORM",
    "Settings",
    "Thresholds",
    "duration_seconds",
    "env_name",
    "flag_name",
    "load_settings",
    "normalize_duration",
    "parse_bootstrap",
    "parse_duration",
    "parse_instant_ms",
    "settings_env",
]


# Each role's settings are a class of their own (Kafka, the producer, the job, the lake, the
# endpoints); Settings is all of them, read from one environment. The first base's fields come
# last: this order keeps the roles in the order the README's settings table gives them.
class Settings(
    LakeSettings, EndpointSettings, JobSettings, ProducerSettings, KafkaSettings, BaseSettings
):
    """All of tickstream's settings. Frozen: read once at start-up, then passed around."""

    model_config = SettingsConfigDict(
        frozen=True,
        case_sensitive=False,
        env_ignore_empty=True,
        env_file=".env",
        extra="ignore",
    )

    # Local state
    tickstream_home: Path = Field(
        Path(".tickstream"),
        description="Folder for local state: the jar cache and the local broker's data.",
    )
    tickstream_jars_dir: Path | None = Field(
        None, description="Jar cache folder; unset = TICKSTREAM_HOME/jars."
    )

    @property
    def spool_folder(self) -> Path:
        return self.spool_dir or self.tickstream_home / "spool" / self.kafka_topic

    @property
    def jars_dir(self) -> Path:
        return self.tickstream_jars_dir or self.tickstream_home / "jars"


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


def env_name(field: str) -> str:
    return field.upper()


# Flags whose name is shorter than their field (the environment variable keeps the long name).
FLAG_ALIASES = {
    "producer_source": "--source",
    "sim_seed": "--seed",
    "replay_file": "--file",
    "replay_symbol": "--symbol",
    "replay_tz": "--tz",
    "replay_speed": "--speed",
    "replay_rebase": "--rebase",
    "replay_on_bad_row": "--on-bad-row",
    "producer_spool": "--spool",
}


def flag_name(field: str) -> str:
    return FLAG_ALIASES.get(field, "--" + field.replace("_", "-"))


def load_settings(overrides: Mapping[str, Any] | None = None) -> Settings:
    """Read the environment, apply CLI overrides (``None`` means 'not given'), validate.

    Raises :class:`ConfigError` naming the first bad variable and its expected form.
    """
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        raise _config_error(exc, given) from None


SECRET_FIELDS = frozenset({"kafka_sasl_password", "s3_secret_access_key"})


def _config_error(exc: ValidationError, given: Mapping[str, Any]) -> ConfigError:
    first = exc.errors()[0]
    reason = str(first["msg"]).removeprefix("Value error, ")
    if not first["loc"]:  # a rule across settings: its message names them
        return ConfigError(f"bad settings: {reason}")
    field = str(first["loc"][0])
    where = flag_name(field) if field in given else env_name(field)
    value = first.get("input")
    secret = field in SECRET_FIELDS
    shown = f"={value!r}" if isinstance(value, str | int | float) and not secret else ""
    more = len(exc.errors()) - 1
    extra = f" (and {more} more bad setting{'s' if more > 1 else ''})" if more else ""
    return ConfigError(f"bad setting {where}{shown}: {reason}{extra}")
