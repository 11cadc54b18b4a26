"""The gateway's OpenAPI 3.1 document, built from its route table and the pydantic models it uses.

One source of truth: `gateway/routes.py` says which method and path exist and which view serves
them; `OPERATIONS` below says, per route, what a client needs beyond that (summary, who may call
it, the request model of `gateway/requests.py`, the answers with their models of
`gateway/responses.py`, headers and query parameters). Schemas come from pydantic
(`models_json_schema` with `ref_template="#/components/schemas/{model}"`, whose `$defs` become the
components), so a changed model changes the document. A route without an entry here makes
`document()` fail; an entry without a route is refused too.

- served at `GET /openapi.json`, browsable at `GET /docs` (gateway/views/docs.py);
- committed as `schemas/openapi.json` by `python -m devtools.generate` and drift-tested in
  tests/unit/test_generated_artifacts.py;
- fuzzed against a running gateway by tests/integration/test_openapi_contract.py (schemathesis).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field, TypeAdapter
from pydantic.json_schema import models_json_schema

from gateway.idempotency import MAX_IDEMPOTENCY_KEY
from gateway.requests import (
    AdjustmentRequest,
    CampaignRequest,
    OrderRequest,
    PledgeRequest,
    ProductRequest,
    ShipmentRequest,
    WebhookEndpointRequest,
)
from gateway.responses import (
    AdjustmentApplied,
    AdjustmentPending,
    CampaignList,
    CampaignPending,
    CampaignStatusName,
    CampaignView,
    CarrierWebhookReceipt,
    ErrorBody,
    Health,
    MyPledge,
    OrderAccepted,
    OrderCancelAccepted,
    OrderStatusName,
    OrderView,
    PledgeAccepted,
    PledgePending,
    ProductAccepted,
    ProductList,
    ProductView,
    RecommendationsView,
    Readiness,
    ShipmentPending,
    ShipmentView,
    StockView,
    WebhookDeliveries,
    WebhookEndpointAccepted,
    WebhookEndpointCreated,
    WebhookEndpointList,
    WebhookEndpointPending,
    WebhookEndpointView,
    WebhookReceipt,
)
from gateway.views.common import MAX_WAIT_SECONDS
from gateway.views.recommendations import DEFAULT_LIMIT as RECOMMENDATIONS_DEFAULT_LIMIT
from gateway.views.recommendations import MAX_LIMIT as RECOMMENDATIONS_MAX_LIMIT
from gateway.views.webhooks import DEFAULT_LOG_LINES, MAX_LOG_LINES
from streams.models import Identifier

OPENAPI_VERSION = "3.1.0"
REF_TEMPLATE = "#/components/schemas/{model}"
BEARER = "bearerAuth"
# The Swagger UI files `/docs` needs, served from the swagger-ui-py package (no CDN).
DOCS_ASSETS = {"swagger-ui-bundle.js": "application/javascript", "swagger-ui.css": "text/css"}


@dataclass(frozen=True)
class Answer:
    """One response: its description, body models (several: any one of them) and header names."""

    description: str
    models: tuple[type[BaseModel], ...] = (ErrorBody,)
    headers: tuple[str, ...] = ()
    media_types: tuple[str, ...] = ("application/json",)
    raw_schema: dict[str, Any] | None = None  # a body that is no model of ours (HTML, the document itself)


@dataclass(frozen=True)
class Param:
    name: str
    where: Literal["query", "header", "path"]
    type: Any
    description: str
    required: bool = False
    example: Any = None


@dataclass(frozen=True)
class Operation:
    summary: str
    tag: str
    answers: dict[int, Answer]
    description: str = ""
    body: type[BaseModel] | None = None
    params: tuple[Param, ...] = ()
    roles: tuple[str, ...] = ()  # empty: any role with a valid token
    auth: Literal["bearer", "none", "stripe", "carrier"] = "bearer"
    reads_workers: bool = False  # reads a table through a worker: may be 503 while no worker serves it
    extra: dict[str, Any] = field(default_factory=dict)


def error(description: str, *headers: str) -> Answer:
    return Answer(description, (ErrorBody,), headers)


# Path parameters by name: every route that has `{sku}` means the same thing by it.
PATH_PARAMS = {
    "sku": Param("sku", "path", Identifier, "the SKU (letters, digits, `.`, `_`, `:`, `-`)", required=True,
                 example="MUG-1"),
    "order_id": Param("order_id", "path", uuid.UUID, "the order id answered by `POST /v1/orders`", required=True,
                      example="5b0c6a4e-8f3a-4f7e-9a52-0d8f6e2b1c37"),
    "campaign_id": Param("campaign_id", "path", Identifier, "the campaign's id", required=True, example="mug-club"),
    "endpoint_id": Param("endpoint_id", "path", uuid.UUID, "the webhook endpoint's id answered by `POST /v1/webhooks`",
                         required=True, example="0e6f4c2a-7d1b-4a3e-8f5c-9b2d6a1e3c47"),
    "name": Param("name", "path", Literal[tuple(DOCS_ASSETS)],  # type: ignore[misc]
                  "a Swagger UI file", required=True),
}
WAIT = Param("wait", "query", Annotated[float, Field(ge=0, le=MAX_WAIT_SECONDS)],
             "long poll: wait up to this many seconds for the resource to appear or (with `known`) for its "
             "status to differ from `known`; the answer comes right after the change is committed")


IDEMPOTENCY_KEY = Param("Idempotency-Key", "header",
                        Annotated[str, Field(min_length=1, max_length=MAX_IDEMPOTENCY_KEY)],
                        "makes a retry safe: the same key (per caller) with the same body gets the first answer, "
                        "with another body a 409 `idempotency_key_reused`")


def known(statuses: Any) -> Param:
    return Param("known", "query", str, "long poll: the status the client already has, one of "
                 + ", ".join(f"`{s}`" for s in statuses.__args__) + "; any other value answers at once")


WEBHOOK_REGISTRATION = """The URL must be a public address over HTTPS (private and loopback addresses only
where the deployment sets WEBHOOK_ALLOW_PRIVATE_TARGETS); `events` are envelope types of the platform's
events or `["*"]`. Each delivery is a POST of the event's envelope as JSON, signed with the endpoint's
secret. An endpoint whose deliveries fail persistently is disabled (`POST .../enable` turns it back on).
With an `Idempotency-Key` a retry answers the same endpoint; the same key with another body is a 409."""

ORDER_PLACEMENT = """An order is answered 202 at once, in status `pending`: the orders agent decides.
Long-poll `GET /v1/orders/{order_id}?wait=10&known=pending` for what follows: `reserved` (every line held)
or `rejected`, then `payment_pending` with the PaymentIntent (its `client_secret` for the storefront's
payment form), `paid`, `confirmed`. With an `Idempotency-Key` a retry answers the same order; the same key
with another body is a 409."""

PRODUCT_LISTING = """Answered from the gateway's own view of the catalog and the stock (a few hundred
milliseconds behind the workers). `q` matches words of the name and the description (lower-cased; every
word must be there, the last one as a prefix); `relevance` ranks a word in the name above one in the
description. The price range is on the amount in minor units whatever the currency (add `currency` to keep
one). Customers see `active` products only; vendors and admins see all of their tenant's and may filter by
`status`. Paging is keyset paging: pass `next_cursor` back as `cursor` with the same sort; products that
exist throughout paging are neither skipped nor repeated, whatever is added meanwhile (a product whose
price changes while paging by price may move)."""

LISTING_PARAMS = (
    Param("q", "query", Annotated[str, Field(max_length=200)], "words to match in the name and description",
          example="mug"),
    Param("min_price", "query", Annotated[int, Field(ge=0, le=10**15)], "lowest price amount, in minor units"),
    Param("max_price", "query", Annotated[int, Field(ge=0, le=10**15)], "highest price amount, in minor units"),
    Param("currency", "query", Annotated[str, Field(pattern=r"^[A-Z]{3}$")], "only products priced in it"),
    Param("in_stock", "query", bool, "only products with available units", example=True),
    Param("status", "query", Literal["draft", "active", "archived"],
          "vendors and admins: only products of this status (customers: `active` only)"),
    Param("sort", "query", Literal["relevance", "price_asc", "price_desc", "newest"],
          "`relevance` (the default with q; needs q), `price_asc`, `price_desc`, `newest` (the default without "
          "q: by creation time)"),
    Param("cursor", "query", str, "`next_cursor` of the previous page"),
    Param("limit", "query", Annotated[int, Field(ge=1, le=100)], "products per page (default 20)", example=20),
)

OPERATIONS: dict[tuple[str, str], Operation] = {
    ("GET", "/healthz"): Operation(
        "The process is up", "health", {200: Answer("up", (Health,))}, auth="none"),
    ("GET", "/readyz"): Operation(
        "Kafka answers, every table partition is served by a ready worker and the catalog view has caught up",
        "health",
        {200: Answer("ready", (Readiness,)), 503: Answer("not ready (yet)", (Readiness,))}, auth="none"),
    ("GET", "/openapi.json"): Operation(
        "This document", "documentation",
        {200: Answer("the OpenAPI 3.1 document", raw_schema={"type": "object"})}, auth="none"),
    ("GET", "/docs"): Operation(
        "This document, browsable (Swagger UI)", "documentation",
        {200: Answer("an HTML page", media_types=("text/html",), raw_schema={"type": "string"})}, auth="none"),
    ("GET", "/docs/assets/{name}"): Operation(
        "A file of the browsable page", "documentation",
        {200: Answer("the file", media_types=tuple(sorted(set(DOCS_ASSETS.values()))), raw_schema={"type": "string"}),
         404: error("no such file")}, auth="none"),
    ("POST", "/v1/products"): Operation(
        "Create or replace a product of the caller's tenant", "catalog",
        {202: Answer("written; the catalog serves it within a commit interval", (ProductAccepted,), ("Location",))},
        body=ProductRequest, roles=("vendor", "admin")),
    ("GET", "/v1/products"): Operation(
        "Browse and search the caller's tenant's products, with their availability", "catalog",
        {200: Answer("a page of products and the cursor of the next one", (ProductList,)),
         400: error("`invalid_cursor`: a cursor this API did not make, or made for another sort"),
         403: error("`forbidden`: a customer asked for a status other than `active`"),
         422: error("`invalid_query`: a parameter out of its range")},
        description=PRODUCT_LISTING, params=LISTING_PARAMS),
    ("GET", "/v1/products/{sku}"): Operation(
        "A product of the caller's tenant (customers: an active one)", "catalog",
        {200: Answer("the product", (ProductView,)),
         404: error("no such product in the caller's tenant, or not active and the caller a customer")},
        reads_workers=True),
    ("GET", "/v1/products/{sku}/recommendations"): Operation(
        "Products bought with a product (customers also bought)", "catalog",
        {200: Answer("the active products in stock most bought with it (decayed over time), filled up with the "
                     "tenant's most ordered ones", (RecommendationsView,)),
         404: error("no such product in the caller's tenant, or not active and the caller a customer")},
        params=(Param("limit", "query", Annotated[int, Field(ge=1, le=RECOMMENDATIONS_MAX_LIMIT)],
                      f"how many products at most (default {RECOMMENDATIONS_DEFAULT_LIMIT})",
                      example=RECOMMENDATIONS_DEFAULT_LIMIT),),
        reads_workers=True),
    ("POST", "/v1/inventory/{sku}/adjustments"): Operation(
        "Add (restock) or remove (write-off) units of a SKU", "inventory",
        {202: Answer("applied (with the stock after it), or pending when the inventory agent took longer than a "
                     "few seconds", (AdjustmentApplied, AdjustmentPending)),
         404: error("`unknown_sku`: the SKU is not in the catalog"),
         409: error("`insufficient_stock`: a write-off below the units held; `idempotency_key_reused`")},
        body=AdjustmentRequest, roles=("vendor", "admin"), params=(IDEMPOTENCY_KEY,)),
    ("GET", "/v1/inventory/{sku}"): Operation(
        "Stock of a SKU", "inventory",
        {200: Answer("the stock (zeros for a catalog SKU never stocked)", (StockView,)),
         404: error("no such SKU in the caller's tenant")},
        reads_workers=True),
    ("POST", "/v1/orders"): Operation(
        "Place an order", "orders",
        {202: Answer("accepted, `pending`; a replay with the same Idempotency-Key answers the same order",
                     (OrderAccepted,), ("Location",)),
         409: error("`idempotency_key_reused`: the key was used for another body")},
        description=ORDER_PLACEMENT, body=OrderRequest, roles=("customer",),
        params=(IDEMPOTENCY_KEY,)),
    ("GET", "/v1/orders/{order_id}"): Operation(
        "An order (long-poll with wait and known)", "orders",
        {200: Answer("the order; `payment.client_secret` only for the customer who placed it", (OrderView,)),
         404: error("no such order, or not the caller's")},
        params=(WAIT, known(OrderStatusName)), reads_workers=True),
    ("POST", "/v1/orders/{order_id}/cancel"): Operation(
        "Cancel an order: before the capture the intent is voided, after it the payment is refunded", "orders",
        {202: Answer("cancelling (or refunding)", (OrderCancelAccepted,), ("Location",)),
         404: error("no such order, or not the caller's"),
         409: error("`not_cancellable`: the order is already refunded, cancelled or ended; `already_shipped`: "
                    "the order has a shipment, request a return instead")},
        roles=("customer", "admin"), reads_workers=True),
    ("POST", "/v1/payments/webhook"): Operation(
        "Stripe's webhook events", "payments",
        {200: Answer("a genuine event: recorded, or acknowledged and ignored", (WebhookReceipt,)),
         400: error("`invalid_webhook`: missing or bad `Stripe-Signature` (no `v1` matches), a timestamp more "
                    "than 5 minutes old or ahead, or a body that is not a Stripe event; nothing is written"),
         503: error("`unavailable`: the event names no order in its metadata and Stripe did not answer in time "
                    "for its PaymentIntent's; nothing is written, Stripe sends the event again", "Retry-After")},
        description="Authenticated by Stripe's signature over the raw body (STRIPE_WEBHOOK_SECRET), not by a "
                    "bearer token; any of several `v1` signatures (a secret being rolled) will do. Handled: "
                    "`payment_intent.amount_capturable_updated`, `payment_intent.succeeded`, "
                    "`payment_intent.payment_failed`, `payment_intent.canceled`, `charge.refunded` (partial or "
                    "full: the charge's `amount_refunded` so far). An event without `order_id` and `tenant` in its "
                    "object's metadata is resolved through its PaymentIntent's.",
        params=(Param("Stripe-Signature", "header", str, "`t=<unix time>,v1=<HMAC-SHA256 hex>` as Stripe sends it",
                      required=True),),
        auth="stripe", extra={"requestBody": {"required": True, "description": "a Stripe event, as Stripe sends it",
                                              "content": {"application/json": {"schema": {"type": "object"}}}}}),
    ("POST", "/v1/orders/{order_id}/shipments"): Operation(
        "Ship lines of a confirmed order (one of several shipments, or all of it)", "shipping",
        {201: Answer("the shipment, as the orders agent made it (`label_created`)", (ShipmentView,), ("Location",)),
         202: Answer("written; the orders agent had not decided within a few seconds", (ShipmentPending,),
                     ("Location",)),
         404: error("no such order in the caller's tenant"),
         409: error("`not_shippable`: the order is not confirmed (nor partially shipped); `exceeds_ordered`: more "
                    "units of a SKU than ordered and not yet shipped, or a SKU not on the order; "
                    "`idempotency_key_reused`")},
        description="The order's status follows its shipments: `partially_shipped` while units remain, `shipped` "
                    "once all are in shipments, `delivered` once every shipment is. The carrier's tracking "
                    "updates (`POST /v1/shipping/webhook`) move each shipment: `label_created`, `in_transit`, "
                    "`out_for_delivery`, `delivered`, `exception`, `returned`.",
        body=ShipmentRequest, roles=("vendor", "admin"), params=(IDEMPOTENCY_KEY,), reads_workers=True),
    ("POST", "/v1/shipping/webhook"): Operation(
        "Carrier tracking updates (EasyPost's tracker events)", "shipping",
        {200: Answer("a genuine update: recorded (an unknown tracking number is dead-lettered by the shipping "
                     "agent), or acknowledged and ignored", (CarrierWebhookReceipt,)),
         400: error("`invalid_webhook`: missing or bad `X-Hmac-Signature`, or a body that is not an EasyPost "
                    "tracker event; nothing is written")},
        description="Authenticated by EasyPost's HMAC over the raw body (CARRIER_WEBHOOK_SECRET), not by a bearer "
                    "token. EasyPost's statuses map to the shipment's: `pre_transit` -> `label_created`, "
                    "`in_transit`, `out_for_delivery` (and `available_for_pickup`), `delivered`, "
                    "`return_to_sender` -> `returned`, `failure`, `error`, `unknown`, `cancelled` -> `exception`. "
                    "Updates out of order never move a shipment backwards; a replayed event id changes nothing.",
        params=(Param("X-Hmac-Signature", "header", str, "`hmac-sha256-hex=<hex HMAC-SHA256 of the body>` as "
                      "EasyPost sends it", required=True),),
        auth="carrier", extra={"requestBody": {"required": True, "description": "an EasyPost Event (tracker.updated)",
                                               "content": {"application/json": {"schema": {"type": "object"}}}}}),
    ("POST", "/v1/campaigns"): Operation(
        "Open a group-buying campaign: holds max_quantity units of the SKU until ends_at", "campaigns",
        {202: Answer("the campaign as the campaigns agent decided (`open` or `rejected`), or `opening` when it "
                     "took longer than a few seconds", (CampaignView, CampaignPending), ("Location",)),
         409: error("`campaign_exists`: choose another campaign_id; `idempotency_key_reused`")},
        body=CampaignRequest, roles=("vendor", "admin"), params=(IDEMPOTENCY_KEY,)),
    ("GET", "/v1/campaigns"): Operation(
        "The caller's tenant's campaigns of a SKU", "campaigns",
        {200: Answer("the campaigns, newest last", (CampaignList,))},
        params=(Param("sku", "query", Identifier, "the SKU", required=True, example="MUG-1"),), reads_workers=True),
    ("GET", "/v1/campaigns/{campaign_id}"): Operation(
        "A campaign (long-poll with wait and known)", "campaigns",
        {200: Answer("the campaign", (CampaignView,)), 404: error("no such campaign in the caller's tenant")},
        params=(WAIT, known(CampaignStatusName)), reads_workers=True),
    ("DELETE", "/v1/campaigns/{campaign_id}"): Operation(
        "Cancel an open or tipped campaign: nobody pays, the units go back", "campaigns",
        {202: Answer("cancelled, or `cancelling` when the agent took longer than a few seconds",
                     (CampaignView, CampaignPending)),
         404: error("no such campaign in the caller's tenant"),
         409: error("`not_cancellable`: the campaign is not open or tipped")},
        roles=("vendor", "admin"), reads_workers=True),
    ("POST", "/v1/campaigns/{campaign_id}/pledges"): Operation(
        "Pledge to a campaign, or replace the caller's pledge", "campaigns",
        {200: Answer("accepted", (PledgeAccepted,)),
         202: Answer("written; the verdict did not come within a few seconds (read `pledges/mine`)", (PledgePending,)),
         404: error("no such campaign in the caller's tenant"),
         409: error("refused (`campaign_closed`, `campaign_ended`, past `max_quantity`, ...); `details` has the "
                    "pledge id and the campaign; `idempotency_key_reused`")},
        body=PledgeRequest, roles=("customer",), reads_workers=True, params=(IDEMPOTENCY_KEY,)),
    ("DELETE", "/v1/campaigns/{campaign_id}/pledges"): Operation(
        "Withdraw the caller's pledge", "campaigns",
        {200: Answer("withdrawn (`quantity` 0)", (PledgeAccepted,)),
         202: Answer("written; the verdict did not come within a few seconds", (PledgePending,)),
         404: error("no such campaign in the caller's tenant"),
         409: error("refused: the campaign no longer takes pledges; `idempotency_key_reused`")},
        roles=("customer",), reads_workers=True, params=(IDEMPOTENCY_KEY,)),
    ("GET", "/v1/campaigns/{campaign_id}/pledges/mine"): Operation(
        "The caller's pledge, its latest verdict and, once the campaign succeeded, the order", "campaigns",
        {200: Answer("the pledge", (MyPledge,)), 404: error("no such campaign in the caller's tenant")},
        roles=("customer",), reads_workers=True),
    ("POST", "/v1/webhooks"): Operation(
        "Register a webhook endpoint of the caller's tenant: the chosen events are POSTed to it, signed", "webhooks",
        {201: Answer("registered; the only answer with the endpoint's signing `secret` (a replay with the same "
                     "Idempotency-Key and body shows it again)", (WebhookEndpointCreated,), ("Location",)),
         202: Answer("written; the webhooks agent had not registered it within a few seconds",
                     (WebhookEndpointPending,), ("Location",)),
         409: error("`idempotency_key_reused`: the key was used for another body; `secret_unavailable`: a replay "
                    "whose secret cannot be shown any more")},
        description=WEBHOOK_REGISTRATION, body=WebhookEndpointRequest, roles=("admin",), params=(IDEMPOTENCY_KEY,)),
    ("GET", "/v1/webhooks"): Operation(
        "The caller's tenant's webhook endpoints, without their secrets", "webhooks",
        {200: Answer("the endpoints", (WebhookEndpointList,))}, roles=("admin",), reads_workers=True),
    ("GET", "/v1/webhooks/{endpoint_id}"): Operation(
        "A webhook endpoint, without its secret", "webhooks",
        {200: Answer("the endpoint", (WebhookEndpointView,)),
         404: error("no such endpoint in the caller's tenant (or deleted)")}, roles=("admin",), reads_workers=True),
    ("DELETE", "/v1/webhooks/{endpoint_id}"): Operation(
        "Delete a webhook endpoint: nothing more is delivered to it", "webhooks",
        {202: Answer("written; the webhooks agent deletes it", (WebhookEndpointAccepted,)),
         404: error("no such endpoint in the caller's tenant (or deleted)")}, roles=("admin",), reads_workers=True),
    ("POST", "/v1/webhooks/{endpoint_id}/enable"): Operation(
        "Enable a webhook endpoint that was disabled after persistent failure", "webhooks",
        {202: Answer("written; the webhooks agent enables it if it is disabled", (WebhookEndpointAccepted,),
                     ("Location",)),
         404: error("no such endpoint in the caller's tenant (or deleted)")}, roles=("admin",), reads_workers=True),
    ("GET", "/v1/webhooks/{endpoint_id}/deliveries"): Operation(
        "A webhook endpoint's delivery log, newest first, and the deliveries waiting for an attempt", "webhooks",
        {200: Answer("the log", (WebhookDeliveries,)),
         404: error("no such endpoint in the caller's tenant (or deleted)")},
        params=(Param("limit", "query", Annotated[int, Field(ge=1, le=MAX_LOG_LINES)],
                      f"log lines to show (default {DEFAULT_LOG_LINES})", example=DEFAULT_LOG_LINES),), roles=("admin",), reads_workers=True),
}

TAGS = [
    {"name": "catalog", "description": "Products of the caller's tenant; prices in minor units"},
    {"name": "inventory", "description": "Stock per SKU"},
    {"name": "orders", "description": "Orders: reserved, paid through Stripe, confirmed; or rejected, cancelled, "
                                      "expired, refunded"},
    {"name": "campaigns", "description": "Group buying: pledges, and an order per pledge when the target is reached"},
    {"name": "payments", "description": "Stripe's webhooks"},
    {"name": "shipping", "description": "Shipments of confirmed orders and the carrier's tracking updates"},
    {"name": "webhooks", "description": "Outbound webhooks: a tenant's endpoints, signed deliveries of its events, "
                                        "each endpoint's delivery log"},
    {"name": "health", "description": "Probes"},
    {"name": "documentation", "description": "This document"},
]

HEADERS = {
    "Location": {"description": "where to read the resource", "required": True, "schema": {"type": "string"}},
    "Retry-After": {"description": "seconds to wait before trying again", "required": True,
                    "schema": {"type": "integer", "minimum": 0}},
    "RateLimit-Limit": {"description": "requests the budget this request counted against allows per window "
                                       "(IETF draft RateLimit header fields)",
                        "schema": {"type": "integer", "minimum": 0}},
    "RateLimit-Remaining": {"description": "requests left in it", "schema": {"type": "integer", "minimum": 0}},
    "RateLimit-Reset": {"description": "seconds until it is full again", "schema": {"type": "integer", "minimum": 0}},
}
RATE_LIMIT_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")

DESCRIPTION = """The public HTTP API of FusionCommerce Streams. Writes are validated here, become one event on
Kafka and are answered 202; the agents decide. Reads come from the agents' committed state.

