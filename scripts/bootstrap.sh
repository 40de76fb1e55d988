#!/usr/bin/env bash
# Create or reuse .venv, install tickstream into it, and fill the JVM jar cache.
# Usage: scripts/bootstrap.sh [extras]   (e.g. "dev"); sourced steps are idempotent and quick
# when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

extras="${1:-}"
python="${PYTHON:-python3}"

if ! command -v "$python" >/dev/null 2>&1; then
  echo "tickstream: error: $python not found; install Python 3.11+ (or set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "tickstream: error: $("$python" -V 2>&1) is too old; install Python 3.11+ (or set PYTHON=...)" >&2
  exit 1
fi
for tool in java mvn; do
  if ! command -v "$tool" >/dev/null 2>&1 && { [ "$tool" != java ] || [ -z "${JAVA_HOME:-}" ]; }; then
    echo "tickstream: error: '$tool' not found; install a JDK 17+ and Maven (e.g. apt-get install openjdk-17-jdk-headless maven)" >&2
    exit 1
  fi
done

if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $("$python" -V 2>&1)"
  "$python" -m venv .venv
fi

# Reinstall only when what defines the install changed.
spec="${extras:+.[$extras]}"
spec="${spec:-.}"
stamp=".venv/.tickstream-install"
want="$spec $(cat pyproject.toml versions.env hatch_build.py | sha256sum | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "installing tickstream ($spec) into .venv (the first time takes a few minutes: pyspark is large)"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e "$spec"
  echo "$want" > "$stamp"
fi

.venv/bin/tickstream jars fetch
# Java's class-data sharing for the Spark driver: the job starts seconds sooner (docs/engine.md).
.venv/bin/tickstream jars archive

# The tests' reference for the activity bars, mlfinpy, in a venv of its own (it pins numpy < 1.27).
if [[ ",${extras:-}," == *",dev,"* ]]; then
  .venv/bin/python -m tests.mlfinpy.reference >/dev/null
fi
