#!/usr/bin/env bash
# Set everything up on a fresh machine, then run tickstream on it (`tickstream up`).
# Extra arguments go to `tickstream up` (see `.venv/bin/tickstream up --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/tickstream up "$@"