Authentication: `Authorization: Bearer <JWT>` (HS256; claims `sub`, `role` = customer, vendor or admin,
`tenant`, `exp`) on every `/v1/` path but the webhooks (Stripe's, the carrier's). Everything is scoped to the token's tenant.
Errors are `{"error": {"code", "message", "details"}}`: 401 without or with a bad token, 403 for the wrong
role, 404 for what does not exist or belongs to another tenant or customer, 409 for a conflict, 422 for an
invalid body or query, 503 (with Retry-After) when the state cannot be read right now."""


Route = tuple[str, str, Callable[..., Any]]


def route_table() -> list[Route]:
    """(method, path, view) of every route `gateway/routes.py` sets up; HEAD, which aiohttp adds beside
    each GET, is left out."""
    from gateway.routes import setup_routes  # the routes import the docs view, which imports this module

    app = web.Application()
    setup_routes(app)
    table = []
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        info = route.resource.get_info() if route.resource is not None else {}
        table.append((route.method, info.get("path") or info["formatter"], route.handler))
    return table


class UndocumentedRoute(LookupError):
    pass


def _schema(kind: Any) -> dict[str, Any]:
    return TypeAdapter(kind).json_schema(ref_template=REF_TEMPLATE)


def _parameter(param: Param) -> dict[str, Any]:
    schema = _schema(param.type)
    if param is WAIT:
        schema["default"] = 0
    described = {"name": param.name, "in": param.where, "required": param.required, "description": param.description,
                 "schema": schema}
    if param.example is not None:
        described["example"] = param.example
    return described


def _content(answer: Answer, refs: dict[type[BaseModel], dict[str, Any]]) -> dict[str, Any]:
    if answer.raw_schema is not None:
        schema = answer.raw_schema
    elif len(answer.models) == 1:
        schema = refs[answer.models[0]]
    else:
        schema = {"oneOf": [refs[model] for model in answer.models]}
    return {media_type: {"schema": schema} for media_type in answer.media_types}


def _answers(operation: Operation) -> dict[int, Answer]:
    """The operation's own answers and those every operation of its kind has."""
    common: dict[int, Answer] = {}
    if operation.auth == "bearer":
        common[401] = error("`missing_token`, `invalid_token` or `token_expired`")
        needs = f"`forbidden`: needs the role {' or '.join(operation.roles)}; " if operation.roles else ""
        common[403] = error(f"{needs}`mfa_required`: an admin token without `mfa` in its `amr` claim")
    common[429] = error("`rate_limited`: the budget of the caller (tenant and `sub`) or of its address is spent; "
                        "`too_many_long_polls`: the caller has as many long polls waiting as it may", "Retry-After",
                        *RATE_LIMIT_HEADERS)
    if operation.body is not None or "requestBody" in operation.extra:
        common[413] = error("`body_too_large`: the body is larger than the gateway accepts (GATEWAY_MAX_BODY_BYTES)")
    if operation.body is not None or any(p.where != "path" for p in operation.params):
        common[422] = error("`invalid_body`, `invalid_json` or `invalid_query`; `details` lists each problem; "
                            "nothing is written")
    if operation.reads_workers:
        common[503] = error("`unavailable`: no worker answered for the data in time; retry after Retry-After",
                            "Retry-After")
    return dict(sorted({**common, **operation.answers}.items()))


