"""`GET /v1/products/{sku}/recommendations` without Kafka: the real view behind the real routes and
auth, with a tiny aiohttp server posing as the worker that serves the catalog and recommendations
tables (the asked product and the entries), a catalog read model filled by hand with the candidates
(their upserts and stock announcements), and a writer that records (or refuses) the
RecommendationsServed events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.auth import auth_middleware
from gateway.catalog_view import CatalogView, Listed
from gateway.errors import error_middleware
from gateway.routes import setup_routes
from gateway.services import SERVICES, Services
from gateway.tokens import mint
from gateway.workers import TABLES, WorkerReads
from streams.models import AvailabilityChanged, Envelope, Money, ProductUpserted, RecommendationsServed, utc_now
from streams.settings import Settings
from tests.unit.doubles import RecordingWriter

PARTITIONS = 4
JWT_SECRET = "recommendations-tests-secret-of-32-bytes-at-least"
NOW = utc_now()
T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
EUR = {"amount": 500, "currency": "EUR"}


def product(sku: str, status: str | None = None) -> dict[str, Any]:
    """The worker's catalog table value of an asked product (as stored before products had a status)."""
    shown = {"tenant": "acme", "sku": sku, "name": f"name of {sku}", "price": EUR, "updated_at": NOW.isoformat()}
    return shown if status is None else {**shown, "status": status}


class Catalog(CatalogView):
    """The gateway's catalog read model; records the SKUs whose product was looked up."""

    def __init__(self) -> None:
        super().__init__()
        self.looked_up: list[str] = []

    def product(self, tenant: str, sku: str) -> Listed | None:
        self.looked_up.append(sku)
        return super().product(tenant, sku)


def catalog() -> Catalog:
    """A to F active and in stock at 5.00 EUR, DRAFT a draft in stock, C sold out, all of tenant acme."""
    view = Catalog()
    for sku, status in [(sku, "active") for sku in "ABCDEF"] + [("DRAFT", "draft")]:
        view.apply(Envelope.new("acme", ProductUpserted(sku=sku, name=f"name of {sku}", status=status,
                                                        price=Money(amount=500, currency="EUR"), created_at=T0),
                                occurred_at=T0))
        view.apply(Envelope.new("acme", AvailabilityChanged(sku=sku, available=5, in_stock=True)))
    view.apply(Envelope.new("acme", AvailabilityChanged(sku="C", available=0, in_stock=False)))
    view.looked_up.clear()
    return view


def entry(sku: str, scores: dict[str, float], age: timedelta = timedelta(0)) -> dict[str, Any]:
    """An entry decayed `age` before now: now at the call, not at import (a full suite runs the unit
    tests many minutes after collecting them, and the view decays scores to the time of the read)."""
    return {"tenant": "acme", "sku": sku, "scores": scores, "decayed_at": (utc_now() - age).isoformat(),
            "orders": 1, "counted": []}


class Worker:
    """A worker's read endpoint over fixed table values; counts the reads per table. Its catalog
    holds the asked products only: the candidates are judged by the catalog read model."""

    def __init__(self) -> None:
        self.states: dict[str, dict[str, dict[str, Any]]] = {table: {} for table in TABLES}
        self.reads: dict[str, int] = {table: 0 for table in TABLES}
        self.url = ""
        self.states["catalog"]["acme/A"] = product("A")
        self.states["catalog"]["acme/DRAFT"] = product("DRAFT", "draft")

    def app(self) -> web.Application:
        async def assignment(request: web.Request) -> web.Response:
            return web.json_response({"url": self.url, "ready": True, "partitions": PARTITIONS,
                                      "tables": {table: list(range(PARTITIONS)) for table in TABLES}})

        async def state(request: web.Request) -> web.Response:
            table, key = request.match_info["table"], request.query["key"]
            self.reads[table] += 1
            found = self.states[table].get(key)
            if found is None:
                return web.json_response({"error": "not found"}, status=404)
            return web.json_response(found)

        app = web.Application()
        app.router.add_get("/fc/assignment", assignment)
        app.router.add_get("/state/{table}", state)
        return app


@pytest.fixture
async def worker(serve_app: Callable[[web.Application], Awaitable[str]]) -> Worker:
    worker = Worker()
    worker.url = await serve_app(worker.app())
    return worker


@pytest.fixture
def writer() -> RecordingWriter:
    return RecordingWriter()


@pytest.fixture
def view() -> Catalog:
    return catalog()


@pytest.fixture
async def client(worker: Worker, writer: RecordingWriter, view: Catalog) -> AsyncIterator[TestClient]:
    async with aiohttp.ClientSession() as session:
        settings = Settings(jwt_secret=JWT_SECRET, read_miss_wait_seconds=0)
        app = web.Application(middlewares=[error_middleware, auth_middleware(settings.jwt_secret)])
        setup_routes(app)
        app[SERVICES] = Services(settings=settings, writer=writer,  # type: ignore[arg-type]
                                 reads=WorkerReads(session, (worker.url,), PARTITIONS),
                                 stripe=None, admin=None, catalog=view)  # type: ignore[arg-type]
        client = TestClient(TestServer(app, host="127.0.0.1", port=0))
        await client.start_server()
        yield client
        await client.close()


