"""Check a vLLM command line against vLLM's own argument parser.

Runs, in the vLLM venv, exactly what ``python -m vllm.entrypoints.openai.api_server`` does
before it loads a model: ``make_arg_parser(FlexibleArgumentParser())``, ``parse_args`` and
``validate_parsed_serve_args``. Nothing is started; it takes a few seconds (vLLM import).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from airlock.deploy.launcher_flags import API_SERVER_MODULE, LaunchFlagError
from airlock.deploy.vllm_env import VllmEnv, VllmSetupError

__all__ = ["VllmParseResult", "parse_many_with_vllm", "parse_with_vllm"]

# Runs in the vLLM venv; reads a JSON list of argvs on stdin, prints one JSON list.
_PARSE_SCRIPT = r"""
import contextlib, io, json, sys
from vllm.utils.argparse_utils import FlexibleArgumentParser
from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args

results = []
for argv in json.loads(sys.stdin.read()):
    parser = make_arg_parser(FlexibleArgumentParser(prog="api_server"))
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            args = parser.parse_args(argv)
        validate_parsed_serve_args(args)
    except SystemExit:
        lines = [l for l in err.getvalue().splitlines() if "error:" in l]
        msg = lines[-1].split("error:", 1)[1].strip() if lines else "argument error"
        results.append({"ok": False, "error": msg})
        continue
    except (TypeError, ValueError) as exc:
        results.append({"ok": False, "error": str(exc)})
        continue
    results.append({"ok": True, "args": vars(args)})
print(json.dumps(results, default=str))
"""


@dataclass(frozen=True, slots=True)
class VllmParseResult:
    """vLLM's verdict on one argv: the parsed namespace, or its error message."""

    args: dict[str, Any] | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


def _flags_only(argv: Sequence[str]) -> list[str]:
    items = list(argv)
    if API_SERVER_MODULE in items:
        return items[items.index(API_SERVER_MODULE) + 1 :]
    return items


def parse_many_with_vllm(
    env: VllmEnv, argvs: Sequence[Sequence[str]], *, timeout: float = 300.0
) -> list[VllmParseResult]:
    """Parse each argv (flags, or a full ``python -m ...`` command) with vLLM's parser.

    One interpreter for all of them: importing vLLM is the slow part.
    """
    payload = json.dumps([_flags_only(argv) for argv in argvs])
    try:
        proc = subprocess.run(
            [str(env.python), "-c", _PARSE_SCRIPT],
            input=payload,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise VllmSetupError(
            f"vLLM's argument parser did not answer within {timeout:.0f}s"
        ) from exc
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        raise VllmSetupError(f"vLLM's argument parser failed (exit {proc.returncode}): {tail[0]}")
    raw = json.loads(proc.stdout.strip().splitlines()[-1])
    if not isinstance(raw, list) or len(raw) != len(argvs):
        raise VllmSetupError("vLLM's argument parser printed an unexpected result")
    return [
        VllmParseResult(args=item.get("args"), error=None)
        if item.get("ok")
        else VllmParseResult(args=None, error=str(item.get("error")))
        for item in raw
    ]


def parse_with_vllm(env: VllmEnv, argv: Sequence[str], *, timeout: float = 300.0) -> dict[str, Any]:
    """Parse one argv; the parsed namespace as a dict (non-JSON values become strings).

    Raises :class:`LaunchFlagError` with vLLM's complaint when vLLM rejects the flags.
    """
    (result,) = parse_many_with_vllm(env, [argv], timeout=timeout)
    if result.args is None:
        raise LaunchFlagError(f"vLLM rejects the flags: {result.error}")
    return result.args
