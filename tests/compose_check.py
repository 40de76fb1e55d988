"""Checks that deploy/ stays in step with the code: versions, settings, users.

The Compose file is loaded by compose-go (tools/composecheck), the library Docker Compose v2
uses, which validates it against the Compose specification's schema.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tickstream.config import Settings, env_name
from tickstream.jvm.versions import Versions

REPO = Path(__file__).resolve().parents[1]
TOOL_SRC = REPO / "tools" / "composecheck"
TOOL_BIN = REPO / ".tickstream" / "bin" / "composecheck"
TICKSTREAM_SERVICES = ("bars-job", "producer", "dashboard")


class ComposeInvalid(Exception):
    pass


def build_tool() -> Path:
    """Build tools/composecheck with Go (modules from the Go module proxy)."""
    go = shutil.which("go") or (
        "/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None
    )
    if go is None:
        raise FileNotFoundError("go")
    sources = [*TOOL_SRC.glob("*.go"), TOOL_SRC / "go.mod", TOOL_SRC / "go.sum"]
    if TOOL_BIN.exists() and all(TOOL_BIN.stat().st_mtime >= s.stat().st_mtime for s in sources):
        return TOOL_BIN
    TOOL_BIN.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([go, "build", "-o", str(TOOL_BIN), "."], cwd=TOOL_SRC, check=True, timeout=600)
    return TOOL_BIN


def load_project(compose: Path, env_file: Path | None = None) -> dict[str, Any]:
    cmd = [str(build_tool())]
    if env_file is not None:
        cmd += ["--env-file", str(env_file)]
    env = {k: v for k, v in os.environ.items() if k not in set(settings_vars())}
    result = subprocess.run(
        [*cmd, str(compose)], capture_output=True, text=True, env=env, timeout=120
    )
    if result.returncode != 0:
        raise ComposeInvalid(result.stderr.strip())
    project: dict[str, Any] = json.loads(result.stdout)
    return project


def settings_vars() -> list[str]:
    return [env_name(f) for f in Settings.model_fields]


def expected_images(v: Versions) -> dict[str, str]:
    spark = f"spark:{v.spark}-scala{v.scala_binary}-java17-python3-ubuntu"
    kafka = f"apache/kafka:{v.kafka}"
    return {"kafka": kafka, "topic-init": kafka, "spark-master": spark, "spark-worker": spark}


def problems(
    project: dict[str, Any], compose_text: str, versions: Versions, env_example: str
) -> list[str]:
    found: list[str] = []
    services = project["services"]
    for name, image in expected_images(versions).items():
        got = services.get(name, {}).get("image")
        if got != image:
            found.append(f"{name}: image {got} is not {image} (versions.env)")
    for name in TICKSTREAM_SERVICES:
        env = services.get(name, {}).get("environment") or {}
        missing = [v for v in settings_vars() if v not in env]
        if missing:
            found.append(f"{name}: settings not wired through: {', '.join(missing)}")
        if str(services.get(name, {}).get("user", "")).startswith("0"):
            found.append(f"{name}: runs as root")
    job_env = services.get("bars-job", {}).get("environment") or {}
    if job_env.get("SPARK_MASTER") != "spark://spark-master:7077":
        found.append("bars-job: not submitted to the compose Spark master")
    if re.search(r"^version\s*:", compose_text, re.MULTILINE):
        found.append("a top-level 'version' key (Compose v2 files have none)")
    if re.search(r"chmod\s+(-R\s+)?[0-7]?77[67]", compose_text):
        found.append("a world-writable chmod")
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", env_example, re.MULTILINE))
    listed |= set(re.findall(r"\b([A-Z][A-Z0-9_]+)=", env_example))
    undocumented = [v for v in settings_vars() if v not in listed]
    if undocumented:
        found.append(f".env.example does not list: {', '.join(undocumented)}")
    return found
