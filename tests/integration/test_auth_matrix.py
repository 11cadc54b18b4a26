"""Every door tried: each route of the gateway's route table under /v1/ × each way a caller may be
refused (no token, a bad signature, an expired token, `alg: none`, the wrong role, another tenant,
another customer, an admin without MFA), on a real stack.

Given a stack (not development mode: strong secrets, `devtools/stack.py`) with a product, its stock,
an order of customer alice in tenant acme, a campaign she pledged to and a webhook endpoint of acme's
admin (a webhooks worker runs beside the default one), so that the resource-level
cases have something real to be refused, when each cell's request is sent with a valid body and
everything right but the cell's one defect, then it gets the status of the table below (written
here, not computed from the views), with its error code, and a status the route's operation of the
OpenAPI document lists. After the matrix, every topic of the stack's namespace is read from where
it ended before the matrix: no refused request wrote a record, not even one an agent refused later.

The table says per route and case what is expected, or why the case does not apply (a route any
role may call has no wrong role; a route that names nothing of a tenant's or a customer's has
nothing for another one to be refused). The route table (`gateway/routes.py`) and the OpenAPI
document must have no /v1/ route the table lacks.

`POST /v1/payments/webhook` takes no bearer token: Stripe's signature authenticates it. A missing and
a bad `Stripe-Signature` are tried with their topic checked in tests/integration/test_refunds.py
(`test_refused_and_ignored_webhooks_write_nothing_...`: "unsigned-garbage", "wrong-secrets") and in
tests/unit/test_gateway_webhook.py; here a valid admin bearer token on a genuine event that would
mark alice's order paid, without a signature, must open nothing.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import confluent_kafka
import jwt
import pytest
from aiohttp import web

from connectors.carrier_webhooks import build_event as build_tracker_event
from devtools.stripe_trigger import build_event
from gateway.routes import setup_routes
from gateway.views.payments import WEBHOOK_PATH
from gateway.views.shipping import WEBHOOK_PATH as CARRIER_WEBHOOK_PATH
from streams.topics import declared_names
from tests.conftest import Api, read_topic, token
from tests.harness import JWT_SECRET, Stack, eventually_async

# Reads of keys another tenant's caller cannot see miss: they wait 0.2 s for the key, not 3 s.
STACK_ENV = {"FC_READ_MISS_WAIT": "0.2"}
# Slot 0: every agent; slot 1: the webhooks agents (their own group), which serve the webhook routes' reads.
STACK_WORKERS = [{}, {"agents": "webhooks"}]

OPENAPI = json.loads((Path(__file__).resolve().parents[2] / "schemas" / "openapi.json").read_text())
SETTLE_SECONDS = 60.0  # generous: the setup waits for outcomes, it does not time them

SKU = "MATRIX-1"
CAMPAIGN = "matrix-club"
TENANT, OTHER_TENANT = "acme", "globex"
FAR_FUTURE = "2099-12-31T23:00:00Z"


@dataclass(frozen=True)
class Who:
    role: str
    sub: str
    tenant: str = TENANT


ALICE = Who("customer", "alice")  # placed the order, pledged to the campaign
BOB = Who("customer", "bob")  # another customer of acme
VERA = Who("vendor", "vera")  # acme's vendor
ADMIN_WITHOUT_MFA = Who("admin", "root")
ROOT = Who("admin", "root")  # acme's admin, who registered the endpoint


# --- the cases: each is one defect of an otherwise valid request -------------------------------

CASES = ("no_token", "bad_signature", "expired", "alg_none", "wrong_role", "other_tenant", "other_customer",
         "admin_without_mfa")
# The error code each refusal carries (README, "Errors are JSON").
CODES = {"no_token": "missing_token", "bad_signature": "invalid_token", "expired": "token_expired",
         "alg_none": "invalid_token", "wrong_role": "forbidden", "other_tenant": "not_found",
         "other_customer": "not_found", "admin_without_mfa": "mfa_required"}


def _claims(who: Who, exp: datetime) -> dict[str, Any]:
    return {"sub": who.sub, "role": who.role, "tenant": who.tenant, "exp": int(exp.timestamp()), "amr": ["pwd", "mfa"]}


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).rstrip(b"=").decode()


def bad_signature(who: Who) -> str:
    """Claims that would pass, signed with another 32-byte secret."""
    return jwt.encode(_claims(who, datetime.now(UTC) + timedelta(hours=1)), secrets.token_bytes(32), algorithm="HS256")


def expired(who: Who) -> str:
    """Signed with the gateway's secret, expired an hour ago."""
    return jwt.encode(_claims(who, datetime.now(UTC) - timedelta(hours=1)), JWT_SECRET, algorithm="HS256")


