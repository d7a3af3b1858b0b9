#!/usr/bin/env bash
# Set up .venv and run the whole test suite: lint, types, the default tier, then the
# slow tiers (real vLLM integration, load). `.ci/run` calls this script.
#   scripts/test.sh            everything
#   scripts/test.sh --fast     lint, types and the default tier only
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
./scripts/services.sh

run_pytest() {
    # pytest exits 5 when it collected no test: that is a failure here, never a pass.
    local rc=0
    .venv/bin/python -m pytest "$@" || rc=$?
    if [ "$rc" -eq 5 ]; then
        echo "test: pytest collected no tests for: $*" >&2
        return 1
    fi
    return "$rc"
}

echo "== ruff"
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
echo "== mypy (strict, src/)"
.venv/bin/mypy

echo "== default tier"
run_pytest -m "not vllm and not slow" -p no:cacheprovider

if [ "${1:-}" = "--fast" ]; then
    exit 0
fi

echo "== vLLM integration tier"
./scripts/setup-vllm.sh
run_pytest -m vllm -p no:cacheprovider

echo "== slow tier (load, soak)"
run_pytest -m "slow and not vllm" -p no:cacheprovider
