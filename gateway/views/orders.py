"""`POST /v1/orders`, `GET /v1/orders/{id}` (long-poll) and `POST /v1/orders/{id}/cancel`.

Idempotency-Key: the order id is derived from (tenant, customer, key), so a replay names the same
order; the body's hash is stored with the order, so a replay with another body is told apart (see
gateway/idempotency.py). Cancelling needs no key: the order id names what is cancelled, and the
orders agent cancels (or refunds) an order once; a retry finds it cancelling or cancelled (409
`not_cancellable`, or 202 while the first cancel is still on its way) and writes nothing that acts twice.
An order with a shipment cannot be cancelled: 409 `already_shipped`, advising a return instead.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from aiohttp import web

from gateway.auth import Principal, principal
from gateway.errors import ApiError, not_found
from gateway.idempotency import appeared, derived_id, idempotency_key, key_reused
from gateway.requests import OrderRequest
from gateway.services import services
from gateway.workers import UNKNOWN, Unknown
from gateway.views.common import long_poll, parse_body
from streams.models import CancelOrder, Envelope, OrderLine, OrderStatus, PlaceOrder

IDEMPOTENCY_NAMESPACE = uuid.UUID("6f1f4a51-0b7e-4c47-9a53-5e0c6d1f2a10")
# How long an order with an Idempotency-Key waits for the orders' owner: its first look for the
# order, then, if a worker answered that, its read of the agent's verdict after writing.
IDEMPOTENCY_READ_SECONDS = 1.0
IDEMPOTENCY_VERDICT_SECONDS = 5.0


def _order_id(who: Principal, key: str | None) -> uuid.UUID:
    return uuid.uuid4() if key is None else derived_id(IDEMPOTENCY_NAMESPACE, who, key)


def visible_to(order: dict[str, Any] | None, who: Principal) -> bool:
    if order is None or order["tenant"] != who.tenant:
        return False
    return who.role != "customer" or order["customer"] == who.sub


def _accepted(order_id: uuid.UUID) -> web.Response:
    return web.json_response(
        {"order_id": str(order_id), "status": OrderStatus.PENDING}, status=202, headers={"Location": f"/v1/orders/{order_id}"}
    )


def _replayed(order: dict[str, Any], order_id: uuid.UUID, request_hash: str, who: Principal) -> web.Response:
    """The answer to a request whose key names an order that exists: the first answer, or 409."""
    if order["request_hash"] != request_hash or not visible_to(order, who):
        raise key_reused({"order_id": str(order_id)})
    return _accepted(order_id)


async def place_order(request: web.Request) -> web.Response:
    """Without an Idempotency-Key: the PlaceOrder is written and answered 202 at once.

    With one, the order id is the key's, and the orders agent, the single writer of that id, keeps
    the first placement whatever comes after it (streams/tables/orders.py: "the first placement
    stands"). The gateway looks for the order first (a replay of a placed order writes nothing),
    else writes the PlaceOrder and long-polls the order's owner until the order appears: its stored
    request_hash is this request's (202, the first answer) or another's (409
    `idempotency_key_reused`). Concurrent requests with one key, through any number of gateways,
    all write, and all but the one the agent kept get the 409. A write never waits for a worker
    beyond two bounded reads: the first look (IDEMPOTENCY_READ_SECONDS) and, only when a worker
    answered it, the read-back (IDEMPOTENCY_VERDICT_SECONDS). If no worker answers in time, the
    answer is 202 as without a key. That is safe, since a replay never makes a second order nor
    changes the first; only the 409 for a reused key with another body is lost then, and the
    client reads the first order back.
    """
    who = principal(request)
    who.require("customer")
    body = await parse_body(request, OrderRequest)
    request_hash = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
    key = idempotency_key(request)
    order_id = _order_id(who, key)
    found = services(request)
    existing: dict[str, Any] | None | Unknown = UNKNOWN
    if key is not None:
        existing = await found.reads.state_within("orders", str(order_id), IDEMPOTENCY_READ_SECONDS)
        if isinstance(existing, dict):  # neither None (no such order) nor UNKNOWN (no answer in time)
            return _replayed(existing, order_id, request_hash, who)
    command = PlaceOrder(
        order_id=order_id,
        customer=who.sub,
        lines=tuple(OrderLine(sku=line.sku, quantity=line.quantity) for line in body.lines),
        request_hash=request_hash,
    )
    await found.writer.write(Envelope.new(who.tenant, command))
    if existing is None:  # a key, and the order's owner answered: the agent's verdict is near
        placed = await appeared(found.reads, "orders", str(order_id), IDEMPOTENCY_VERDICT_SECONDS)
        if placed is not None:
            return _replayed(placed, order_id, request_hash, who)
    return _accepted(order_id)


def parse_order_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["order_id"])
    except ValueError:
        raise not_found(f"order {request.match_info['order_id']}") from None


CANCELLABLE = (
    OrderStatus.PENDING, OrderStatus.RESERVED, OrderStatus.PAYMENT_PENDING, OrderStatus.PAID, OrderStatus.CONFIRMED
)
# An order with any shipment is refused a cancel (409 `already_shipped`): a return is what it needs.
SHIPPED = (OrderStatus.PARTIALLY_SHIPPED, OrderStatus.SHIPPED, OrderStatus.DELIVERED)


def _payment_view(order: dict[str, Any], who: Principal) -> dict[str, Any] | None:
    payment = order.get("payment")
    if payment is None:
        return None
    view = {"status": payment["status"], "intent_id": payment["intent_id"], "refunded": payment.get("refunded")}
    if who.role == "customer" and order["customer"] == who.sub:
        # The storefront confirms the payment with it; nobody else needs it.
        view["client_secret"] = payment["client_secret"]
    return view


def _order_view(order: dict[str, Any], who: Principal) -> dict[str, Any]:
    return {
        "order_id": order["order_id"],
        "status": order["status"],
        "lines": [
            {"sku": line["sku"], "quantity": line["quantity"], "unit_price": line["unit_price"]} for line in order["lines"]
        ],
        "total": order["total"],
        "reason": order["reason"],
        "history": order["history"],
        "hold_expires_at": order["hold_expires_at"],
        "payment": _payment_view(order, who),
        "fulfilment": order.get("fulfilment"),
        "shipments": [shipment_view(order["order_id"], shipment) for shipment in order.get("shipments", ())],
    }


def shipment_view(order_id: str, shipment: dict[str, Any]) -> dict[str, Any]:
    return {
        "shipment_id": shipment["shipment_id"], "order_id": order_id, "status": shipment["status"],
        "lines": [{"sku": line["sku"], "quantity": line["quantity"]} for line in shipment["lines"]],
        "carrier": shipment["carrier"], "tracking_number": shipment["tracking_number"],
        "service": shipment["service"], "tracking_url": shipment["tracking_url"], "detail": shipment["detail"],
        "created_at": shipment["created_at"], "carrier_time": shipment["carrier_time"],
    }


async def get_order(request: web.Request) -> web.Response:
    who = principal(request)
    order_id = parse_order_id(request)
    wait, known = long_poll(request)
    found = services(request)
    order = await found.reads.state(
        "orders", str(order_id), wait=max(wait, found.settings.read_miss_wait_seconds if known is None else 0), known=known
    )
    if order is None or not visible_to(order, who):
        raise not_found(f"order {order_id}")
    return web.json_response(_order_view(order, who))


async def cancel_order(request: web.Request) -> web.Response:
    who = principal(request)
    who.require("customer", "admin")
    order_id = parse_order_id(request)
    found = services(request)
    order = await found.reads.state("orders", str(order_id), wait=found.settings.read_miss_wait_seconds)
    if order is None or not visible_to(order, who):
        raise not_found(f"order {order_id}")
    if order["status"] in SHIPPED or order.get("shipments"):
        raise ApiError(409, "already_shipped",
                       f"the order is {order['status']}: it has left the warehouse and can no longer be cancelled; "
                       "request a return instead (the vendor restocks what comes back)",
                       {"order_id": str(order_id), "status": order["status"]})
    if order["status"] not in CANCELLABLE:
        raise ApiError(409, "not_cancellable",
                       f"the order is {order['status']}; only orders not yet refunded, cancelled or ended can be cancelled")
    await found.writer.write(Envelope.new(who.tenant, CancelOrder(order_id=order_id, requested_by=who.sub)))
    # A confirmed order has been paid: cancelling it refunds the payment.
    next_status = "refunding" if order["status"] == OrderStatus.CONFIRMED else "cancelling"
    return web.json_response({"order_id": str(order_id), "status": next_status}, status=202,
                             headers={"Location": f"/v1/orders/{order_id}"})
