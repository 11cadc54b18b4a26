"""The OpenAPI contract (gateway/openapi.py): built from the route table, committed, valid OpenAPI 3.1,
served without a token, and saying what the views answer."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from gateway import openapi
from gateway.auth import Principal, auth_middleware
from gateway.errors import error_middleware
from gateway.responses import CampaignView, OrderView, StockView
from gateway.routes import setup_routes
from gateway.tokens import mint
from gateway.views import campaigns, inventory, orders
from streams.agents import campaigns as campaign_agent
from streams.agents import inventory as inventory_agent
from streams.models import (
    Campaign,
    Money,
    Order,
    OrderLineState,
    OrderPayment,
    StatusEntry,
    StockLevel,
)

COMMITTED = Path(__file__).resolve().parents[2] / "schemas" / "openapi.json"
SECRET = "openapi-unit-tests-secret-of-at-least-32-bytes"
AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def committed() -> dict[str, Any]:
    return json.loads(COMMITTED.read_text())  # type: ignore[no-any-return]


def operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in document["paths"].items() for method in item}


def test_the_committed_document_is_the_one_the_route_table_and_models_give():
    # When the document is generated again, Then it equals schemas/openapi.json (`python -m devtools.generate`)
    assert COMMITTED.read_text() == openapi.render(openapi.document())


def test_every_route_of_the_route_table_is_in_the_committed_document():
    # Given the gateway's routes, When the committed document's operations are listed
    routes = {(method, path) for method, path, _ in openapi.route_table()}
    # Then they are the same: no route undocumented, no operation without a route
    assert routes == operations(committed())
    assert len(routes) == len(openapi.route_table())


def test_a_route_without_a_description_makes_generation_fail():
    async def new_view(request: web.Request) -> web.Response:
        raise AssertionError

    with pytest.raises(openapi.UndocumentedRoute, match="GET /v1/wishlists"):
        openapi.document([*openapi.route_table(), ("GET", "/v1/wishlists", new_view)])
    with pytest.raises(openapi.UndocumentedRoute, match="OPERATIONS entries without a route.*GET /healthz"):
        openapi.document([route for route in openapi.route_table() if route[1] != "/healthz"])


def test_the_document_is_valid_openapi_3_1():
    validate(committed(), cls=OpenAPIV31SpecValidator)


def test_bearer_tokens_everywhere_but_the_probes_the_documentation_and_stripes_webhook():
    document = committed()
    assert document["security"] == [{"bearerAuth": []}]
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": document["components"]["securitySchemes"]["bearerAuth"]["description"]}
    public = {(method, path) for method, path in operations(document)
              if document["paths"][path][method.lower()].get("security") == []}
    assert public == {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/openapi.json"), ("GET", "/docs"),
                      ("GET", "/docs/assets/{name}"), ("POST", "/v1/payments/webhook"), ("POST", "/v1/shipping/webhook")}
    webhook = document["paths"]["/v1/payments/webhook"]["post"]
    signature = webhook["parameters"][0]
    assert (signature["name"], signature["in"], signature["required"]) == ("Stripe-Signature", "header", True)
    assert "401" not in webhook["responses"] and "400" in webhook["responses"]
    carrier = document["paths"]["/v1/shipping/webhook"]["post"]
    signature = carrier["parameters"][0]
    assert (signature["name"], signature["in"], signature["required"]) == ("X-Hmac-Signature", "header", True)
    assert "401" not in carrier["responses"] and "400" in carrier["responses"]


def test_every_operation_documents_429_and_every_bearer_one_401_and_403_all_with_the_error_body():
    document = committed()
    rate_limits = ["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert list(responses["429"]["headers"]) == ["Retry-After", *rate_limits], (method, path)
            if operation.get("security") == []:
                continue
            assert {"401", "403"} <= set(responses), (method, path)
            assert all(list(r["headers"])[-3:] == rate_limits for r in responses.values()), (method, path)
            for status, response in responses.items():
                if int(status) >= 400:
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, status)
            if "503" in responses:
                assert "Retry-After" in responses["503"]["headers"]


def test_idempotency_key_and_long_poll_parameters_are_documented():
    document = committed()

    def parameters(path: str, method: str) -> dict[str, dict[str, Any]]:
        return {p["name"]: p for p in document["paths"][path][method].get("parameters", [])}

    assert parameters("/v1/orders", "post")["Idempotency-Key"]["schema"] == {"maxLength": 255, "minLength": 1,
                                                                             "type": "string"}
    for path in ("/v1/orders/{order_id}", "/v1/campaigns/{campaign_id}"):
        assert parameters(path, "get")["wait"]["schema"] == {"default": 0, "maximum": 30.0, "minimum": 0,
                                                             "type": "number"}
        assert parameters(path, "get")["known"]["in"] == "query"


# --- what the views answer fits the document's models -------------------------------------------------


def test_an_orders_view_fits_the_documented_order():
    order = Order(
        order_id=uuid.UUID(int=7), tenant="acme", customer="alice", status="payment_pending",
        lines=(OrderLineState(sku="MUG-1", quantity=2, unit_price=Money(amount=1299, currency="EUR"), reserved=True),),
        request_hash="h", history=(StatusEntry(status="pending", at=AT), StatusEntry(status="payment_pending", at=AT)),
        total=Money(amount=2598, currency="EUR"), hold_expires_at=AT,
        payment=OrderPayment(intent_id="pi_1", client_secret="pi_1_secret", status="awaiting_payment"),
    )
    state = order.model_dump(mode="json")
    for who in (Principal(sub="alice", role="customer", tenant="acme"),
                Principal(sub="vera", role="vendor", tenant="acme")):
        OrderView.model_validate(orders._order_view(state, who))


def test_a_campaigns_view_and_a_stock_view_fit_the_documented_ones():
    campaign = Campaign(campaign_id="mug-club", tenant="acme", sku="MUG-1",
                        group_price=Money(amount=999, currency="EUR"), target_quantity=2, max_quantity=3, ends_at=AT,
                        status="open", opened_by="vera", pledges={"alice": 1})
    CampaignView.model_validate(campaigns._view(campaign_agent.render(campaign)))
    level = StockLevel(tenant="acme", sku="MUG-1", on_hand=5, holds={"o-1": 2})
    assert StockView.model_validate(inventory._stock_view(inventory_agent.render(level))).available == 3


# --- served without a token -----------------------------------------------------------------------------


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    app = web.Application(middlewares=[error_middleware, auth_middleware(SECRET)])
    setup_routes(app)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def test_the_document_and_the_browsable_page_are_served_without_a_token(client: TestClient):
    document = await client.get("/openapi.json")
    assert document.status == 200 and document.content_type == "application/json"
    assert await document.read() == COMMITTED.read_bytes()
    page = await client.get("/docs")
    html = await page.text()
    assert page.status == 200 and page.content_type == "text/html"
    assert 'src="docs/assets/swagger-ui-bundle.js"' in html and 'url: "openapi.json"' in html and "https://" not in html
    for name, content_type in openapi.DOCS_ASSETS.items():
        asset = await client.get(f"/docs/assets/{name}")
        assert asset.status == 200 and asset.content_type == content_type and len(await asset.read()) > 1000
    missing = await client.get("/docs/assets/index.html")
    assert missing.status == 404 and (await missing.json())["error"]["code"] == "not_found"


async def test_a_405_is_a_json_error_that_names_the_allowed_methods(client: TestClient):
    reply = await client.put("/healthz")
    assert reply.status == 405 and (await reply.json())["error"]["code"] == "method_not_allowed"
    assert set(reply.headers["Allow"].split(",")) >= {"GET"}


@pytest.mark.parametrize(("body", "code", "field"), [
    (b'{"sku": "MUG-1", "name": "mug", "price": {"amount": false, "currency": "EUR"}}', "invalid_body", "price.amount"),
    (b'{"sku": "MUG-1", "name": "mug", "price": {"amount": "12", "currency": "EUR"}}', "invalid_body", "price.amount"),
    (b'{"sku": "MUG-1", "name": "mug", "price": {"amount": 12, "currency": "EUR"}, "x": 1}', "invalid_body", "x"),
    (b'{"sku": "MUG-1", "name": ', "invalid_json", ""),
])
async def test_a_body_not_as_documented_is_a_422_that_names_the_field(client: TestClient, body: bytes, code: str,
                                                                       field: str):
    # Given a vendor's token, When a product body has a boolean or a string for an amount (pydantic's lax
    # mode would take them as 0 and 12), an unknown field, or is no JSON
    reply = await client.post("/v1/products", data=body, headers={"Authorization": f"Bearer {vendor()}"})
    # Then it is refused with the field named, before anything is written (this app has no writer at all)
    error = (await reply.json())["error"]
    assert reply.status == 422 and error["code"] == code
    assert [d["field"] for d in error["details"]] == [field]


async def test_identifiers_that_cannot_be_are_refused_before_any_read(client: TestClient):
    headers = {"Authorization": f"Bearer {vendor()}"}
    # A SKU in the path that no SKU can be names nothing: 404 (this app has no worker to ask)
    reply = await client.get("/v1/products/bad%20sku", headers=headers)
    assert reply.status == 404 and (await reply.json())["error"]["code"] == "not_found"
    reply = await client.post("/v1/campaigns/%C3%97/pledges", json={"quantity": 1},
                              headers={"Authorization": f"Bearer {mint(SECRET, 'alice', 'customer', 'acme')}"})
    assert reply.status == 404
    # and one in a query is a 422
    reply = await client.get("/v1/campaigns", params={"sku": "×ø"}, headers=headers)
    assert reply.status == 422 and (await reply.json())["error"]["code"] == "invalid_query"


def vendor() -> str:
    return mint(SECRET, "vera", "vendor", "acme")
