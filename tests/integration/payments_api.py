"""Payment helpers shared by the payment tests: Stripe's signed webhooks, as Stripe sends them."""

from __future__ import annotations

import json
import uuid
from typing import Any

from connectors.stripe_webhooks import sign
from devtools.stripe_trigger import build_event
from tests.conftest import Api, Reply
from tests.integration.conftest import WEBHOOK_SECRET
from tests.integration.orders_api import place, settled


async def send_webhook(api: Api, event_type: str, order: dict[str, Any], *, event_id: str | None = None,
                       failure_message: str = "Your card was declined.", secret: str = WEBHOOK_SECRET,
                       **event_fields: Any) -> Reply:
    """POST a signed Stripe event about the order's PaymentIntent to the gateway's webhook;
    `event_fields` go to `build_event` (`amount_refunded=`, `metadata=False`)."""
    event = build_event(
        event_type, order_id=uuid.UUID(order["order_id"]), tenant="acme", intent_id=order["payment"]["intent_id"],
        amount=order["total"]["amount"], currency=order["total"]["currency"], event_id=event_id,
        failure_message=failure_message, **event_fields,
    )
    body = json.dumps(event).encode()
    return await api.post("/v1/payments/webhook", None, raw=body,
                          headers={"Stripe-Signature": sign(body, secret), "Content-Type": "application/json"})


async def awaiting_payment(api: Api, customer: str, lines: dict[str, int]) -> dict[str, Any]:
    """Place an order and wait until its PaymentIntent exists (status payment_pending)."""
    order = await settled(api, await place(api, customer, lines), customer)
    assert order["status"] == "payment_pending", order
    return order


async def settled_past(api: Api, order: dict[str, Any], customer: str, *statuses: str) -> dict[str, Any]:
    """Long-poll the order until its status is none of `statuses` (nor pending or reserved)."""
    return await settled(api, order["order_id"], customer, waypoints={"pending", "reserved", *statuses})
