"""Run a supervised vLLM from synchronous code (tests, scripts) on a background event loop.

:class:`~airlock.deploy.launcher.VllmProcess` is asyncio-native because the gateway is;
synchronous callers get the same object driven by a private loop in a daemon thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from airlock.deploy.launcher import (
    EventSink,
    SupervisorPolicy,
    VllmChildSpec,
    VllmLaunchError,
    VllmProcess,
    VllmState,
)
from airlock.deploy.vllm_env import VllmEnv

__all__ = ["BackgroundVllm"]

_T = TypeVar("_T")


class BackgroundVllm:
    """A :class:`VllmProcess` on its own event loop thread. ``with`` starts and stops it."""

    def __init__(
        self,
        spec: VllmChildSpec,
        policy: SupervisorPolicy | None = None,
        *,
        env: VllmEnv | None = None,
        on_event: EventSink | None = None,
        in_flight: Callable[[], int] | None = None,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"vllm-{spec.port}", daemon=True
        )
        self._thread.start()
        self.process = VllmProcess(spec, policy, env=env, on_event=on_event, in_flight=in_flight)

    def _call(self, coro: Coroutine[Any, Any, _T], timeout: float | None) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    @property
    def base_url(self) -> str:
        return self.process.base_url

    @property
    def root_url(self) -> str:
        return self.process.root_url

    @property
    def state(self) -> VllmState:
        return self.process.state

    @property
    def pid(self) -> int | None:
        return self.process.pid

    @property
    def restarts(self) -> int:
        return self.process.restarts

    def start(self, timeout: float | None = None) -> None:
        self._call(self.process.start(), timeout)

    def wait_ready(self, timeout: float) -> None:
        async def bounded() -> None:
            try:
                async with asyncio.timeout(timeout):
                    await self.process.wait_ready()
            except TimeoutError:
                raise VllmLaunchError(f"vLLM not ready within {timeout:.0f}s") from None

        self._call(bounded(), None)

    def stop(self, *, drain: bool = True, timeout: float | None = None) -> None:
        """Stop the child and the loop thread. Safe to call twice."""
        if self._loop.is_closed():
            return
        try:
            self._call(self.process.stop(drain=drain), timeout)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def __enter__(self) -> BackgroundVllm:
        try:
            self.start()
        except BaseException:
            self.stop(drain=False)
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
