"""Reads from the workers' tables over HTTP.

Any worker answers: Faust routes `GET /state/<table>?key=` to the worker that owns the key's
partition. A worker that is down is skipped; a 503 (a rebalance is moving partitions) is retried
until `unavailable_after` seconds have passed.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from gateway.errors import ApiError

RETRY_PAUSE = 0.2


class WorkerReads:
    def __init__(self, session: aiohttp.ClientSession, urls: tuple[str, ...], unavailable_after: float = 15.0) -> None:
        self.session = session
        self.urls = urls
        self.unavailable_after = unavailable_after

    async def state(self, table: str, key: str, wait: float = 0.0, known: str | None = None) -> dict[str, Any] | None:
        params = {"key": key, "wait": f"{wait:.3f}"}
        if known is not None:
            params["known"] = known
        deadline = time.monotonic() + self.unavailable_after
        last_problem = "no worker configured (FC_WORKER_URLS)"
        while True:
            for url in self.urls:
                try:
                    async with self.session.get(
                        f"{url}/state/{table}", params=params, timeout=aiohttp.ClientTimeout(total=wait + 15)
                    ) as response:
                        if response.status == 200:
                            return await response.json()  # type: ignore[no-any-return]
                        if response.status == 404:
                            return None
                        last_problem = f"{url} answered {response.status}"
                except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as exc:
                    last_problem = f"{url}: {exc.__class__.__name__}"
            if time.monotonic() > deadline:
                raise ApiError(503, "unavailable", "no worker could serve the read; retry shortly",
                               {"last_problem": last_problem})
            await asyncio.sleep(RETRY_PAUSE)

    async def readiness(self) -> list[dict[str, Any]]:
        answers = []
        for url in self.urls:
            try:
                async with self.session.get(f"{url}/fc/ready", timeout=aiohttp.ClientTimeout(total=3)) as response:
                    answers.append({"url": url, **(await response.json())})
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
                answers.append({"url": url, "ready": False, "problem": exc.__class__.__name__})
        return answers
