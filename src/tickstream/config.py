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

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    ByteSize,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tickstream.errors import ConfigError
from tickstream.ticks.schema import SYMBOL_RE

# --- value forms -------------------------------------------------------------------------------

_DURATION_UNITS = {
    "millisecond": 0.001,
    "ms": 0.001,
    "second": 1.0,
    "sec": 1.0,
    "s": 1.0,
    "minute": 60.0,
    "min": 60.0,
    "m": 60.0,
    "hour": 3600.0,
    "h": 3600.0,
    "day": 86400.0,
    "d": 86400.0,
}
_SPARK_UNIT = {
    0.001: "millisecond",
    1.0: "second",
    60.0: "minute",
    3600.0: "hour",
    86400.0: "day",
}
_DURATION_RE = re.compile(r"^\s*(\d+)\s*([a-z]+)\s*$")
DURATION_FORM = "a whole number and a unit, such as '2 minutes', '30 seconds' or '500 ms'"

_HOST_RE = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9]([A-Za-z0-9\-.]*[A-Za-z0-9])?)$")
BOOTSTRAP_FORM = "host:port[,host:port...], such as '127.0.0.1:9092' or 'kafka:9092'"

TICKERS_FORM = "comma-separated symbols, such as 'AAPL,MSFT,GOOG'"

S3_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


def parse_duration(text: str) -> tuple[int, float]:
    """Parse a duration into (count, seconds per unit); raise ValueError if malformed.

    >>> parse_duration("2 minutes")
    (2, 60.0)
    """
    match = _DURATION_RE.match(text.lower())
    unit = match.group(2) if match else ""
    if unit not in _DURATION_UNITS:
        unit = unit.removesuffix("s")  # plural: 'minutes' -> 'minute'
    if not match or unit not in _DURATION_UNITS:
        raise ValueError(f"expected {DURATION_FORM}")
    count = int(match.group(1))
    if count <= 0:
        raise ValueError(f"expected a positive duration: {DURATION_FORM}")
    return count, _DURATION_UNITS[unit]


def normalize_duration(text: str) -> str:
    """The canonical form Spark's interval parser accepts: ``'2min'`` -> ``'2 minutes'``."""
    count, unit_seconds = parse_duration(text)
    unit = _SPARK_UNIT[unit_seconds]
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


def duration_seconds(text: str) -> float:
    count, unit_seconds = parse_duration(text)
    return count * unit_seconds


