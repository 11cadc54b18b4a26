"""The read server of a worker: committed state of the table partitions it owns, over HTTP.

- `GET /state/<table>?key=<key>[&wait=S&known=<status>]`: the key's committed value (200), 404
  when missing, 421 when this worker does not own the key's partition (the gateway routes by
  partition, gateway/workers.py), 503 while the partition is being restored. `wait=S` (at most
  30) waits for a missing key to appear or, with `known`, for its status to differ; it wakes after
  the commit that changed the key. Values are as of the last commit: stores hold nothing else, so
  what a client has read is never rolled back by a crash.
- `GET /fc/assignment`: which partitions of which tables this worker serves, and whether it is
  ready; the gateway builds its routes from it.
- `GET /fc/topology`: the worker's agents, their source topics, its tables, the partitions it
  holds and the lag of each (streams/runtime/topology.py); for operators (`python -m streams.topology`).
- `GET /metrics`: the worker's Prometheus metrics (streams/runtime/metrics.py), with the credential.
- `GET /fc/ready`: 200 once the worker has joined its group and restored what it was given (503
  before); the partitions it serves only to a caller with the credential.

Every endpoint but the bare `/fc/ready` answers 401 without `Authorization: Bearer <credential>`:
whole committed state (a payment's client secret included) is for the gateway, which filters it
per caller. The credential is derived from the JWT secret (`read_credential`), which the gateway
and the workers hold already, so there is no third secret to distribute or to forget rotating.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable, Mapping
from collections import defaultdict
from typing import Any

from aiohttp import web
from rocksdict import DbClosedError

from streams.partitioning import partition_for
from streams.runtime.agent import Agent
from streams.runtime.loop import StreamThread
from streams.runtime.metrics import WORKER, exposition
from streams.runtime.topology import describe

MAX_LONG_POLL_SECONDS = 30.0
# A long poll looks again at least this often: a partition that moved, or a restore, changes a
# key without a commit of this worker's.
RECHECK_SECONDS = 0.5
# How long a read of a partition this worker is about to own (a rebalance under way) waits.
MOVING_WAIT_SECONDS = 2.0


# A label that keeps the derived credential apart from any other use of the JWT secret.
READ_CREDENTIAL_PURPOSE = b"fusioncommerce/worker-reads/v1"


def read_credential(jwt_secret: str) -> str:
    """The bearer credential of the workers' read endpoints: HMAC-SHA256 of a purpose label under
    the JWT secret. Whoever holds the JWT secret can mint admin tokens anyway; nobody without it
    can compute this, and the credential reveals nothing of the secret."""
    return hmac.new(jwt_secret.encode(), READ_CREDENTIAL_PURPOSE, hashlib.sha256).hexdigest()


def presents_credential(headers: Mapping[str, str], credential: str) -> bool:
    """Whether a request's headers carry `Authorization: Bearer <credential>` (compared in constant time)."""
    return hmac.compare_digest(headers.get("Authorization", "").encode(), f"Bearer {credential}".encode())


def read_headers(jwt_secret: str) -> dict[str, str]:
    """What a caller of a worker's read endpoints sends (the gateway, tools, tests)."""
    return {"Authorization": f"Bearer {read_credential(jwt_secret)}"}


class Watchers:
    """Wakes readers waiting for a key of a table to change; notified after each commit."""

    def __init__(self) -> None:
        self._waiting: dict[tuple[str, bytes], set[asyncio.Future[None]]] = defaultdict(set)

    def notify(self, changed: list[tuple[str, list[bytes]]]) -> None:
        if not self._waiting:
            return
        for table, keys in changed:
            for key in keys:
                for future in self._waiting.pop((table, key), ()):
                    if not future.done():
                        future.set_result(None)

    async def wait(self, table: str, key: bytes, timeout: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiting = self._waiting[(table, key)]
        waiting.add(future)
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            pass
        finally:
            waiting.discard(future)
            if not waiting:
                self._waiting.pop((table, key), None)


class NotServed(Exception):
    pass


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
AUTHORIZED = web.RequestKey("authorized", bool)


class ReadServer:
    def __init__(self, thread: StreamThread, agents: list[Agent], watchers: Watchers, url: str,
                 credential: str) -> None:
        self.thread = thread
        self.running = agents
        # Agents by the table they write: what readers may read.
        self.agents = {agent.table.name: agent for agent in agents if agent.table is not None}
        self.watchers = watchers
        self.url = url
        self.credential = credential

    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._authenticate])
        app.add_routes([web.get("/state/{table}", self.read_state), web.get("/fc/assignment", self.assignment),
                        web.get("/fc/ready", self.ready)])
        app.add_routes([web.get("/metrics", self.metrics)])
        app.add_routes([web.get("/fc/topology", self.topology)])
        return app

    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        request[AUTHORIZED] = presents_credential(request.headers, self.credential)
        if not request[AUTHORIZED] and request.path != "/fc/ready":
            return web.json_response({"error": "unauthorized: send the gateway's worker-read credential"}, status=401)
        return await handler(request)

    @property
    def serving(self) -> bool:
        return self.thread.assigned_once.is_set() and not self.thread.rebalancing

    async def ready(self, request: web.Request) -> web.Response:
        body: dict[str, Any] = {"ready": self.serving}
        if request[AUTHORIZED]:
            body["partitions"] = sorted(self.thread.tasks)
        return web.json_response(body, status=200 if self.serving else 503)

    async def topology(self, request: web.Request) -> web.Response:
        return web.json_response(await describe(self.thread, self.running, self.url, self.serving))

    async def metrics(self, request: web.Request) -> web.Response:
        body, content_type = exposition(WORKER)
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def assignment(self, request: web.Request) -> web.Response:
        served = sorted(self.thread.tasks) if self.serving else []
        return web.json_response({
            "url": self.url, "ready": self.serving, "partitions": self.thread.partitions,
            "tables": {name: served for name in self.agents},
        })

    def _committed(self, agent: Agent, key: bytes) -> Any:
        task = self.thread.tasks.get(partition_for(key, self.thread.partitions))
        if task is None:
            raise NotServed
        try:
            raw = task.stores[agent.table.name].get(key)
        except DbClosedError:
            raise NotServed from None
        return None if raw is None else agent.table.model.model_validate_json(raw)

    async def read_state(self, request: web.Request) -> web.Response:
        agent = self.agents.get(request.match_info["table"])
        if agent is None:
            return web.json_response({"error": "no such table"}, status=404)
        key = request.query.get("key", "").encode()
        try:
            wait = min(max(float(request.query.get("wait", "0")), 0.0), MAX_LONG_POLL_SECONDS)
        except ValueError:
            return web.json_response({"error": "wait must be a number of seconds"}, status=400)
        known = request.query.get("known")
        started = time.monotonic()
        while True:
            elapsed = time.monotonic() - started
            try:
                state = self._committed(agent, key)
            except NotServed:
                if elapsed < MOVING_WAIT_SECONDS and (self.thread.rebalancing or not self.thread.assigned_once.is_set()):
                    await asyncio.sleep(0.05)
                    continue
                return web.json_response({"error": "not_owner"}, status=421)
            if state is None:
                if elapsed >= wait:
                    return web.json_response({"error": "not found"}, status=404)
            elif known is None or getattr(state, "status", None) != known or elapsed >= wait:
                return web.json_response(agent.to_json(state))
            await self.watchers.wait(agent.table.name, key, min(wait - elapsed, RECHECK_SECONDS))
