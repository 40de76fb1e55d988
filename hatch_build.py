"""Build hook: pins pyspark from versions.env, the one place that holds the Spark version."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

from hatchling.metadata.plugin.interface import MetadataHookInterface

BASE_DEPENDENCIES = [
    "confluent-kafka>=2.6",
    "pydantic>=2.9",
    "pydantic-settings>=2.7",
    "click>=8.1",
    "duckdb>=1.1",
    "deltalake>=1.0",
    "pyarrow>=17",
    "numpy>=1.26",
    "pandas>=2.2",
    "exchange-calendars>=4.5",
    "prometheus-client>=0.21",
    "starlette>=0.40",
    "uvicorn>=0.30",
]


class CustomMetadataHook(MetadataHookInterface):
    def update(self, metadata: dict[str, Any]) -> None:
        root = Path(self.root)
        # Load the parser by path: the package itself is not importable while it is being built.
        spec = importlib.util.spec_from_file_location(
            "_tickstream_versions", root / "src" / "tickstream" / "jvm" / "versions.py"
        )
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        pins = module.parse_versions_env((root / "versions.env").read_text(encoding="utf-8"))
        metadata["dependencies"] = [*BASE_DEPENDENCIES, f"pyspark=={pins['SPARK_VERSION']}"]
