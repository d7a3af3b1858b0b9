"""The launcher's rich progress display: one line per lifecycle change, no tick spam."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from airlock.deploy.launcher import LaunchEvent
from airlock.deploy.launcher_progress import RichLaunchDisplay, describe_event


def ev(kind: str, **kw: object) -> LaunchEvent:
    fields: dict[str, object] = {"attempt": 1, "elapsed": 0.0, "pid": 42, **kw}
    return LaunchEvent(kind=kind, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("event", "line"),
    [
        (ev("spawned"), "vLLM attempt 1 started (pid 42)"),
        (ev("ready", elapsed=131.6), "vLLM ready after 132s (pid 42)"),
        (ev("exited", exit_code=-9), "vLLM exited (code -9); restarting"),
        (ev("unhealthy"), "vLLM stopped answering /health; killing it to restart"),
        (ev("backoff", delay=2.0), "restarting vLLM in 2.0s"),
        (ev("failed"), "vLLM failed too often; giving up"),
        (ev("draining", in_flight=3), "draining: 3 request(s) in flight"),
        (ev("stopped"), "vLLM stopped"),
        (ev("waiting", elapsed=3.0), None),
        (ev("something-new"), None),
    ],
)
def test_describe_event(event: LaunchEvent, line: str | None) -> None:
    assert describe_event(event) == line


def test_display_prints_changes_once_and_skips_ticks() -> None:
    out = io.StringIO()
    display = RichLaunchDisplay(Console(file=out, width=120, force_terminal=False))
    with display:
        for event in [
            ev("spawned"),
            ev("waiting", elapsed=1.0),
            ev("waiting", elapsed=2.0),
            ev("ready", elapsed=3.0),
            ev("draining", in_flight=2),
            ev("draining", in_flight=2),
            ev("draining", in_flight=0),
            ev("stopped"),
        ]:
            display(event)
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    assert lines == [
        "vLLM attempt 1 started (pid 42)",
        "vLLM ready after 3s (pid 42)",
        "draining: 2 request(s) in flight",
        "draining: 0 request(s) in flight",
        "vLLM stopped",
    ]
