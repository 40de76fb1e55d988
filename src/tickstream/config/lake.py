"""Lake settings: where the lake is (a folder or an S3 bucket), how to reach the bucket, and
its upkeep (compaction, retention)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from tickstream.config.forms import S3_BUCKET_RE, duration_seconds, normalize_duration


class LakeSettings(BaseModel):
    output_path: str = Field(
        "data/output",
        description="Where the lake is: a folder or s3a://bucket/prefix.",
    )

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

    @model_validator(mode="after")
    def _s3_keys_in_pairs(self) -> LakeSettings:
        if bool(self.s3_access_key_id) != bool(self.s3_secret_access_key):
            raise ValueError(
                "S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY go together: set both, or neither "
                "(to use the environment's or the instance role's credentials)"
            )
        return self

    @field_validator("lake_retention")
    @classmethod
    def _retention(cls, value: str) -> str:
        if duration_seconds(value) < 3600:
            # A reader that started before a compaction reads the files it replaced until it
            # ends; VACUUM must leave them that long.
            raise ValueError("expected at least 1 hour: a running reader still needs old files")
        return normalize_duration(value)

    @field_validator("lake_compaction_interval")
    @classmethod
    def _interval(cls, value: str) -> str:
        return normalize_duration(value)

    @property
    def lake_compaction_seconds(self) -> float:
        return duration_seconds(self.lake_compaction_interval)

    @property
    def lake_retention_hours(self) -> float:
        return duration_seconds(self.lake_retention) / 3600
