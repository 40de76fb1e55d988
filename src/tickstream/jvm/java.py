"""Finding Java (JAVA_HOME or PATH), at least version 17, with a clear error otherwise."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tickstream.errors import EnvironmentProblem

MIN_JAVA = 17


@dataclass(frozen=True)
class Java:
    executable: Path
    major: int


def java_executable() -> Path | None:
    """The ``java`` that Spark's and Kafka's launchers run: JAVA_HOME's, else PATH's."""
    java_home = os.environ.get("JAVA_HOME")
    candidate = Path(java_home) / "bin" / "java" if java_home else None
    if candidate is None or not candidate.is_file():
        found = shutil.which("java")
        candidate = Path(found) if found else None
    return candidate


def find_java() -> Java:
    """Java from JAVA_HOME or PATH, at least version 17; a clear error otherwise."""
    candidate = java_executable()
    if candidate is None:
        raise EnvironmentProblem(
            "Java was not found (neither JAVA_HOME nor 'java' on PATH)",
            f"install a JDK {MIN_JAVA}+ (e.g. apt-get install openjdk-17-jdk-headless) "
            "and set JAVA_HOME",
        )
    major = java_major_version(candidate)
    if major < MIN_JAVA:
        raise EnvironmentProblem(
            f"Java {major} at {candidate} is too old: Kafka 4 and Spark 4 need Java {MIN_JAVA}+",
            f"install a JDK {MIN_JAVA}+ and point JAVA_HOME at it",
        )
    return Java(candidate, major)


def java_major_version(java: Path) -> int:
    out = subprocess.run(
        [str(java), "-version"], capture_output=True, text=True, check=False, timeout=60
    )
    return parse_java_major(out.stderr + out.stdout)


def parse_java_major(version_output: str) -> int:
    """The major version from ``java -version`` output ('1.8.0_392' -> 8, '17.0.15' -> 17)."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if not match:
        raise EnvironmentProblem(
            f"could not read the Java version from: {version_output.strip()[:200]!r}",
            "check that JAVA_HOME points at a working JDK",
        )
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major