def alg_none(who: Who) -> str:
    """Unsigned, built by hand: header {"alg": "none"}, the claims, an empty signature."""
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(who, datetime.now(UTC) + timedelta(hours=1)))}."


def valid(who: Who, amr: list[str] | None = None) -> str:
    return token(who.role, who.tenant, who.sub, amr)


# --- the doors: how each route is called by someone it lets in -----------------------------------

@dataclass(frozen=True)
class Door:
    path: str  # with {sku}, {order_id}, {campaign_id} of the setup
    allowed: Who  # a caller the route serves; every case changes one thing of this caller's request
    body: dict[str, Any] | None = None
    wrong_role: str | None = None  # a role the route refuses, if it restricts roles
    other_customer: Who = BOB
    headers: dict[str, str] = field(default_factory=dict)


PRODUCT = {"sku": SKU, "name": "Hijacked mug", "price": {"amount": 1, "currency": "EUR"}}
# No event of these types happens here: nothing is delivered to the made-up host.
WEBHOOK_ENDPOINT = {"url": "https://hooks.example.com/matrix", "events": ["CampaignFailed"]}
CAMPAIGN_BODY = {"campaign_id": "matrix-rogue", "sku": SKU, "group_price": {"amount": 1, "currency": "EUR"},
                 "target_quantity": 1, "max_quantity": 2, "ends_at": FAR_FUTURE}

DOORS: dict[tuple[str, str], Door] = {
    ("POST", "/v1/products"): Door("/v1/products", VERA, PRODUCT, wrong_role="customer"),
    ("GET", "/v1/products"): Door("/v1/products?q=matrix", ALICE),
    ("GET", "/v1/products/{sku}"): Door("/v1/products/{sku}", ALICE),
    ("GET", "/v1/products/{sku}/recommendations"): Door("/v1/products/{sku}/recommendations", ALICE),
    ("POST", "/v1/inventory/{sku}/adjustments"): Door(
        "/v1/inventory/{sku}/adjustments", VERA, {"delta": 1000, "reason": "restock"}, wrong_role="customer"),
    ("GET", "/v1/inventory/{sku}"): Door("/v1/inventory/{sku}", ALICE),
    ("POST", "/v1/orders"): Door("/v1/orders", ALICE, {"lines": [{"sku": SKU, "quantity": 1}]}, wrong_role="vendor"),
    ("GET", "/v1/orders/{order_id}"): Door("/v1/orders/{order_id}", ALICE),
    ("POST", "/v1/orders/{order_id}/cancel"): Door("/v1/orders/{order_id}/cancel", ALICE, wrong_role="vendor"),
    ("POST", WEBHOOK_PATH): Door(WEBHOOK_PATH, Who("admin", "root")),
    ("POST", "/v1/orders/{order_id}/shipments"): Door(
        "/v1/orders/{order_id}/shipments", VERA, {"lines": [{"sku": SKU, "quantity": 1}], "carrier": "USPS",
                                                   "tracking_number": "EZMATRIX1"}, wrong_role="customer"),
    ("POST", CARRIER_WEBHOOK_PATH): Door(CARRIER_WEBHOOK_PATH, Who("admin", "root")),
    ("POST", "/v1/campaigns"): Door("/v1/campaigns", VERA, CAMPAIGN_BODY, wrong_role="customer"),
    ("GET", "/v1/campaigns"): Door(f"/v1/campaigns?sku={SKU}", ALICE),
    ("GET", "/v1/campaigns/{campaign_id}"): Door("/v1/campaigns/{campaign_id}", ALICE),
    ("DELETE", "/v1/campaigns/{campaign_id}"): Door("/v1/campaigns/{campaign_id}", VERA, wrong_role="customer"),
    ("POST", "/v1/campaigns/{campaign_id}/pledges"): Door(
        "/v1/campaigns/{campaign_id}/pledges", ALICE, {"quantity": 2}, wrong_role="vendor"),
    ("DELETE", "/v1/campaigns/{campaign_id}/pledges"): Door(
        "/v1/campaigns/{campaign_id}/pledges", ALICE, wrong_role="vendor"),
    ("GET", "/v1/campaigns/{campaign_id}/pledges/mine"): Door(
        "/v1/campaigns/{campaign_id}/pledges/mine", ALICE, wrong_role="vendor"),
    ("POST", "/v1/webhooks"): Door("/v1/webhooks", ROOT, WEBHOOK_ENDPOINT, wrong_role="vendor"),
    ("GET", "/v1/webhooks"): Door("/v1/webhooks", ROOT, wrong_role="vendor"),
    ("GET", "/v1/webhooks/{endpoint_id}"): Door("/v1/webhooks/{endpoint_id}", ROOT, wrong_role="vendor"),
    ("DELETE", "/v1/webhooks/{endpoint_id}"): Door("/v1/webhooks/{endpoint_id}", ROOT, wrong_role="vendor"),
    ("POST", "/v1/webhooks/{endpoint_id}/enable"): Door("/v1/webhooks/{endpoint_id}/enable", ROOT,
                                                        wrong_role="vendor"),
    ("GET", "/v1/webhooks/{endpoint_id}/deliveries"): Door("/v1/webhooks/{endpoint_id}/deliveries", ROOT,
                                                           wrong_role="vendor"),
}


