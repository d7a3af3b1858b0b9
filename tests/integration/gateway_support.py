"""Helpers for running the real airlock gateway in front of real vLLM servers."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.integration.conftest import SERVED_MODEL, VllmServer

__all__ = [
    "access_records",
    "log_records",
    "openai_deployment",
    "served_requests",
    "wait_for",
    "write_config",
]

_SUCCESS = re.compile(r"^vllm:request_success_total\{[^}]*\}\s+([0-9.eE+]+)$", re.MULTILINE)


def openai_deployment(name: str, server: VllmServer, key_env: str, **extra: Any) -> dict[str, Any]:
    """An ``openai-compatible`` deployment pointing at ``server`` (key from ``key_env``)."""
    return {
        "provider": "openai-compatible",
        "name": name,
        "base_url": server.base_url,
        "api_key_env": key_env,
        "upstream_model": SERVED_MODEL,
        **extra,
    }


def write_config(path: Path, models: list[dict[str, Any]], **top: Any) -> Path:
    path.write_text(yaml.safe_dump({"models": models, **top}, sort_keys=False))
    return path


def served_requests(server: VllmServer) -> float:
    """vLLM's own count of finished requests (all finish reasons), from ``/metrics``."""
    text = httpx.get(f"{server.handle.root_url}/metrics", timeout=10).text
    return sum(float(v) for v in _SUCCESS.findall(text))


def log_records(log_text: str, event: str) -> list[dict[str, Any]]:
    """The gateway's JSON log records of one event (e.g. ``upstream_failed``)."""
    records = []
    for line in log_text.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("event") == event:
                records.append(record)
    return records


def access_records(log_text: str) -> list[dict[str, Any]]:
    """The gateway's access-log records of API calls (one per request)."""
    return [
        r for r in log_records(log_text, "request") if str(r.get("path", "")).startswith("/v1/")
    ]


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {timeout:.0f}s")
        time.sleep(interval)
