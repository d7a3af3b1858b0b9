#!/usr/bin/env bash
# Create .venv at the repo root and install airlock with its development tools.
# Idempotent: a second run only checks that everything is in place.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
if ! command -v "$PYTHON" >/dev/null 2>&1; then
    PYTHON=python3
fi

if [ ! -x .venv/bin/python ]; then
    echo "bootstrap: creating .venv with $("$PYTHON" --version)"
    "$PYTHON" -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip wheel
fi

stamp=.venv/.airlock-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    # llama-cpp-python compiles from source the first time (about 7 minutes on 2 cores);
    # pip caches the wheel, so later installs take seconds.
    echo "bootstrap: installing airlock and its dependencies into .venv"
    CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
        .venv/bin/python -m pip install --quiet -e ".[dev]"
    touch "$stamp"
fi