# --- the expected answers ---------------------------------------------------------------------------

@dataclass(frozen=True)
class NotApplicable:
    why: str


@dataclass(frozen=True)
class Shows:
    """A 200 that must not show what belongs to someone else: these fields have these values."""
    status: int
    fields: dict[str, Any]


ANY_ROLE = NotApplicable("any role with a valid token may call it")
OWN_TENANT = NotApplicable("it names nothing of a tenant's: it creates in the caller's own tenant")
TENANT_WIDE = NotApplicable("what it names is the tenant's, visible to each of its customers")
OWN_ONLY = NotApplicable("it names nothing of a customer's: it acts on the caller's own")
CARRIER_ONLY = NotApplicable("authenticated by X-Hmac-Signature, not a bearer token: a bad and a missing signature "
                             "are tried in test_shipping.py and test_shipping_decisions.py; see WEBHOOK_CASES")
STRIPE_ONLY = NotApplicable("authenticated by Stripe-Signature, not a bearer token: no signature and a bad one "
                            "are tried in test_refunds.py and test_gateway_webhook.py; see WEBHOOK_CASES")
NO_LIST_FOR_OTHERS = Shows(200, {"sku": SKU, "campaigns": []})  # another tenant's list of the SKU: empty
UNKNOWN_SKU = (404, "unknown_sku")  # the SKU is not in the caller's tenant's catalog (the route's documented 404)
NOT_ALICES_PLEDGE = Shows(200, {"campaign_id": CAMPAIGN, "quantity": 0, "latest": None, "order_id": None})
ADMIN_ONLY = NotApplicable("only the tenant's admin may call it: another customer is the wrong role (403), tried in "
                           "tests/unit/test_gateway_webhooks.py")
NO_ENDPOINTS_FOR_OTHERS = Shows(200, {"endpoints": []})  # another tenant's admin lists its own: none
NO_PRODUCTS_FOR_OTHERS = Shows(200, {"products": [], "next_cursor": None})  # another tenant's search: its own, none

