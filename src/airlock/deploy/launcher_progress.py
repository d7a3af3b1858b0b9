"""A rich progress display for the vLLM launcher's events.

Start-up of vLLM on CPU takes minutes (model load, torch compile, warm-up); the display
shows a spinner with the elapsed time while ``/health`` is not yet answering and prints
one line per lifecycle change (ready, exited, restart backoff, draining, stopped).
Events carry metadata only, so nothing here can show request content.
"""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from airlock.deploy.launcher import LaunchEvent

__all__ = ["RichLaunchDisplay", "describe_event"]


def describe_event(event: LaunchEvent) -> str | None:
    """One line for a lifecycle event; None for the frequent ``waiting`` ticks."""
    match event.kind:
        case "spawned":
            return f"vLLM attempt {event.attempt} started (pid {event.pid})"
        case "ready":
            return f"vLLM ready after {event.elapsed:.0f}s (pid {event.pid})"
        case "exited":
            return f"vLLM exited (code {event.exit_code}); restarting"
        case "unhealthy":
            return "vLLM stopped answering /health; killing it to restart"
        case "backoff":
            return f"restarting vLLM in {event.delay:.1f}s"
        case "failed":
            return "vLLM failed too often; giving up"
        case "draining":
            return f"draining: {event.in_flight} request(s) in flight"
        case "stopped":
            return "vLLM stopped"
        case _:
            return None


class RichLaunchDisplay:
    """Use as the launcher's ``on_event``; enter it to show the live spinner."""

    def __init__(self, console: Console | None = None) -> None:
        self._console = console or Console(stderr=True)
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=self._console,
            transient=True,
        )
        self._task: TaskID | None = None
        self._last_draining: int | None = None

    def __enter__(self) -> RichLaunchDisplay:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def __call__(self, event: LaunchEvent) -> None:
        if event.kind == "spawned":
            self._reset_task(f"waiting for vLLM /health (attempt {event.attempt})")
        elif event.kind in ("ready", "failed", "stopped") and self._task is not None:
            self._progress.remove_task(self._task)
            self._task = None
        if event.kind == "waiting":
            return
        if event.kind == "draining":
            # One line per change of the count, not one per poll.
            if event.in_flight == self._last_draining:
                return
            self._last_draining = event.in_flight
        line = describe_event(event)
        if line is not None:
            self._progress.console.print(line)

    def _reset_task(self, description: str) -> None:
        if self._task is not None:
            self._progress.remove_task(self._task)
        self._task = self._progress.add_task(description, total=None)
