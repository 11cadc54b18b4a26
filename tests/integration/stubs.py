"""Test fixtures that play a faulty outside service: a Stripe that accepts connections and never
answers. Not a fake of Stripe: it only holds connections open."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from tests.harness import free_port


class HangingServer:
    """Accepts TCP connections on 127.0.0.1 and never sends a byte; counts what it accepted."""

    def __init__(self) -> None:
        self.port = free_port()
        self.accepted = 0
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        await reader.read()  # until the client gives up and closes
        writer.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(asyncio.start_server(self._hold, "127.0.0.1", self.port))
        self._started.set()
        self._loop.run_forever()

    @contextmanager
    def running(self) -> Iterator[HangingServer]:
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        self._started.wait(10)
        try:
            yield self
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            thread.join(10)
