"""The vLLM child's command line and environment, with the compliance defaults enforced.

The planner decides the engine flags (context length, sequences, dtype, ...); the
launcher owns the flags that bind the server (model path, host, port, served model name)
and the ones that decide what the child may log. Request content must never reach the
child's log (invariant 1), so:

- request and output logging are switched off explicitly (``--no-enable-log-requests``,
  ``--no-enable-log-outputs``; vLLM 0.32 defaults them off, we do not rely on it),
  ``--max-log-len 0`` in case a future default flips, no error stack traces (they can
  carry request fragments) and no uvicorn access log;
- engine flags that would turn any of that back on are refused, not silently dropped;
- vLLM's environment switches that log content (``VLLM_DEBUG_LOG_API_SERVER_RESPONSE``,
  DEBUG logging, a custom logging config) are overridden in the child's environment;
- the API key travels in ``VLLM_API_KEY``, never on the command line (visible in ``ps``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from airlock.errors import BadRequestError

__all__ = [
    "API_SERVER_MODULE",
    "COMPLIANCE_FLAGS",
    "LaunchFlagError",
    "VllmCommand",
    "build_command",
    "engine_args_from_argv",
]

API_SERVER_MODULE = "vllm.entrypoints.openai.api_server"

#: Always appended last so nothing before them can re-enable content logging.
COMPLIANCE_FLAGS: tuple[str, ...] = (
    "--no-enable-log-requests",
    "--no-enable-log-outputs",
    "--max-log-len",
    "0",
    "--no-log-error-stack",
    "--disable-uvicorn-access-log",
)

# Flags the launcher sets itself; a planner argv may carry them, they are replaced.
_OWNED_WITH_VALUE = frozenset({"--model", "--host", "--port", "--served-model-name"})
# Flags that would put request content (or the key) where it does not belong.
_REFUSED = {
    "--enable-log-requests": "request logging must stay off",
    "--enable-log-outputs": "output logging must stay off",
    "--log-error-stack": "error stack traces can carry request content",
    "--max-log-len": "the launcher sets --max-log-len itself",
    "--api-key": "pass the API key through VLLM_API_KEY, not the command line",
    "--uds": "the launcher binds a TCP host and port",
}
_REFUSED_LOG_LEVELS = frozenset({"debug", "trace"})

# Child environment: these are forced, whatever the parent's environment says.
_FORCED_ENV = {
    "VLLM_LOGGING_LEVEL": "INFO",
    "VLLM_CONFIGURE_LOGGING": "1",
    "VLLM_DEBUG_LOG_API_SERVER_RESPONSE": "false",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
    "PYTHONUNBUFFERED": "1",
}
_DROPPED_ENV = ("VLLM_LOGGING_CONFIG_PATH", "VLLM_API_KEY")


class LaunchFlagError(BadRequestError):
    """A launch flag is not allowed (names the flag, never a value)."""

    default_code = "invalid_launch_flag"


@dataclass(frozen=True, slots=True)
class VllmCommand:
    """What to exec: the argv and the full child environment."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(repr=False)


def _flag_name(token: str) -> str:
    return token.split("=", 1)[0]


def engine_args_from_argv(argv: Sequence[str]) -> list[str]:
    """Strip a program prefix from a full vLLM command line, keeping the flags.

    Accepts ``python -m vllm.entrypoints.openai.api_server --x ...``,
    ``vllm serve MODEL --x ...`` or a bare flag list; the model path is the launcher's
    business.
    """
    items = list(argv)
    if API_SERVER_MODULE in items:
        return items[items.index(API_SERVER_MODULE) + 1 :]
    if "serve" in items:
        rest = items[items.index("serve") + 1 :]
        # `vllm serve MODEL ...`: the first positional is the model.
        return rest[1:] if rest and not rest[0].startswith("-") else rest
    # Anything else must be flags only; a leading positional is refused by build_command
    # rather than guessed to be a program name.
    return items


def _strip_owned(args: Sequence[str]) -> list[str]:
    kept: list[str] = []
    skip_value = False
    for token in args:
        if skip_value:
            skip_value = False
            if not token.startswith("-"):
                continue
        name = _flag_name(token)
        if name in _OWNED_WITH_VALUE:
            skip_value = "=" not in token
            continue
        kept.append(token)
    return kept


def _check_refused(args: Sequence[str]) -> None:
    for index, token in enumerate(args):
        name = _flag_name(token)
        if name in _REFUSED:
            raise LaunchFlagError(f"launch flag {name} is not allowed: {_REFUSED[name]}")
        if name == "--uvicorn-log-level":
            value = token.split("=", 1)[1] if "=" in token else _next(args, index)
            if value.lower() in _REFUSED_LOG_LEVELS:
                raise LaunchFlagError(
                    "launch flag --uvicorn-log-level may not be debug or trace: "
                    "those levels log request bodies"
                )
        if not token.startswith("-") and index == 0:
            raise LaunchFlagError("engine arguments must start with a flag (got a positional)")


def _next(args: Sequence[str], index: int) -> str:
    return args[index + 1] if index + 1 < len(args) else ""


def build_command(
    *,
    python: Path,
    model_dir: Path,
    host: str,
    port: int,
    served_model_name: str,
    engine_args: Sequence[str] = (),
    api_key: str | None = None,
    base_env: Mapping[str, str] | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> VllmCommand:
    """The child's argv and environment for one launch.

    ``engine_args`` are the planner's flags (a full command line is fine, see
    :func:`engine_args_from_argv`); launcher-owned flags in it are replaced, refused
    flags raise :class:`LaunchFlagError`.
    """
    if not 0 < port < 65536:
        raise LaunchFlagError(f"port must be in 1..65535, got {port}")
    if not served_model_name or any(ch.isspace() for ch in served_model_name):
        raise LaunchFlagError("served model name must be non-empty and contain no whitespace")
    flags = _strip_owned(engine_args_from_argv(engine_args))
    _check_refused(flags)
    argv = (
        str(python),
        "-m",
        API_SERVER_MODULE,
        "--model",
        str(model_dir),
        "--host",
        host,
        "--port",
        str(port),
        "--served-model-name",
        served_model_name,
        *flags,
        *COMPLIANCE_FLAGS,
    )
    env = dict(os.environ if base_env is None else base_env)
    for name in _DROPPED_ENV:
        env.pop(name, None)
    for name in (*_DROPPED_ENV, *_FORCED_ENV):
        if name in (extra_env or {}):
            raise LaunchFlagError(f"environment variable {name} is set by the launcher")
    env.update(extra_env or {})
    env.update(_FORCED_ENV)
    if api_key is not None:
        if not api_key:
            raise LaunchFlagError("API key must not be empty")
        env["VLLM_API_KEY"] = api_key
    return VllmCommand(argv=argv, env=env)