def _models(operations: Iterable[Operation]) -> list[type[BaseModel]]:
    seen: dict[type[BaseModel], None] = {}
    for operation in operations:
        if operation.body is not None:
            seen[operation.body] = None
        for answer in _answers(operation).values():
            seen.update(dict.fromkeys(answer.models if answer.raw_schema is None else ()))
    return list(seen)


def _operation(method: str, path: str, view: Callable[..., Any], operation: Operation,
               refs: dict[type[BaseModel], dict[str, Any]]) -> dict[str, Any]:
    path_params = [PATH_PARAMS[name] for name in _path_names(path)]
    described: dict[str, Any] = {
        "operationId": view.__name__,
        "summary": operation.summary,
        "tags": [operation.tag],
    }
    roles = f"Roles: {', '.join(operation.roles)}." if operation.roles else ""
    if operation.auth == "bearer" and not operation.roles:
        roles = "Roles: any."
    description = "\n\n".join(part for part in (operation.description, roles) if part)
    if description:
        described["description"] = description
    if operation.roles:
        described["x-roles"] = list(operation.roles)
    if operation.auth != "bearer":
        described["security"] = []
    parameters = [_parameter(p) for p in (*path_params, *operation.params)]
    if parameters:
        described["parameters"] = parameters
    if operation.body is not None:
        described["requestBody"] = {"required": True, "content": {"application/json": {"schema": refs[operation.body]}}}
    described.update(operation.extra)
    responses: dict[str, Any] = {}
    for status, answer in _answers(operation).items():
        response: dict[str, Any] = {"description": answer.description, "content": _content(answer, refs)}
        # Answers to a token's requests say how much of its budget is left (gateway/edge.py).
        names = dict.fromkeys((*answer.headers, *(RATE_LIMIT_HEADERS if operation.auth == "bearer" else ())))
        if names:
            response["headers"] = {name: {"$ref": f"#/components/headers/{name}"} for name in names}
        responses[str(status)] = response
    described["responses"] = responses
    return described


