"""Endpoints: the job's Prometheus metrics and the dashboard, where they listen and where the
dashboard scrapes the metrics."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, field_validator


class EndpointSettings(BaseModel):
    metrics_port: int | None = Field(
        None, description="Serve the job's Prometheus metrics on this port; unset = off."
    )
    metrics_host: str = Field("127.0.0.1", description="Address the metrics endpoint listens on.")
    dashboard_port: int = Field(8050, description="Port of `tickstream dashboard`.")
    dashboard_host: str = Field("127.0.0.1", description="Address the dashboard listens on.")
    dashboard_token: SecretStr | None = Field(
        None,
        description="The dashboard's credential: the password of HTTP basic auth (any user "
        "name) or a bearer token. Required when DASHBOARD_HOST is not a loopback address.",
    )
    dashboard_token_file: Path | None = Field(
        None,
        description="... or read from this file (its first line; a Docker or Compose secret).",
    )
    dashboard_public: bool = Field(
        False,
        description="Serve the dashboard on a non-loopback address without a credential, to "
        "anyone who can reach it.",
    )
    metrics_url: str | None = Field(
        None,
        description="Where the dashboard scrapes the job's metrics; unset = the local "
        "METRICS_PORT (http://127.0.0.1:METRICS_PORT/metrics).",
    )

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