# One row per route, one column per case, in the order of CASES: no token, bad signature, expired,
# alg none | wrong role | other tenant, other customer | admin without MFA.
MATRIX: dict[tuple[str, str], tuple[Any, ...]] = {
    ("POST", "/v1/products"):                          (401, 401, 401, 401, 403, OWN_TENANT, OWN_ONLY, 403),
    ("GET", "/v1/products"):                           (401, 401, 401, 401, ANY_ROLE, NO_PRODUCTS_FOR_OTHERS,
                                                        TENANT_WIDE, 403),
    ("GET", "/v1/products/{sku}"):                     (401, 401, 401, 401, ANY_ROLE, 404, TENANT_WIDE, 403),
    ("GET", "/v1/products/{sku}/recommendations"):     (401, 401, 401, 401, ANY_ROLE, 404, TENANT_WIDE, 403),
    ("POST", "/v1/inventory/{sku}/adjustments"):       (401, 401, 401, 401, 403, UNKNOWN_SKU, TENANT_WIDE, 403),
    ("GET", "/v1/inventory/{sku}"):                    (401, 401, 401, 401, ANY_ROLE, 404, TENANT_WIDE, 403),
    ("POST", "/v1/orders"):                            (401, 401, 401, 401, 403, OWN_TENANT, OWN_ONLY, 403),
    ("GET", "/v1/orders/{order_id}"):                  (401, 401, 401, 401, ANY_ROLE, 404, 404, 403),
    ("POST", "/v1/orders/{order_id}/cancel"):          (401, 401, 401, 401, 403, 404, 404, 403),
    ("POST", WEBHOOK_PATH):                            (STRIPE_ONLY,) * 8,
    ("POST", "/v1/orders/{order_id}/shipments"):       (401, 401, 401, 401, 403, 404, TENANT_WIDE, 403),
    ("POST", CARRIER_WEBHOOK_PATH):                    (CARRIER_ONLY,) * 8,
    ("POST", "/v1/campaigns"):                         (401, 401, 401, 401, 403, OWN_TENANT, OWN_ONLY, 403),
    ("GET", "/v1/campaigns"):                          (401, 401, 401, 401, ANY_ROLE, NO_LIST_FOR_OTHERS,
                                                        TENANT_WIDE, 403),
    ("GET", "/v1/campaigns/{campaign_id}"):            (401, 401, 401, 401, ANY_ROLE, 404, TENANT_WIDE, 403),
    ("DELETE", "/v1/campaigns/{campaign_id}"):         (401, 401, 401, 401, 403, 404, TENANT_WIDE, 403),
    ("POST", "/v1/campaigns/{campaign_id}/pledges"):   (401, 401, 401, 401, 403, 404, OWN_ONLY, 403),
    ("DELETE", "/v1/campaigns/{campaign_id}/pledges"): (401, 401, 401, 401, 403, 404, OWN_ONLY, 403),
    ("GET", "/v1/campaigns/{campaign_id}/pledges/mine"): (401, 401, 401, 401, 403, 404, NOT_ALICES_PLEDGE, 403),
    ("POST", "/v1/webhooks"):                          (401, 401, 401, 401, 403, OWN_TENANT, ADMIN_ONLY, 403),
    ("GET", "/v1/webhooks"):                           (401, 401, 401, 401, 403, NO_ENDPOINTS_FOR_OTHERS,
                                                        ADMIN_ONLY, 403),
    ("GET", "/v1/webhooks/{endpoint_id}"):             (401, 401, 401, 401, 403, 404, ADMIN_ONLY, 403),
    ("DELETE", "/v1/webhooks/{endpoint_id}"):          (401, 401, 401, 401, 403, 404, ADMIN_ONLY, 403),
    ("POST", "/v1/webhooks/{endpoint_id}/enable"):     (401, 401, 401, 401, 403, 404, ADMIN_ONLY, 403),
    ("GET", "/v1/webhooks/{endpoint_id}/deliveries"):  (401, 401, 401, 401, 403, 404, ADMIN_ONLY, 403),
}
# The webhook's own case: a bearer token, even an admin's with MFA, is no signature.
WEBHOOK_CASES = {"admin_bearer_without_signature": (400, "invalid_webhook")}
# The carrier webhook's: a bearer token on a genuine-looking EasyPost update is no X-Hmac-Signature.
CARRIER_CASES = {"admin_bearer_without_carrier_signature": (400, "invalid_webhook")}

CELLS = [(route, case) for route, row in MATRIX.items() for case, expected in zip(CASES, row, strict=True)
         if not isinstance(expected, NotApplicable)]
CELLS += [(("POST", WEBHOOK_PATH), case) for case in WEBHOOK_CASES]
CELLS += [(("POST", CARRIER_WEBHOOK_PATH), case) for case in CARRIER_CASES]
tried: list[tuple[tuple[str, str], str]] = []


def _cell_id(cell: tuple[tuple[str, str], str]) -> str:
    (method, path), case = cell
    return f"{method} {path} {case}"


# --- the route table and the document cover the matrix ---------------------------------------------

def _routes() -> set[tuple[str, str]]:
    app = web.Application()
    setup_routes(app)
    return {(route.method, route.resource.canonical) for route in app.router.routes()  # type: ignore[union-attr]
            if route.method != "HEAD" and route.resource is not None and route.resource.canonical.startswith("/v1/")}