async def ask(client: TestClient, sku: str, limit: int | str = 5, role: str = "customer",
              tenant: str = "acme") -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {mint(JWT_SECRET, 'someone', role, tenant)}"}
    async with client.get(f"/v1/products/{sku}/recommendations?limit={limit}", headers=headers) as reply:
        return reply.status, await reply.json()


def skus(body: dict[str, Any]) -> list[tuple[str, float]]:
    return [(item["sku"], round(item["score"], 4)) for item in body["recommendations"]]


async def test_co_purchases_ranked_by_score_leave_out_what_is_not_active_or_in_stock(
        client: TestClient, worker: Worker, writer: RecordingWriter) -> None:
    # Given A bought with B (3), C (5, sold out), DRAFT (4, a draft), D (1) and with itself (a stray entry)
    worker.states["recommendations"]["acme/A"] = entry("A", {"C": 5.0, "DRAFT": 4.0, "B": 3.0, "D": 1.0, "A": 9.0})
    # When a customer asks for two
    status, body = await ask(client, "A", limit=2)
    # Then B and D, with the catalog's name and price, from co-purchases only
    assert status == 200
    assert (skus(body), body["source"]) == ([("B", 3.0), ("D", 1.0)], "co_purchase")
    # (the score as of the read: decayed a little since the entry's time)
    assert body["recommendations"][0] == {"sku": "B", "name": "name of B", "price": EUR, "score": pytest.approx(3.0)}
    # And the worker was asked for the product and the two entries only, none of the candidates
    assert (worker.reads["catalog"], worker.reads["inventory"], worker.reads["recommendations"]) == (1, 0, 2)
    # And the answer is announced for analytics
    await asyncio.sleep(0)
    assert [e.payload for e in writer.written] == [RecommendationsServed(sku="A", recommended=("B", "D"),
                                                                         source="co_purchase")]


async def test_a_product_without_history_gets_the_tenants_popular_products(client: TestClient, worker: Worker) -> None:
    worker.states["recommendations"]["acme/*"] = entry("*", {"E": 7.0, "A": 6.0, "F": 2.0})
    status, body = await ask(client, "A", limit=5, role="vendor")
    assert status == 200
    assert (skus(body), body["source"]) == ([("E", 7.0), ("F", 2.0)], "popularity")


async def test_co_purchases_are_filled_up_from_the_popularity(client: TestClient, worker: Worker) -> None:
    worker.states["recommendations"]["acme/A"] = entry("A", {"B": 2.0})
    worker.states["recommendations"]["acme/*"] = entry("*", {"B": 9.0, "E": 7.0, "F": 2.0})
    status, body = await ask(client, "A", limit=2)
    assert (skus(body), body["source"]) == ([("B", 2.0), ("E", 7.0)], "mixed")


async def test_scores_are_decayed_to_the_time_of_the_read(client: TestClient, worker: Worker) -> None:
    # Given scores decayed last 30 days ago, half-life 30 days (the default)
    worker.states["recommendations"]["acme/A"] = entry("A", {"B": 4.0}, age=timedelta(days=30))
    _, body = await ask(client, "A")
    assert skus(body) == [("B", 2.0)]


async def test_candidates_are_bounded_by_three_per_recommendation(client: TestClient, worker: Worker,
                                                                  view: Catalog) -> None:
    worker.states["recommendations"]["acme/A"] = entry("A", {"C": 9.0, "DRAFT": 8.0, "X1": 7.0, "X2": 6.0, "B": 1.0})
    _, body = await ask(client, "A", limit=1)
    # C, DRAFT and X1 (unknown) were the three checked: B, active and in stock, was not
    assert body["recommendations"] == []
    assert view.looked_up == ["C", "DRAFT", "X1"]


async def test_a_product_the_view_does_not_know_yet_is_found_by_the_worker_read(client: TestClient,
                                                                                worker: Worker) -> None:
    # Given NEW just upserted: in the worker's catalog table, not yet in the gateway's read model
    worker.states["catalog"]["acme/NEW"] = product("NEW")
    worker.states["recommendations"]["acme/*"] = entry("*", {"E": 7.0})
    # When a customer asks for its recommendations
    status, body = await ask(client, "NEW")
    # Then it is found, and answered from the popularity
    assert status == 200 and (skus(body), body["source"]) == ([("E", 7.0)], "popularity")


async def test_another_tenants_product_is_not_found(client: TestClient, worker: Worker) -> None:
    worker.states["recommendations"]["acme/A"] = entry("A", {"B": 2.0})
    status, body = await ask(client, "A", tenant="globex")
    assert status == 404 and body["error"]["code"] == "not_found"


async def test_a_draft_product_is_not_found_for_a_customer_only(client: TestClient) -> None:
    assert (await ask(client, "DRAFT"))[0] == 404
    assert (await ask(client, "DRAFT", role="vendor"))[0] == 200


async def test_an_announcement_that_fails_never_fails_the_read(client: TestClient, worker: Worker,
                                                               writer: RecordingWriter) -> None:
    writer.fail = True
    worker.states["recommendations"]["acme/A"] = entry("A", {"B": 2.0})
    status, body = await ask(client, "A")
    assert status == 200 and skus(body) == [("B", 2.0)]


@pytest.mark.parametrize("limit", ["0", "21", "x", "-1", "2.5"])
async def test_a_limit_out_of_range_is_refused(client: TestClient, limit: str) -> None:
    status, body = await ask(client, "A", limit=limit)
    assert status == 422 and body["error"]["code"] == "invalid_query"
