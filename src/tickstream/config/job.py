"""Settings of the bars job: the bars (time bars, and the activity bars that are off by
default), what counts as a valid and an on-time tick, how the job reads the topic, and where it
publishes."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from tickstream.config.forms import (
    Thresholds,
    duration_seconds,
    normalize_duration,
    optional_topic,
    parse_instant_ms,
    topic_name,
)

ACTIVITY_KINDS = ("tick", "volume", "dollar")


class JobSettings(BaseModel):
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
    spark_shuffle_partitions: int = Field(
        4, description="Spark shuffle partitions of the bars job (more on a cluster)."
    )
    activity_bars_topic: str | None = Field(
        "activity-bars",
        description="Publish every closed tick, volume and dollar bar to this Kafka topic, "
        "in BARS_TOPIC's transactions; off = don't.",
    )
    tick_bars: str = Field(
        "off", description="Also cut a bar every N ticks: N, SYMBOL=N,...,*=N, or off."
    )
    volume_bars: str = Field(
        "off", description="Also cut a bar every V of volume: V, SYMBOL=V,...,*=V, or off."
    )
    dollar_bars: str = Field(
        "off",
        description="Also cut a bar every D of price x volume: D, SYMBOL=D,...,*=D, or off.",
    )

    @field_validator("window_duration", "watermark", "processing_trigger", "tick_max_ahead")
    @classmethod
    def _duration(cls, value: str) -> str:
        return normalize_duration(value)

    @field_validator("max_message_bytes", "spark_shuffle_partitions")
    @classmethod
    def _positive_int(cls, value: int) -> int:
        if value <= 0:
            raise ValueError("expected a whole number > 0")
        return value

    @field_validator("bars_topic", "bars_live_topic", "activity_bars_topic")
    @classmethod
    def _optional_topic(cls, value: str | None) -> str | None:
        return optional_topic(value)

    @field_validator("tick_bars", "volume_bars", "dollar_bars")
    @classmethod
    def _thresholds(cls, value: str) -> str:
        thresholds = Thresholds.parse(value)
        return "off" if thresholds is None else thresholds.text()

    @field_validator("tick_min_time")
    @classmethod
    def _min_time(cls, value: str) -> str:
        parse_instant_ms(value)
        return value

    @field_validator("dlq_topic")
    @classmethod
    def _dlq(cls, value: str | None) -> str | None:
        return None if value is None else topic_name(value)

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

    def thresholds(self, kind: str) -> Thresholds | None:
        """The thresholds of activity bars of ``kind`` (tick, volume, dollar), or None: off."""
        if kind not in ACTIVITY_KINDS:
            raise ValueError(f"unknown bar kind {kind!r}")
        return Thresholds.parse(getattr(self, f"{kind}_bars"))

    @property
    def activity_kinds(self) -> tuple[str, ...]:
        """The kinds of activity bar the job cuts (none by default)."""
        return tuple(kind for kind in ACTIVITY_KINDS if self.thresholds(kind) is not None)