def _operation(route: tuple[str, str]) -> dict[str, Any]:
    method, path = route
    return OPENAPI["paths"][path][method.lower()]  # type: ignore[no-any-return]


def test_every_v1_route_of_the_route_table_and_the_document_is_in_the_matrix() -> None:
    # Given the gateway's route table and its OpenAPI document
    documented = {(method.upper(), path) for path, item in OPENAPI["paths"].items() for method in item
                  if path.startswith("/v1/")}
    # Then both have exactly the matrix's routes, and each row says something of every case
    assert _routes() == set(MATRIX) == set(DOORS)
    assert documented == set(MATRIX)
    assert all(len(row) == len(CASES) for row in MATRIX.values())
    print(f"\n[auth matrix] {len(CELLS)} cells over {len(MATRIX)} routes × {len(CASES)} cases "
          f"(+ the webhook's own), {len(MATRIX) * len(CASES) - len(CELLS) + len(WEBHOOK_CASES) + len(CARRIER_CASES)} not applicable")


# --- the setup: something real to be refused --------------------------------------------------------

async def _prepare(stack: Stack) -> dict[str, Any]:
    """A product, its stock, alice's order (waiting for payment), a campaign she pledged to; then the
    end offsets of every topic of the namespace, once the agents have processed everything."""
    assert stack.gateway is not None
    vendor, alice = valid(VERA), valid(ALICE)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        api = Api(stack.gateway.url, session)
        product = await api.post("/v1/products", vendor, {**PRODUCT, "name": "Matrix mug",
                                                            "price": {"amount": 1299, "currency": "EUR"}})
        assert product.status == 202, product.body

        async def served() -> bool:
            return (await api.get(f"/v1/products/{SKU}", alice)).status == 200

        await eventually_async(served, SETTLE_SECONDS, f"product {SKU} served")
        stocked = await api.post(f"/v1/inventory/{SKU}/adjustments", vendor, {"delta": 10, "reason": "restock"})
        assert stocked.status == 202 and stocked.body["status"] == "applied", stocked.body
        placed = await api.post("/v1/orders", alice, {"lines": [{"sku": SKU, "quantity": 1}]})
        assert placed.status == 202, placed.body
        order = await api.poll_past(f"/v1/orders/{placed.body['order_id']}", alice, {"pending", "reserved"},
                                    SETTLE_SECONDS, appear_wait=20)
        assert order["status"] == "payment_pending", order
        opened = await api.post("/v1/campaigns", vendor, {**CAMPAIGN_BODY, "campaign_id": CAMPAIGN,
                                                          "group_price": {"amount": 999, "currency": "EUR"},
                                                          "target_quantity": 3, "max_quantity": 3})
        assert opened.status == 202 and opened.body["status"] == "open", opened.body
        pledged = await api.post(f"/v1/campaigns/{CAMPAIGN}/pledges", alice, {"quantity": 1})
        assert pledged.status == 200 and pledged.body["status"] == "accepted", pledged.body
        registered = await api.post("/v1/webhooks", valid(ROOT), WEBHOOK_ENDPOINT)
        assert registered.status == 201, registered.body
    await asyncio.to_thread(stack.wait_drained)
    await asyncio.to_thread(stack.wait_drained, 90.0, "webhooks")
    return {"sku": SKU, "campaign_id": CAMPAIGN, "order": order, "order_id": order["order_id"],
            "endpoint_id": registered.body["endpoint_id"], "ends": _end_offsets(stack)}


def _end_offsets(stack: Stack) -> dict[tuple[str, int], int]:
    consumer = confluent_kafka.Consumer({"bootstrap.servers": stack.bootstrap, "group.id": "auth-matrix-offsets"})
    try:
        ends = {}
        for name in declared_names(stack.namespace):
            for partition in consumer.list_topics(name, timeout=10).topics[name].partitions:
                _, high = consumer.get_watermark_offsets(confluent_kafka.TopicPartition(name, partition), timeout=10)
                ends[(name, partition)] = high
        return ends
    finally:
        consumer.close()


@pytest.fixture(scope="module")
def world(stack: Stack) -> dict[str, Any]:
    return asyncio.run(_prepare(stack))


# --- the matrix ------------------------------------------------------------------------------------------

