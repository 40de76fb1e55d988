"""The pinned versions of Spark, Scala, Kafka and Delta Lake, read from ``versions.env``.

``versions.env`` is the one place that pins them. The build hook reads it to pin
pyspark, the jar resolver passes it to Maven, and the images read it too. A wheel
carries a copy under ``tickstream/_build``; a source checkout reads the file at
its root.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the tickstream package


def build_dir() -> Path:
    """The folder that holds ``versions.env`` and ``jvm/``: the wheel's copy or the checkout."""
    packaged = _PACKAGE_DIR / "_build"
    if (packaged / "versions.env").is_file():
        return packaged
    return _PACKAGE_DIR.parent.parent


def parse_versions_env(text: str) -> dict[str, str]:
    """Parse ``KEY=VALUE`` lines, skipping blanks and ``#`` comments.

    >>> parse_versions_env("# pins\\nSPARK_VERSION=4.0.0\\n")
    {'SPARK_VERSION': '4.0.0'}
    """
    pins: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"versions.env: expected KEY=VALUE, got {raw!r}")
        pins[key.strip()] = value.strip()
    return pins


@dataclass(frozen=True)
class Versions:
    spark: str
    scala_binary: str
    kafka: str
    delta: str
    hadoop: str
    s3proxy: str

    @property
    def connector_artifact(self) -> str:
        return f"org.apache.spark:spark-sql-kafka-0-10_{self.scala_binary}:{self.spark}"


@cache
def pinned() -> Versions:
    """The versions pinned in ``versions.env``."""
    pins = parse_versions_env((build_dir() / "versions.env").read_text(encoding="utf-8"))
    return Versions(
        spark=pins["SPARK_VERSION"],
        scala_binary=pins["SCALA_BINARY_VERSION"],
        kafka=pins["KAFKA_VERSION"],
        delta=pins["DELTA_VERSION"],
        hadoop=pins["HADOOP_VERSION"],
        s3proxy=pins["S3PROXY_VERSION"],
    )
