"""`POST /v1/orders/{id}/shipments` (the vendor ships lines of an order) and `POST /v1/shipping/webhook`
(EasyPost's tracker events in).

A shipment: the order's tenant's vendor (or admin) names lines, carrier and tracking number. The
gateway refuses what it can see is wrong (404 for another tenant's order, 409 `not_shippable` for an
order not confirmed, `exceeds_ordered` for more units than remain), writes `CreateShipment` to
`shipments.commands` (key order id) and reads the orders agent's verdict, a few seconds at most:
201 with the shipment, 409 with the agent's refusal (two concurrent shipments may each pass the
gateway's look; the agent, the order's single writer, never lets both ship the same units), or 202
`pending` when no verdict came in time. Idempotency-Key: the shipment id is derived from the key,
the principal and the order, and the request's hash is kept with the shipment, as for orders.

The carrier webhook takes no bearer token: `X-Hmac-Signature` (connectors/carrier_webhooks.py),
checked against CARRIER_WEBHOOK_SECRET over the raw body, authenticates it; a missing or bad one, or
a body that is not an EasyPost tracker event, is 400 and nothing is written. A genuine update is
written to `shipping.tracking` keyed by its tracking number, with an envelope id derived from
EasyPost's event id, and acknowledged 200: the shipping agent resolves the number to its order, or
dead-letters the update with the reason when no shipment registered it.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from aiohttp import web

from connectors.carrier_webhooks import InvalidCarrierWebhook, verify
from gateway.auth import principal
from gateway.errors import ApiError, not_found
from gateway.idempotency import derived_id, idempotency_key, key_reused, request_hash
from gateway.requests import ShipmentRequest
from gateway.services import services
from gateway.views.common import await_verdict, parse_body
from gateway.views.orders import parse_order_id, visible_to, shipment_view
from streams.models import (
    CarrierUpdate,
    CarrierUpdateReceived,
    CreateShipment,
    Envelope,
    Order,
    OrderLineState,
    Shipment,
    ShipmentLine,
    is_identifier,
)
from streams.tables import shipping

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/v1/shipping/webhook"
SHIPMENT_NAMESPACE = uuid.UUID("3d0b8f3e-5a7c-4f0e-9c1d-7b2a6e4f8c15")
CARRIER_EVENT_NAMESPACE = uuid.UUID("8a4e2c6b-1f3d-4b7a-9e5c-2d6f8a0b4c71")
# A carrier update is written before its order is known: the shipping agent gives its events the order's tenant.
CARRIER_TENANT = "carrier"


def _problem(order: dict[str, Any], lines: list[tuple[str, int]]) -> str | None:
    """The pure rule of streams/tables/shipping.py, on the order as the worker answered it."""
    model = Order.model_construct(
        status=order["status"],
        lines=tuple(OrderLineState.model_construct(sku=line["sku"], quantity=line["quantity"]) for line in order["lines"]),
        shipments=tuple(Shipment.model_construct(lines=tuple(ShipmentLine.model_construct(**line) for line in s["lines"]))
                        for s in order.get("shipments", ())),
    )
    return shipping.shipment_problem(model, lines)


def _refused(problem: str, order_id: uuid.UUID, shipment_id: uuid.UUID | None = None) -> ApiError:
    code, _, message = problem.partition(": ")
    details = {"order_id": str(order_id)}
    if shipment_id is not None:  # refused by the orders agent, after the command was written
        details["shipment_id"] = str(shipment_id)
    return ApiError(409, code, message, details)


def _verdict(order: dict[str, Any], shipment_id: uuid.UUID, hashed: str) -> web.Response | None:
    for shipment in order.get("shipments", ()):
        if shipment["shipment_id"] == str(shipment_id):
            if shipment.get("request_hash") != hashed:
                raise key_reused({"order_id": order["order_id"], "shipment_id": str(shipment_id)})
            return web.json_response(shipment_view(order["order_id"], shipment), status=201,
                                     headers={"Location": f"/v1/orders/{order['order_id']}"})
    refusal = order.get("refused_shipments", {}).get(str(shipment_id))
    if refusal is not None:
        raise _refused(refusal, uuid.UUID(order["order_id"]), shipment_id)
    return None


async def create_shipment(request: web.Request) -> web.Response:
    who = principal(request)
    who.require("vendor", "admin")
    order_id = parse_order_id(request)
    body = await parse_body(request, ShipmentRequest)
    key = idempotency_key(request)
    hashed = request_hash(f"create_shipment {order_id}", body)
    shipment_id = uuid.uuid4() if key is None else derived_id(SHIPMENT_NAMESPACE, who, key, str(order_id))
    found = services(request)
    order = await found.reads.state("orders", str(order_id), wait=found.settings.read_miss_wait_seconds)
    if order is None or not visible_to(order, who):
        raise not_found(f"order {order_id}")
    replayed = _verdict(order, shipment_id, hashed) if key is not None else None
    if replayed is not None:
        return replayed
    problem = _problem(order, [(line.sku, line.quantity) for line in body.lines])
    if problem is not None:
        raise _refused(problem, order_id)
    command = CreateShipment(
        order_id=order_id, shipment_id=shipment_id,
        lines=tuple(ShipmentLine(sku=line.sku, quantity=line.quantity) for line in body.lines),
        carrier=body.carrier, tracking_number=body.tracking_number, service=body.service,
        requested_by=who.sub, request_hash=hashed,
    )
    await found.writer.write(Envelope.new(who.tenant, command))
    verdict = await await_verdict(found.reads, "orders", str(order_id),
                                  lambda order: _verdict(order, shipment_id, hashed))
    if verdict is not None:
        return verdict[1]
    return web.json_response({"shipment_id": str(shipment_id), "order_id": str(order_id), "status": "pending"},
                             status=202, headers={"Location": f"/v1/orders/{order_id}"})


async def carrier_webhook(request: web.Request) -> web.Response:
    found = services(request)
    body = await request.read()
    try:
        tracked = verify(body, request.headers.get("X-Hmac-Signature"), found.settings.carrier_webhook_secret)
    except InvalidCarrierWebhook as invalid:
        raise ApiError(400, "invalid_webhook", str(invalid)) from None
    receipt: dict[str, Any] = {"received": True, "event_id": tracked.event_id, "tracking_code": tracked.tracking_code}
    if not is_identifier(tracked.tracking_code) or len(tracked.event_id) > 255 or len(tracked.carrier) > 64:
        log.warning("carrier event %s acknowledged and ignored: tracking code %r cannot be one of ours",
                    tracked.event_id, tracked.tracking_code[:100])
        return web.json_response({**receipt, "ignored": "the tracking code is not one this system issues"})
    update = CarrierUpdate(
        carrier_event_id=tracked.event_id, status=shipping.status_of_easypost(tracked.status), carrier=tracked.carrier,
        tracking_url=tracked.public_url, detail=tracked.detail, carrier_time=tracked.carrier_time,
    )
    envelope = Envelope.new(CARRIER_TENANT, CarrierUpdateReceived(tracking_number=tracked.tracking_code, update=update),
                            event_id=uuid.uuid5(CARRIER_EVENT_NAMESPACE, tracked.event_id))
    await found.writer.write(envelope)
    return web.json_response(receipt)