def _request(door: Door, case: str, world: dict[str, Any]) -> tuple[str | None, dict[str, str], Any]:
    """The token, headers and body of the door's request with the case's one defect."""
    headers = dict(door.headers)
    who = door.allowed
    if case == "admin_bearer_without_signature":
        order = world["order"]
        event = build_event("payment_intent.succeeded", order_id=order["order_id"], tenant=TENANT,
                            intent_id=order["payment"]["intent_id"], amount=order["total"]["amount"],
                            currency=order["total"]["currency"].lower())
        return valid(Who("admin", "root")), {**headers, "Content-Type": "application/json"}, json.dumps(event).encode()
    if case == "admin_bearer_without_carrier_signature":
        update = build_tracker_event("EZMATRIX1", "delivered", event_id="evt_matrix", at=datetime.now(UTC))
        return valid(Who("admin", "root")), {**headers, "Content-Type": "application/json"}, json.dumps(update).encode()
    tokens = {
        "no_token": lambda: None,
        "bad_signature": lambda: bad_signature(who),
        "expired": lambda: expired(who),
        "alg_none": lambda: alg_none(who),
        "wrong_role": lambda: valid(Who(door.wrong_role or "", who.sub)),
        "other_tenant": lambda: valid(Who(who.role, who.sub, OTHER_TENANT)),  # same role and sub, another tenant
        "other_customer": lambda: valid(door.other_customer),
        "admin_without_mfa": lambda: valid(ADMIN_WITHOUT_MFA, amr=["pwd"]),
    }
    return tokens[case](), headers, door.body


@pytest.mark.parametrize("cell", CELLS, ids=_cell_id)
async def test_a_door_refuses_what_it_must(cell: tuple[tuple[str, str], str], world: dict[str, Any],
                                           stack: Stack, http: aiohttp.ClientSession) -> None:
    # Given the route's request with everything right but the case's one defect
    route, case = cell
    door = DOORS[route]
    if case in WEBHOOK_CASES or case in CARRIER_CASES:
        status, code = {**WEBHOOK_CASES, **CARRIER_CASES}[case]
        expected: Any = status
    else:
        expected = MATRIX[route][CASES.index(case)]
        if isinstance(expected, Shows):
            status, code = expected.status, None
        else:
            status, code = expected if isinstance(expected, tuple) else (expected, CODES[case])
    who, headers, body = _request(door, case, world)
    assert stack.gateway is not None
    api = Api(stack.gateway.url, http)

    # When it is sent
    method, _ = route
    path = door.path.format(**world)
    if isinstance(body, bytes):
        reply = await api.call(method, path, who, headers=headers, raw=body)
    else:
        reply = await api.call(method, path, who, body, headers=headers)
    tried.append(cell)

    # Then it gets the table's status, one the document lists for the operation, with the case's code
    assert reply.status == status, reply.body
    assert str(status) in _operation(route)["responses"], f"{status} is not documented for {_cell_id(cell)}"
    if code is not None:
        assert reply.body["error"]["code"] == code, reply.body
    if isinstance(expected, Shows):
        assert {name: reply.body.get(name) for name in expected.fields} == expected.fields, reply.body


def test_no_refused_request_wrote_anything(stack: Stack, world: dict[str, Any]) -> None:
    # Given the matrix sent (the tests above ran first) and the end of every topic before it
    assert tried, "the matrix tried no cell"
    stack.wait_drained()
    # When every topic of the stack's namespace is read from there (what the agents did after a
    # command too), the gateway's inputs always, any other topic if it grew
    gateway_inputs = {stack.topic(name) for name in ("catalog.products", "inventory.commands", "orders.commands",
                                                      "payments.webhooks", "campaigns.commands", "shipments.commands",
                                                      "shipping.tracking", "webhooks.commands")}
    now = _end_offsets(stack)
    grown = {name for (name, partition), end in now.items() if end > world["ends"][(name, partition)]}
    written = []
    for name in sorted(gateway_inputs | grown):
        for message in read_topic(stack.bootstrap, name, idle_seconds=1.0, committed_only=False):
            if message.offset() >= world["ends"][(name, message.partition())]:
                written.append(f"{name}: {message.value()[:300]!r}")
    # Then there is nothing: no refused request wrote a record, nor caused one
    assert written == []
    print(f"\n[auth matrix] {len(tried)} cells tried; {len(gateway_inputs | grown)} topics read, nothing written")
