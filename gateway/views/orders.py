"""`POST /v1/orders`, `GET /v1/orders/{id}` (long-poll) and `POST /v1/orders/{id}/cancel`.

Idempotency-Key: the order id is derived from (tenant, customer, key), so a replay names the same
order; the body's hash is stored with the order, so a replay with another body is told apart.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from aiohttp import web

from gateway.auth import Principal, principal
from gateway.errors import ApiError, not_found
from gateway.requests import OrderRequest
from gateway.services import services
from gateway.views.common import long_poll, parse_body
from streams.models import CancelOrder, Envelope, OrderLine, OrderStatus, PlaceOrder

IDEMPOTENCY_NAMESPACE = uuid.UUID("6f1f4a51-0b7e-4c47-9a53-5e0c6d1f2a10")
MAX_IDEMPOTENCY_KEY = 255
IDEMPOTENCY_READ_SECONDS = 1.0


def _order_id(who: Principal, idempotency_key: str | None) -> uuid.UUID:
    if idempotency_key is None:
        return uuid.uuid4()
    if not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
        raise ApiError(422, "invalid_idempotency_key", f"Idempotency-Key must have 1 to {MAX_IDEMPOTENCY_KEY} characters")
    return uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{who.tenant}\n{who.sub}\n{idempotency_key}")


def _visible(order: dict[str, Any] | None, who: Principal) -> bool:
    if order is None or order["tenant"] != who.tenant:
        return False
    return who.role != "customer" or order["customer"] == who.sub


def _accepted(order_id: uuid.UUID) -> web.Response:
    return web.json_response(
        {"order_id": str(order_id), "status": OrderStatus.PENDING}, status=202, headers={"Location": f"/v1/orders/{order_id}"}
    )


async def place_order(request: web.Request) -> web.Response:
    who = principal(request)
    who.require("customer")
    body = await parse_body(request, OrderRequest)
    request_hash = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
    order_id = _order_id(who, request.headers.get("Idempotency-Key"))
    found = services(request)
    if "Idempotency-Key" in request.headers:
        # A write never waits for a worker: when no worker answers within IDEMPOTENCY_READ_SECONDS
        # the PlaceOrder is written unchecked. That is safe: the orders agent ignores a PlaceOrder
        # for an order id it has (streams/tables/orders.py `decide`: "the first placement stands"),
        # whatever its request_hash, so a replay never makes a second order nor changes the first.
        # Only the 409 for a reused key with another body is lost then: the client gets a 202 and
        # reads the first order back.
        existing = await found.reads.state_within("orders", str(order_id), IDEMPOTENCY_READ_SECONDS)
        if isinstance(existing, dict):  # neither None (no such order) nor UNKNOWN (no answer in time)
            if existing["request_hash"] != request_hash:
                raise ApiError(409, "idempotency_key_reused",
                               "this Idempotency-Key was used for a different order body; use a new key",
                               {"order_id": str(order_id)})
            return _accepted(order_id)
    command = PlaceOrder(
        order_id=order_id,
        customer=who.sub,
        lines=tuple(OrderLine(sku=line.sku, quantity=line.quantity) for line in body.lines),
        request_hash=request_hash,
    )
    await found.writer.write(Envelope.new(who.tenant, command))
    return _accepted(order_id)


def _parse_order_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["order_id"])
    except ValueError:
        raise not_found(f"order {request.match_info['order_id']}") from None


CANCELLABLE = (
    OrderStatus.PENDING, OrderStatus.RESERVED, OrderStatus.PAYMENT_PENDING, OrderStatus.PAID, OrderStatus.CONFIRMED
)


def _payment_view(order: dict[str, Any], who: Principal) -> dict[str, Any] | None:
    payment = order.get("payment")
    if payment is None:
        return None
    view = {"status": payment["status"], "intent_id": payment["intent_id"]}
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
    }


async def get_order(request: web.Request) -> web.Response:
    who = principal(request)
    order_id = _parse_order_id(request)
    wait, known = long_poll(request)
    found = services(request)
    order = await found.reads.state(
        "orders", str(order_id), wait=max(wait, found.settings.read_miss_wait_seconds if known is None else 0), known=known
    )
    if order is None or not _visible(order, who):
        raise not_found(f"order {order_id}")
    return web.json_response(_order_view(order, who))


async def cancel_order(request: web.Request) -> web.Response:
    who = principal(request)
    who.require("customer", "admin")
    order_id = _parse_order_id(request)
    found = services(request)
    order = await found.reads.state("orders", str(order_id), wait=found.settings.read_miss_wait_seconds)
    if order is None or not _visible(order, who):
        raise not_found(f"order {order_id}")
    if order["status"] not in CANCELLABLE:
        raise ApiError(409, "not_cancellable",
                       f"the order is {order['status']}; only orders not yet refunded, cancelled or ended can be cancelled")
    await found.writer.write(Envelope.new(who.tenant, CancelOrder(order_id=order_id, requested_by=who.sub)))
    # A confirmed order has been paid: cancelling it refunds the payment.
    next_status = "refunding" if order["status"] == OrderStatus.CONFIRMED else "cancelling"
    return web.json_response({"order_id": str(order_id), "status": next_status}, status=202,
                             headers={"Location": f"/v1/orders/{order_id}"})
