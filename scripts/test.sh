#!/usr/bin/env bash
# Set everything up on a fresh machine, then run the checks and all the tests:
# ruff (lint + format), mypy, then pytest (unit tests first, then integration tests
# against a real Kafka broker and real Spark, which the fixtures start).
# Extra arguments go to pytest (e.g. `-m "not integration"` for the fast tier only).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh dev

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
exec .venv/bin/pytest "$@"
