"""`GET /v1/products`, `GET /v1/products/{sku}` and `POST /v1/products` at the gateway (gateway/views/catalog.py),
with the catalog view filled by hand and the worker's catalog table faked: who sees what, and what is refused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.auth import auth_middleware
from gateway.catalog_view import CatalogView, encode_cursor
from gateway.errors import error_middleware
from gateway.routes import setup_routes
from gateway.services import SERVICES, Services
from gateway.tokens import mint
from streams.models import AvailabilityChanged, Envelope, Money, ProductUpserted
from streams.settings import Settings
from tests.unit.doubles import RecordingWriter

JWT_SECRET = "unit-test-secret-of-at-least-32-bytes!"
T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def catalog() -> CatalogView:
    view = CatalogView()
    for minutes, (tenant, sku, status) in enumerate([("acme", "MUG-1", "active"), ("acme", "MUG-2", "draft"),
                                                     ("acme", "MUG-3", "archived"), ("globex", "MUG-9", "active")]):
        at = T0 + timedelta(minutes=minutes)
        view.apply(Envelope.new(tenant, ProductUpserted(sku=sku, name=f"Mug {sku}", price=Money(amount=100 * minutes + 100,
                                                        currency="EUR"), status=status, created_at=at), occurred_at=at))
    view.apply(Envelope.new("acme", AvailabilityChanged(sku="MUG-1", available=4, in_stock=True)))
    return view


TABLE = {  # the worker's catalog table, as its /state answers
    "acme/MUG-1": {"sku": "MUG-1", "name": "Mug", "price": {"amount": 100, "currency": "EUR"},
                   "updated_at": "2026-11-01T09:00:00Z", "status": "active", "description": "", "images": [],
                   "attributes": {}, "created_at": "2026-11-01T09:00:00Z"},
    "acme/MUG-2": {"sku": "MUG-2", "name": "Mug", "price": {"amount": 100, "currency": "EUR"},
                   "updated_at": "2026-11-01T09:00:00Z", "status": "draft", "description": "", "images": [],
                   "attributes": {}, "created_at": "2026-11-01T09:00:00Z"},
    # stored before products had a status: active
    "acme/OLD-1": {"tenant": "acme", "sku": "OLD-1", "name": "Old", "price": {"amount": 1, "currency": "EUR"},
                   "updated_at": "2026-11-01T09:00:00Z"},
}


@pytest.fixture
async def client() -> AsyncIterator[tuple[TestClient, RecordingWriter]]:
    async def state(table: str, key: str, wait: float = 0) -> Any:
        return TABLE.get(key)

    settings = Settings(jwt_secret=JWT_SECRET)
    app = web.Application(middlewares=[error_middleware, auth_middleware(settings.jwt_secret)])
    setup_routes(app)
    writer = RecordingWriter()
    app[SERVICES] = Services(settings=settings, writer=writer, reads=SimpleNamespace(state=state),  # type: ignore[arg-type]
                             stripe=None, admin=None, catalog=catalog())  # type: ignore[arg-type]
    test_client = TestClient(TestServer(app, host="127.0.0.1", port=0))
    await test_client.start_server()
    yield test_client, writer
    await test_client.close()


async def call(client: TestClient, path: str, role: str = "customer", tenant: str = "acme",
               body: Any = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {mint(JWT_SECRET, 'u-1', role, tenant)}"}
    reply = await (client.post(path, json=body, headers=headers) if body is not None else client.get(path, headers=headers))
    return reply.status, await reply.json()


@pytest.mark.parametrize(
    ("role", "tenant", "query", "expected"),
    [
        ("customer", "acme", "", ["MUG-1"]),
        ("customer", "acme", "?status=active", ["MUG-1"]),
        ("vendor", "acme", "", ["MUG-3", "MUG-2", "MUG-1"]),
        ("admin", "acme", "?status=draft", ["MUG-2"]),
        ("vendor", "acme", "?q=mug&sort=price_asc", ["MUG-1", "MUG-2", "MUG-3"]),
        ("vendor", "acme", "?in_stock=true", ["MUG-1"]),
        ("customer", "globex", "", ["MUG-9"]),
        ("vendor", "initech", "", []),
    ],
)
async def test_listings_show_the_callers_tenant_and_to_customers_active_products_only(client, role, tenant, query,
                                                                                       expected):
    status, body = await call(client[0], f"/v1/products{query}", role, tenant)
    assert status == 200, body
    assert [p["sku"] for p in body["products"]] == expected
    assert body["next_cursor"] is None


async def test_a_page_answers_the_products_in_stock_and_the_next_cursor(client):
    status, body = await call(client[0], "/v1/products?limit=1&sort=price_asc", "vendor")
    assert status == 200
    assert body == {"products": [{
        "sku": "MUG-1", "name": "Mug MUG-1", "description": "", "price": {"amount": 100, "currency": "EUR"},
        "images": [], "attributes": {}, "status": "active", "created_at": "2026-11-01T09:00:00+00:00",
        "updated_at": "2026-11-01T09:00:00+00:00", "in_stock": True,
    }], "next_cursor": encode_cursor("price_asc", 100, "MUG-1")}
    status, body = await call(client[0], f"/v1/products?limit=1&sort=price_asc&cursor={body['next_cursor']}", "vendor")
    assert [p["sku"] for p in body["products"]] == ["MUG-2"]


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("?cursor=garbage!", 400, "invalid_cursor"),
        (f"?sort=newest&cursor={encode_cursor('price_asc', 100, 'MUG-1')}", 400, "invalid_cursor"),
        ("?status=draft", 403, "forbidden"),
        ("?sort=cheapest", 422, "invalid_query"),
        ("?sort=relevance", 422, "invalid_query"),
        ("?q=%3F%21&sort=relevance", 422, "invalid_query"),  # "?!": no words
        ("?limit=0", 422, "invalid_query"),
        ("?limit=101", 422, "invalid_query"),
        ("?min_price=-1", 422, "invalid_query"),
        ("?min_price=5&max_price=4", 422, "invalid_query"),
        ("?in_stock=yes", 422, "invalid_query"),
        ("?currency=eur", 422, "invalid_query"),
        ("?currency=", 422, "invalid_query"),  # present and empty: not a currency
        ("?min_price=", 422, "invalid_query"),
        ("?status=", 422, "invalid_query"),
        ("?sort=", 422, "invalid_query"),
        ("?limit=", 422, "invalid_query"),
    ],
)
async def test_a_bad_listing_query_is_refused_with_its_reason(client, query, status, code):
    got, body = await call(client[0], f"/v1/products{query}", "customer")
    assert (got, body["error"]["code"]) == (status, code)


@pytest.mark.parametrize(
    ("role", "sku", "status"),
    [
        ("customer", "MUG-1", 200),
        ("customer", "MUG-2", 404),  # a draft
        ("vendor", "MUG-2", 200),
        ("admin", "MUG-2", 200),
        ("customer", "OLD-1", 200),  # stored before statuses: active
    ],
)
async def test_a_product_by_sku_is_not_shown_to_customers_unless_active(client, role, sku, status):
    got, body = await call(client[0], f"/v1/products/{sku}", role)
    assert got == status, body
    if status == 200:
        assert body["status"] in ("active", "draft")


async def test_an_upsert_carries_the_new_fields_and_keeps_the_known_creation_time(client):
    test_client, writer = client
    body = {"sku": "MUG-1", "name": "Mug", "price": {"amount": 150, "currency": "EUR"}, "description": "Blue",
            "images": ["https://img.example.com/1.jpg"], "attributes": {"colour": "blue"}, "status": "archived"}
    status, _ = await call(test_client, "/v1/products", "vendor", body=body)
    assert status == 202
    payload = writer.written[-1].payload
    assert (payload.description, payload.images, payload.attributes, payload.status, payload.created_at) == (
        "Blue", ("https://img.example.com/1.jpg",), {"colour": "blue"}, "archived", T0)


@pytest.mark.parametrize(
    "change",
    [{"images": ["http://img.example.com/1.jpg"]}, {"images": ["https://x.example.com/a.jpg"] * 11},
     {"description": "x" * 5001}, {"status": "deleted"}, {"attributes": {"a": 1}},
     {"attributes": {f"k{i}": "v" for i in range(51)}}],
    ids=["http-image", "eleven-images", "long-description", "unknown-status", "non-string-attribute",
         "too-many-attributes"],
)
async def test_an_upsert_with_bad_new_fields_is_refused_and_writes_nothing(client, change):
    test_client, writer = client
    body = {"sku": "MUG-7", "name": "Mug", "price": {"amount": 150, "currency": "EUR"}, **change}
    status, reply = await call(test_client, "/v1/products", "vendor", body=body)
    assert (status, reply["error"]["code"]) == (422, "invalid_body")
    assert writer.written == []