def _path_names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]


def document(routes: list[Route] | None = None) -> dict[str, Any]:
    """The OpenAPI document of `routes` (by default the gateway's route table)."""
    routes = route_table() if routes is None else routes
    missing = [f"{method} {path}" for method, path, _ in routes if (method, path) not in OPERATIONS]
    if missing:
        raise UndocumentedRoute(f"routes without an entry in gateway/openapi.py OPERATIONS: {', '.join(missing)}")
    stale = sorted(f"{method} {path}" for method, path in set(OPERATIONS) - {(m, p) for m, p, _ in routes})
    if stale:
        raise UndocumentedRoute(f"OPERATIONS entries without a route in gateway/routes.py: {', '.join(stale)}")
    operations = [OPERATIONS[(method, path)] for method, path, _ in routes]
    mapping, definitions = models_json_schema([(model, "validation") for model in _models(operations)],
                                              ref_template=REF_TEMPLATE)
    refs = {model: schema for (model, _), schema in mapping.items()}
    paths: dict[str, dict[str, Any]] = {}
    for (method, path, view), operation in zip(routes, operations, strict=True):
        paths.setdefault(path, {})[method.lower()] = _operation(method, path, view, operation, refs)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "FusionCommerce gateway", "version": "v1", "description": DESCRIPTION},
        "tags": TAGS,
        "paths": paths,
        "components": {
            "schemas": dict(sorted(definitions.get("$defs", {}).items())),
            "securitySchemes": {BEARER: {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                                         "description": "`make token ROLE=customer SUB=alice` mints a development "
                                                        "token"}},
            "headers": HEADERS,
        },
        "security": [{BEARER: []}],
    }


def render(content: dict[str, Any]) -> str:
    return json.dumps(content, indent=2) + "\n"


@cache
def document_bytes() -> bytes:
    """The document as served at `/openapi.json`, built once per process."""
    return render(document()).encode()
