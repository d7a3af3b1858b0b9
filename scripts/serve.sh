#!/usr/bin/env bash
# Quickstart: set up .venv, then serve the embedded model (no GPU, no API key, no internet).
# Extra arguments go to `airlock serve` (e.g. --port 8081 or --config airlock.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
exec .venv/bin/airlock serve "$@"
