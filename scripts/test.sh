#!/usr/bin/env bash
# Set everything up on a fresh machine, then run the checks and all the tests:
# ruff (lint + format), mypy, then pytest (unit tests first, then integration tests
# against a real Kafka broker and real Spark, which the fixtures start).
# Extra arguments go to pytest (e.g. `-m "not integration"` for the fast tier only).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh dev

# The dashboard's browser test drives Debian's Chromium (Playwright never downloads a browser).
if [ ! -x /usr/bin/chromium ]; then
  echo "installing Debian's chromium (for the dashboard's browser test)"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
exec .venv/bin/pytest "$@"
