"""Test-side helpers around `devtools.stack`: the async twin of `eventually`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from devtools.stack import (
    JWT_SECRET,
    RUNS_DIR,
    WEBHOOK_SECRET,
    WORKER_READ_HEADERS,
    Process,
    Stack,
    eventually,
    free_port,
    http_status,
)

__all__ = ["JWT_SECRET", "RUNS_DIR", "WEBHOOK_SECRET", "WORKER_READ_HEADERS", "Process", "Stack", "eventually", "eventually_async",
           "free_port", "http_status"]


async def eventually_async(check: Callable[[], Awaitable[Any]], timeout: float, what: str, pause: float = 0.2) -> Any:
    """The async twin of `eventually`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(pause)
    raise AssertionError(f"{what} did not happen within {timeout:.0f}s (last: {last!r})")
