"""Producer settings: which symbols, from which source (simulated, replayed, yfinance), how
fast, and the spool that keeps ticks through a Kafka outage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ByteSize, Field, field_validator
from pydantic_settings import NoDecode

from tickstream.config.forms import TICKERS_FORM
from tickstream.ticks.schema import SYMBOL_RE


class ProducerSettings(BaseModel):
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

    @property
    def replay_speed_factor(self) -> float | None:
        """The replay speed as a number, or None for 'max'."""
        return None if self.replay_speed == "max" else float(self.replay_speed)

    def spool_wanted(self, live_source: bool) -> bool:
        """Whether the producer spools: PRODUCER_SPOOL, where auto means for live sources."""
        return self.producer_spool == "on" or (self.producer_spool == "auto" and live_source)