def parse_instant_ms(text: str) -> int:
    """An ISO-8601 time with a zone, as epoch milliseconds."""
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("expected an ISO-8601 time such as '2024-03-01T14:30:00Z'") from None
    if stamp.tzinfo is None:
        raise ValueError("expected a time zone, e.g. a trailing 'Z'")
    return (stamp - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def parse_bootstrap(text: str) -> list[tuple[str, int]]:
    """Split a bootstrap list into (host, port) pairs; raise ValueError if malformed."""
    pairs: list[tuple[str, int]] = []
    for item in text.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep or not _HOST_RE.match(host) or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected {BOOTSTRAP_FORM}")
        pairs.append((host, int(port)))
    return pairs


# --- the settings ------------------------------------------------------------------------------


class Settings(BaseSettings):
    """All of tickstream's settings. Frozen: read once at start-up, then passed around."""

    model_config = SettingsConfigDict(
        frozen=True,
        case_sensitive=False,
        env_ignore_empty=True,
        env_file=".env",
        extra="ignore",
    )

    # Kafka
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Kafka brokers the producer and the job connect to."
    )
    kafka_topic: str = Field("events", description="The topic that carries the ticks.")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How the producer and the job talk to Kafka."
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = Field(
        "SCRAM-SHA-512", description="SASL mechanism (with SASL_PLAINTEXT or SASL_SSL)."
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(
        None, description="SASL password (never printed)."
    )
    kafka_ssl_ca_location: Path | None = Field(
        None, description="PEM file of the CA that signed the brokers' certificates (SSL)."
    )

    # Producer
    tickers: Annotated[tuple[str, ...], NoDecode] = Field(
        ("AAPL", "MSFT", "GOOG", "AMZN", "TSLA"), description="Symbols to produce ticks for."
    )
    msgs_per_sec: float = Field(
        5.0, description="Ticks per second to produce; 0 = as fast as possible."
    )
    simulate_if_no_yfinance: bool = Field(
        True, description="Fall back to simulated ticks when yfinance is missing or unreachable."
    )
    send_timeout_sec: float = Field(
        30.0, description="How long the producer tries to deliver one message before it fails."
    )
    producer_source: Literal["simulate", "replay", "yfinance"] = Field(
        "simulate", description="Where ticks come from: simulate, replay or yfinance."
    )
    heartbeat_interval_sec: float = Field(
        1.0, description="Seconds between heartbeats to every partition; 0 = none."
    )
    kafka_compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        "lz4", description="Compression of produced batches."
    )
    sim_seed: int | None = Field(None, description="Seed for a reproducible simulation.")
    replay_file: Path | None = Field(
        None, description="Tick file to replay (CSV, CSV.gz, Parquet)."
    )
    replay_symbol: str | None = Field(None, description="Symbol of a file without a symbol column.")
    replay_tz: str = Field("UTC", description="Time zone of naive timestamps in the file.")
    replay_speed: str = Field(
        "1", description="Replay speed: 1 = real time, N = N times faster, max = no pacing."
    )
    replay_rebase: bool = Field(False, description="Shift times so the first tick is now.")
    replay_on_bad_row: Literal["skip", "fail"] = Field(
        "skip", description="A malformed row is reported, then skipped or fatal."
    )
    yfinance_poll_sec: float = Field(5.0, description="Seconds between two yfinance polls.")
    yfinance_mode: Literal["stream", "poll"] = Field(
        "stream",
        description="yfinance: stream quotes over Yahoo's WebSocket, or poll them (the fallback).",
    )
    yfinance_stream_url: str = Field(
        "wss://streamer.finance.yahoo.com/?version=2",
        description="Yahoo's streaming endpoint (a WebSocket URL).",
    )
    producer_spool: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Write every tick to a local spool before Kafka, so an outage or a crash "
        "loses none: auto = on for live sources (yfinance).",
    )
    spool_dir: Path | None = Field(
        None, description="The producer's spool folder; unset = TICKSTREAM_HOME/spool/TOPIC."
    )
    spool_max_bytes: ByteSize = Field(
        ByteSize(1 << 30),
        description="Disk budget of the spool (e.g. 500MB, 2GiB); past it the producer stops.",
    )
    spool_fsync_interval_sec: float = Field(
        1.0, description="Seconds between two fsyncs of the spool; 0 = after every chunk."
    )

    # Stream job
    output_path: str = Field(
        "data/output",
        description="Where the lake is: a folder or s3a://bucket/prefix.",
    )
    window_duration: str = Field("1 minute", description="Length of one bar.")
    watermark: str = Field("2 minutes", description="How late a tick may arrive and still count.")
    processing_trigger: str = Field(
        "1 second", description="How often the stream job runs a micro-batch."
    )
    # A backlog (a restart after hours, a burst) is read in batches of at most this many
    # messages: without a cap, one batch takes all of it, and 2.8 million ticks at once ran
    # Spark's default 1 GB local-mode heap out of memory (bench/soak.py at 50,000/s).
    max_offsets_per_trigger: int = Field(
        500_000, description="Cap on Kafka records per micro-batch (bounds a batch's memory)."
    )
    spark_master: str = Field("local[*]", description="Spark master URL, e.g. spark://host:7077.")
    starting_offsets: Literal["earliest", "latest"] = Field(
        "earliest", description="Where a new pipeline starts reading the topic."
    )
    fail_on_data_loss: bool = Field(
        True, description="Stop the job if Kafka deleted data it had not read yet."
    )
    tick_min_time: str = Field(
        "1990-01-01T00:00:00Z",
        description="Ticks and heartbeats earlier than this are rejected (ISO-8601).",
    )
    tick_max_ahead: str = Field(
        "1 day",
        description="Reject events more than this ahead of the time Kafka received them.",
    )
    max_message_bytes: int = Field(65536, description="Larger messages are rejected unparsed.")
    dlq_topic: str | None = Field(
        None, description="Also send rejected messages to this Kafka topic; unset = lake only."
    )
    console_bars: bool = Field(True, description="Print each closed bar on the console.")
    bars_topic: str | None = Field(
        "bars", description="Publish every closed bar to this Kafka topic; off = don't."
    )
    bars_live_topic: str | None = Field(
        "bars-live",
        description="Publish the forming bars (provisional) to this Kafka topic; off = don't.",
    )
    metrics_port: int | None = Field(
        None, description="Serve the job's Prometheus metrics on this port; unset = off."
    )
    metrics_host: str = Field("127.0.0.1", description="Address the metrics endpoint listens on.")

    # Dashboard
    dashboard_port: int = Field(8050, description="Port of `tickstream dashboard`.")
    dashboard_host: str = Field("127.0.0.1", description="Address the dashboard listens on.")
    metrics_url: str | None = Field(
        None,
        description="Where the dashboard scrapes the job's metrics; unset = the local "
        "METRICS_PORT (http://127.0.0.1:METRICS_PORT/metrics).",
    )
    spark_shuffle_partitions: int = Field(
        4, description="Spark shuffle partitions of the bars job (more on a cluster)."
    )

    # Lake maintenance
    lake_compaction: bool = Field(
        True, description="The job compacts the finished date partitions of its tables."
    )
    lake_compaction_interval: str = Field(
        "10 minutes", description="How often the job looks for date partitions to compact."
    )
    lake_retention: str = Field(
        "7 days",
        description="`tickstream lake vacuum` deletes replaced files older than this.",
    )

    # Object storage (an s3a:// OUTPUT_PATH)
    s3_endpoint: str | None = Field(
        None, description="S3 endpoint URL (MinIO, S3Proxy...); unset = AWS's for S3_REGION."
    )
    s3_region: str | None = Field(None, description="S3 region; unset = the SDKs' default.")
    s3_access_key_id: str | None = Field(
        None, description="S3 access key; unset = the environment's or the instance role's."
    )
    s3_secret_access_key: SecretStr | None = Field(
        None, description="S3 secret key (never printed)."
    )
    s3_path_style_access: bool = Field(
        False, description="Address buckets by path (http://host/bucket), as MinIO expects."
    )

    # Local state
    tickstream_home: Path = Field(
        Path(".tickstream"),
        description="Folder for local state: the jar cache and the local broker's data.",
    )
    tickstream_jars_dir: Path | None = Field(
        None, description="Jar cache folder; unset = TICKSTREAM_HOME/jars."
    )

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _bootstrap(cls, value: str) -> str:
        parse_bootstrap(value)
        return ",".join(part.strip() for part in value.split(","))

    @field_validator("output_path", mode="before")
    @classmethod
    def _output_path(cls, value: Any) -> str:
        # A string, not a Path: a Path would fold 's3a://b/x' into a local 's3a:/b/x'.
        text = str(value).strip()
        scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.\-]*)://", text)
        if scheme is None:
            if not text:
                raise ValueError("expected a folder or s3a://bucket/prefix")
            return text
        name = scheme.group(1).lower()
        if name == "file":
            return text[len(scheme.group(0)) :]
        if name in {"s3", "s3a"}:
            rest = text[len(scheme.group(0)) :].strip("/")
            if not rest or not S3_BUCKET_RE.match(rest.split("/", 1)[0]):
                raise ValueError("expected s3a://bucket/prefix with a valid bucket name")
            return "s3a://" + rest
        raise ValueError(
            f"expected a folder or s3a://bucket/prefix; {name}:// is not supported "
            "(mount it as a folder, or use an S3-compatible endpoint)"
        )

    @field_validator("s3_endpoint")
    @classmethod
    def _s3_endpoint(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+/?$", value.strip()):
            raise ValueError("expected http(s)://host[:port], such as 'http://127.0.0.1:9000'")
        return value.strip().rstrip("/") if value is not None else None

    @field_validator("kafka_ssl_ca_location")
    @classmethod
    def _ca(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError("expected a readable PEM file")
        return value

    @model_validator(mode="after")
    def _s3_keys_in_pairs(self) -> Settings:
        if bool(self.s3_access_key_id) != bool(self.s3_secret_access_key):
            raise ValueError(
                "S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY go together: set both, or neither "
                "(to use the environment's or the instance role's credentials)"
            )
        return self

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> Settings:
        if self.kafka_security_protocol.startswith("SASL") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                "KAFKA_SECURITY_PROTOCOL="
                f"{self.kafka_security_protocol} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
            )
        return self

    @field_validator("kafka_topic")
    @classmethod
    def _topic(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9._\-]{1,249}", value) or value in {".", ".."}:
            raise ValueError("expected a Kafka topic name: letters, digits, '.', '_', '-'")
        return value

    @field_validator("tickers", mode="before")
    @classmethod
    def _tickers(cls, value: Any) -> tuple[str, ...]:
        items = value.split(",") if isinstance(value, str) else list(value)
        symbols = tuple(str(item).strip().upper() for item in items if str(item).strip())
        if not symbols or not all(SYMBOL_RE.match(s) for s in symbols):
            raise ValueError(f"expected {TICKERS_FORM}")
        if len(set(symbols)) != len(symbols):
            raise ValueError("expected each symbol once")
        return symbols

    @field_validator("msgs_per_sec")
    @classmethod
    def _rate(cls, value: float) -> float:
        if not value >= 0 or value == float("inf"):
            raise ValueError("expected a number >= 0 (0 = as fast as possible)")
        return value

    @field_validator("send_timeout_sec")
    @classmethod
    def _timeout(cls, value: float) -> float:
        if not value > 0 or value == float("inf"):
            raise ValueError("expected a number of seconds > 0")
        return value

    @field_validator("heartbeat_interval_sec")
    @classmethod
    def _heartbeat(cls, value: float) -> float:
        if not value >= 0 or value == float("inf"):
            raise ValueError("expected a number of seconds >= 0 (0 = no heartbeats)")
        return value

    @field_validator("spool_fsync_interval_sec")
    @classmethod
    def _fsync_interval(cls, value: float) -> float:
        if not value >= 0 or value == float("inf"):
            raise ValueError("expected a number of seconds >= 0")
        return value

    @field_validator("spool_max_bytes")
    @classmethod
    def _spool_budget(cls, value: ByteSize) -> ByteSize:
        if value < 1 << 20:
            raise ValueError("expected at least 1MiB (e.g. 500MB, 2GiB)")
        return value

    @field_validator("yfinance_poll_sec")
    @classmethod
    def _poll(cls, value: float) -> float:
        if not value >= 1 or value == float("inf"):
            raise ValueError("expected a number of seconds >= 1 (be polite to Yahoo)")
        return value

    @field_validator("replay_speed")
    @classmethod
    def _speed(cls, value: str) -> str:
        text = value.strip().lower()
        if text == "max":
            return text
        try:
            speed = float(text)
        except ValueError:
            speed = float("nan")
        if not speed > 0 or speed == float("inf"):
            raise ValueError("expected a number > 0 (1 = real time) or 'max'")
        return text

    @field_validator("replay_symbol")
    @classmethod
    def _replay_symbol(cls, value: str | None) -> str | None:
        if value is not None and not SYMBOL_RE.match(value.strip().upper()):
            raise ValueError("expected one upper-case symbol, such as 'ES'")
        return value.strip().upper() if value is not None else None

    @field_validator("replay_tz")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                "expected an IANA time zone, such as 'UTC' or 'America/Chicago'"
            ) from None
        return value

    @field_validator("tick_min_time")
    @classmethod
    def _min_time(cls, value: str) -> str:
        parse_instant_ms(value)
        return value

    @field_validator("max_message_bytes", "spark_shuffle_partitions")
    @classmethod
    def _positive_int(cls, value: int) -> int:
        if value <= 0:
            raise ValueError("expected a whole number > 0")
        return value

    @field_validator("dlq_topic")
    @classmethod
    def _dlq(cls, value: str | None) -> str | None:
        return None if value is None else cls._topic(value)

    @field_validator("bars_topic", "bars_live_topic")
    @classmethod
    def _optional_topic(cls, value: str | None) -> str | None:
        if value is None or value.strip().lower() in {"off", "none"}:
            return None
        return cls._topic(value.strip())

    @field_validator("metrics_port", "dashboard_port")
    @classmethod
    def _port(cls, value: int | None) -> int | None:
        if value is not None and not 0 < value < 65536:
            raise ValueError("expected a TCP port, 1 to 65535")
        return value

    @field_validator("metrics_url")
    @classmethod
    def _metrics_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+(/\S*)?$", value.strip()):
            raise ValueError("expected http(s)://host:port/metrics")
        return value.strip() if value is not None else None

    @property
    def scrape_url(self) -> str | None:
        """Where the job's metrics are read: METRICS_URL, else the local METRICS_PORT."""
        if self.metrics_url:
            return self.metrics_url
        if self.metrics_port:
            return f"http://127.0.0.1:{self.metrics_port}/metrics"
        return None

    @field_validator(
        "window_duration",
        "watermark",
        "processing_trigger",
        "tick_max_ahead",
        "lake_compaction_interval",
    )
    @classmethod
    def _duration(cls, value: str) -> str:
        return normalize_duration(value)

    @field_validator("lake_retention")
    @classmethod
    def _retention(cls, value: str) -> str:
        if duration_seconds(value) < 3600:
            # A reader that started before a compaction reads the files it replaced until it
            # ends; VACUUM must leave them that long.
            raise ValueError("expected at least 1 hour: a running reader still needs old files")
        return normalize_duration(value)

    @field_validator("max_offsets_per_trigger")
    @classmethod
    def _max_offsets(cls, value: int) -> int:
        if value <= 0:
            raise ValueError("expected a whole number > 0")
        return value

    @field_validator("spark_master")
    @classmethod
    def _master(cls, value: str) -> str:
        if not re.fullmatch(r"local(\[(\*|\d+)(,\d+)?\])?|(spark|k8s|yarn)(://\S+)?", value):
            raise ValueError("expected local[*], local[N], spark://host:port, yarn or k8s://...")
        return value

    @property
    def replay_speed_factor(self) -> float | None:
        """The replay speed as a number, or None for 'max'."""
        return None if self.replay_speed == "max" else float(self.replay_speed)

    @property
    def tick_min_ms(self) -> int:
        return parse_instant_ms(self.tick_min_time)

    @property
    def tick_max_ahead_ms(self) -> int:
        return int(duration_seconds(self.tick_max_ahead) * 1000)

    @property
    def window_ms(self) -> int:
        return int(self.window_seconds * 1000)

    @property
    def watermark_ms(self) -> int:
        return int(self.watermark_seconds * 1000)

    @property
    def watermark_seconds(self) -> float:
        return duration_seconds(self.watermark)

    @property
    def window_seconds(self) -> float:
        return duration_seconds(self.window_duration)

    @property
    def trigger_seconds(self) -> float:
        return duration_seconds(self.processing_trigger)

    @property
    def lake_compaction_seconds(self) -> float:
        return duration_seconds(self.lake_compaction_interval)

    @property
    def lake_retention_hours(self) -> float:
        return duration_seconds(self.lake_retention) / 3600

    @property
    def spool_folder(self) -> Path:
        return self.spool_dir or self.tickstream_home / "spool" / self.kafka_topic

    def spool_wanted(self, live_source: bool) -> bool:
        """Whether the producer spools: PRODUCER_SPOOL, where auto means for live sources."""
        return self.producer_spool == "on" or (self.producer_spool == "auto" and live_source)

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
