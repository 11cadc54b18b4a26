"""The gateway routes each read to the worker serving the key's partition (no Kafka: tiny aiohttp
servers on 127.0.0.1 pose as workers with the `/fc/assignment` and `/state/<table>` contract)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway import workers
from gateway.auth import auth_middleware
from gateway.catalog_view import CatalogView
from gateway.errors import ApiError, error_middleware
from gateway.routes import setup_routes
from gateway.services import SERVICES, Services
from gateway.views import health
from gateway.views.health import READINESS, Readiness
from gateway.tokens import mint
from gateway.workers import TABLES, UNKNOWN, WorkerReads, kafka_workers
from streams.partitioning import partition_for
from streams.runtime.reads import read_headers
from streams.settings import Settings
from tests.unit.doubles import RecordingWriter

PARTITIONS = 4


@dataclass
class FakeWorker:
    """Serves `owned` partitions of every table; any other key is a 421, as the runtime answers."""

    name: str
    owned: set[int]
    url: str = ""
    hits: list[str] = field(default_factory=list)

    def app(self) -> web.Application:
        async def assignment(request: web.Request) -> web.Response:
            return web.json_response({"url": self.url, "ready": True, "partitions": PARTITIONS,
                                      "tables": {table: sorted(self.owned) for table in TABLES}})

        async def state(request: web.Request) -> web.Response:
            key = request.query["key"]
            if partition_for(key.encode(), PARTITIONS) not in self.owned:
                return web.json_response({"error": "not_owner"}, status=421)
            self.hits.append(key)
            return web.json_response({"key": key, "served_by": self.name})

        app = web.Application()
        app.router.add_get("/fc/assignment", assignment)
        app.router.add_get("/state/{table}", state)
        return app


def key_on(partitions: set[int]) -> str:
    return next(k for k in (f"acme/SKU-{i}" for i in range(1000)) if partition_for(k.encode(), PARTITIONS) in partitions)


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def start_worker(serve_app: Callable[[web.Application], Awaitable[str]]
                 ) -> Callable[[str, set[int]], Awaitable[FakeWorker]]:
    async def start(name: str, owned: set[int]) -> FakeWorker:
        worker = FakeWorker(name, owned)
        worker.url = await serve_app(worker.app())
        return worker

    return start


@pytest.fixture(autouse=True)
def quick_refresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "MIN_REFRESH_SECONDS", 0.05)
    monkeypatch.setattr(workers, "RETRY_PAUSE", 0.02)


async def test_each_read_reaches_the_worker_that_serves_its_partition(session, start_worker):
    first, second = await start_worker("first", {0, 1}), await start_worker("second", {2, 3})
    reads = WorkerReads(session, (first.url, second.url), PARTITIONS)
    on_first, on_second = key_on({0, 1}), key_on({2, 3})

    assert (await reads.state("orders", on_first))["served_by"] == "first"
    assert (await reads.state("inventory", on_second))["served_by"] == "second"
    assert (first.hits, second.hits) == ([on_first], [on_second])
    assert await reads.readiness() == 0


async def test_a_421_makes_the_gateway_find_the_new_owner(session, start_worker):
    first, second = await start_worker("first", {0, 1, 2, 3}), await start_worker("second", set())
    reads = WorkerReads(session, (first.url, second.url), PARTITIONS)
    key = key_on({0, 1, 2, 3})
    assert (await reads.state("orders", key))["served_by"] == "first"

    moved = partition_for(key.encode(), PARTITIONS)
    first.owned.discard(moved)
    second.owned.add(moved)

    assert (await reads.state("orders", key))["served_by"] == "second"
    assert await reads.readiness() == 0


async def test_workers_found_in_kafka_are_routed_to(session, start_worker):
    seed, found = await start_worker("seed", {0, 1}), await start_worker("found", {2, 3})

    async def discover() -> set[str]:
        return {found.url}

    reads = WorkerReads(session, (seed.url,), PARTITIONS, discover=discover)
    assert (await reads.state("catalog", key_on({2, 3})))["served_by"] == "found"


async def test_with_no_worker_a_bounded_read_is_unknown_within_its_bound(session):
    reads = WorkerReads(session, (closed_port_url(),), PARTITIONS)
    started = time.monotonic()
    assert await reads.state_within("orders", "some-order", 0.3) is UNKNOWN
    assert time.monotonic() - started < 0.6
    assert await reads.readiness() == len(TABLES) * PARTITIONS


async def test_an_unavailable_read_names_no_worker(session):
    url = closed_port_url()
    reads = WorkerReads(session, (url,), PARTITIONS, unavailable_after=0.2)
    with pytest.raises(ApiError) as raised:
        await reads.state("orders", "some-order")
    assert raised.value.status == 503
    assert "127.0.0.1" not in f"{raised.value.message} {raised.value.details}"


JWT_SECRET = "routing-tests-secret-of-at-least-32-bytes"


async def gateway_client(reads: WorkerReads, writer: RecordingWriter, admin: Any = None,
                         catalog: CatalogView | None = None) -> TestClient:
    settings = Settings(jwt_secret=JWT_SECRET)
    app = web.Application(middlewares=[error_middleware, auth_middleware(settings.jwt_secret)])
    setup_routes(app)
    app[SERVICES] = Services(settings=settings, writer=writer, reads=reads, stripe=None, admin=admin,  # type: ignore[arg-type]
                             catalog=catalog or CatalogView())
    app[READINESS] = Readiness(admin, reads, catalog)  # type: ignore[arg-type]
    client = TestClient(TestServer(app, host="127.0.0.1", port=0))
    await client.start_server()
    return client


async def test_an_idempotent_order_is_accepted_when_no_worker_answers(session, monkeypatch):
    monkeypatch.setattr("gateway.views.orders.IDEMPOTENCY_READ_SECONDS", 0.3)
    writer = RecordingWriter()
    client = await gateway_client(WorkerReads(session, (closed_port_url(),), PARTITIONS), writer)
    token = mint(JWT_SECRET, "cus-1", "customer", "acme")
    try:
        reply = await client.post("/v1/orders", json={"lines": [{"sku": "SKU-1", "quantity": 1}]},
                                  headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "k-1"})
        assert reply.status == 202, await reply.text()
        assert [e.type for e in writer.written] == ["PlaceOrder"]
    finally:
        await client.close()


async def test_readyz_tells_anyone_ready_or_not_and_the_credential_holder_what_is_unserved(
        session, start_worker, monkeypatch):
    monkeypatch.setattr(health, "CHECK_EVERY_SECONDS", 0.0)
    half = await start_worker("half", {0, 1})
    admin = SimpleNamespace(list_topics=lambda timeout: None)
    catalog = CatalogView()  # its feed has not caught up yet
    client = await gateway_client(WorkerReads(session, (half.url,), PARTITIONS), RecordingWriter(), admin, catalog)
    operator = read_headers(JWT_SECRET)
    try:
        reply = await client.get("/readyz")
        assert (reply.status, await reply.json()) == (503, {"ready": False})
        reply = await client.get("/readyz", headers={"Authorization": "Bearer not-the-credential"})
        assert (reply.status, await reply.json()) == (503, {"ready": False})
        reply = await client.get("/readyz", headers=operator)
        assert (reply.status, await reply.json()) == (
            503, {"ready": False, "broker": True, "unserved_partitions": len(TABLES) * (PARTITIONS - 2),
                  "catalog_view": False})
        half.owned |= set(range(PARTITIONS))
        monkeypatch.setattr(workers, "MIN_REFRESH_SECONDS", 0.0)
        reply = await client.get("/readyz", headers=operator)
        assert (reply.status, await reply.json()) == (
            503, {"ready": False, "broker": True, "unserved_partitions": 0, "catalog_view": False})
        catalog.ready.set()  # the view has read its topics up to where they ended at start
        reply = await client.get("/readyz", headers=operator)
        assert (reply.status, await reply.json()) == (
            200, {"ready": True, "broker": True, "unserved_partitions": 0, "catalog_view": True})
        reply = await client.get("/readyz")
        assert (reply.status, await reply.json()) == (200, {"ready": True})
    finally:
        await client.close()


async def test_readyz_probes_share_one_check_until_it_is_due_again(session, start_worker, monkeypatch):
    monkeypatch.setattr(health, "CHECK_EVERY_SECONDS", 3600.0)
    every = await start_worker("every", set(range(PARTITIONS)))
    asked: list[float] = []
    admin = SimpleNamespace(list_topics=lambda timeout: asked.append(timeout))
    client = await gateway_client(WorkerReads(session, (every.url,), PARTITIONS), RecordingWriter(), admin)
    try:
        replies = await asyncio.gather(*(client.get("/readyz") for _ in range(20)))
        assert [reply.status for reply in replies] == [200] * 20
        assert len(asked) == 1
    finally:
        await client.close()


def test_kafka_discovery_takes_the_workers_of_the_apps_groups():
    def done(value: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_result(value)
        return future

    def member(client_id: str) -> SimpleNamespace:
        return SimpleNamespace(client_id=client_id)

    groups = {
        "fc": [member("fc-worker http://127.0.0.2:6066"), member("gateway")],
        "fc-orders": [member("fc-worker http://127.0.0.3:6066/")],
        "other": [member("fc-worker http://10.0.0.9:6066")],
        "fc2": [member("fc-worker http://10.0.0.8:6066")],
    }
    admin = SimpleNamespace(
        list_consumer_groups=lambda **_: done(SimpleNamespace(valid=[SimpleNamespace(group_id=g) for g in groups])),
        describe_consumer_groups=lambda ids, **_: {g: done(SimpleNamespace(members=groups[g])) for g in ids},
    )
    assert kafka_workers(admin, "fc") == {"http://127.0.0.2:6066", "http://127.0.0.3:6066"}  # type: ignore[arg-type]
