"""Operating-system helpers for the launcher: addresses and ports, the child's process group.

vLLM forks an engine-core and worker processes, so the launcher signals and waits for the
child's whole process group, never just its pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import time

__all__ = ["die_with_parent", "host_for_url", "port_is_free", "signal_group", "wait_group_gone"]

# How long to wait for a SIGKILLed process group to disappear (zombies are reaped by init).
_GROUP_EXIT_WAIT = 10.0
_PR_SET_PDEATHSIG = 1


def host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def port_is_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def wait_group_gone(pgid: int) -> None:
    """Poll until no process of group ``pgid`` is left, for at most ``_GROUP_EXIT_WAIT``."""
    deadline = time.monotonic() + _GROUP_EXIT_WAIT
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        except PermissionError:  # the pgid was reused by someone else's group
            return
        await asyncio.sleep(0.02)


def die_with_parent() -> None:
    """In the child, before exec: ask Linux to send SIGTERM when the parent dies, so a
    killed gateway never leaves a vLLM server holding the GPU (and its port)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
