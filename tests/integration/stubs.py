"""Test fixtures that play a faulty outside service: a Stripe that accepts connections and never
answers. Not a fake of Stripe: it only holds connections open. And stripe-mock behind a proxy that
keeps the one piece of state these tests need from real Stripe: an intent's metadata."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Self
from contextlib import contextmanager
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import web

from tests.harness import free_port


class LoopThreadServer:
    """A server on 127.0.0.1 whose event loop runs in a thread of its own while `running()`.
    Subclasses serve in `_serve` (on that loop) and may release waiters in `_release`."""

    def __init__(self) -> None:
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self) -> None:
        raise NotImplementedError

    def _release(self) -> None:
        """On the server's loop, before it stops: let handlers still waiting finish."""

    async def _cleanup(self) -> None:
        """On the server's loop, once stopped."""

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._cleanup())

    @contextmanager
    def running(self) -> Iterator[Self]:
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        self._started.wait(10)
        try:
            yield self
        finally:
            self._loop.call_soon_threadsafe(self._release)
            self._loop.call_soon_threadsafe(self._loop.stop)
            thread.join(10)


class HangingServer(LoopThreadServer):
    """Accepts TCP connections on 127.0.0.1 and never sends a byte; counts what it accepted."""

    def __init__(self) -> None:
        super().__init__()
        self.accepted = 0

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        await reader.read()  # until the client gives up and closes
        writer.close()

    async def _serve(self) -> None:
        await asyncio.start_server(self._hold, "127.0.0.1", self.port)


class MetadataKeepingStripe(LoopThreadServer):
    """stripe-mock behind a proxy that keeps what real Stripe keeps and stripe-mock forgets: the
    metadata a PaymentIntent was created with, returned with that intent by every later answer
    about it (a retrieve, a capture). Everything else passes through unchanged. Retrieves of the
    intent ids in `hang` are never answered. `retrieved` lists the intent ids asked for."""

    def __init__(self, upstream: str) -> None:
        super().__init__()
        self.upstream = upstream.rstrip("/")
        self.hang: set[str] = set()
        self.retrieved: list[str] = []
        self.metadata: dict[str, dict[str, str]] = {}
        self._stopping: asyncio.Event | None = None
        self._runner: web.AppRunner

    async def _forward(self, request: web.Request) -> web.Response:
        body = await request.read()
        parts = request.path.split("/")  # "", "v1", "payment_intents", <id>, [action]
        intent_id = parts[3] if len(parts) > 3 and parts[2] == "payment_intents" else None
        if request.method == "GET" and intent_id is not None and len(parts) == 4:
            self.retrieved.append(intent_id)
            if intent_id in self.hang:
                assert self._stopping is not None
                await self._stopping.wait()
                return web.Response(status=503)
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() not in ("host", "content-length", "transfer-encoding", "accept-encoding")}
        async with aiohttp.ClientSession() as session, session.request(
                request.method, self.upstream + request.path_qs, headers=headers, data=body) as answer:
            payload, status = await answer.read(), answer.status
            content_type = answer.headers.get("Content-Type", "application/json")
        if status == 200 and parts[2:3] == ["payment_intents"]:
            intent = json.loads(payload)
            if request.method == "POST" and intent_id is None:  # a create: remember what it was given
                self.metadata[intent["id"]] = {key[len("metadata["):-1]: value for key, value in
                                               parse_qsl(body.decode()) if key.startswith("metadata[")}
            intent["metadata"] = self.metadata.get(intent["id"], {})
            payload = json.dumps(intent).encode()
        return web.Response(body=payload, status=status, headers={"Content-Type": content_type})

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def _release(self) -> None:
        assert self._stopping is not None
        self._stopping.set()

    async def _cleanup(self) -> None:
        await self._runner.cleanup()
