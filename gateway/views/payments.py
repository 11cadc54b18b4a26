"""`POST /v1/payments/webhook`: Stripe's signed events in, one `StripeEventReceived` out.

No bearer token here: the `Stripe-Signature` header, checked against STRIPE_WEBHOOK_SECRET over
the raw body, is the authentication. A missing or bad signature or a stale timestamp gets 400 and
nothing is written. A genuine event is written to `payments.webhooks`, keyed by the order id from
the PaymentIntent's metadata, with an envelope id derived from Stripe's event id: a redelivered
webhook becomes the same event again, and the payments agent applies each Stripe event id once.
Genuine events this system does not act on are acknowledged (200) so that Stripe stops resending.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from connectors.stripe_webhooks import InvalidWebhook, verify
from gateway.errors import ApiError
from gateway.services import services
from streams.models import Envelope, StripeEventReceived

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/v1/payments/webhook"
STRIPE_EVENT_NAMESPACE = uuid.UUID("0c7e1d3a-47a2-4f55-9d38-2f1b5c7a9e61")
HANDLED = {
    "payment_intent.amount_capturable_updated",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
    "charge.refunded",
}


async def stripe_webhook(request: web.Request) -> web.Response:
    found = services(request)
    body = await request.read()
    try:
        event = verify(body, request.headers.get("Stripe-Signature"), found.settings.stripe_webhook_secret)
    except InvalidWebhook as invalid:
        raise ApiError(400, "invalid_webhook", str(invalid)) from None
    if event.type not in HANDLED:
        return _acknowledged(event.id, f"{event.type} is not an event this system acts on")
    subject = event.data.object.to_dict()
    if event.type == "charge.refunded":
        intent_id = subject.get("payment_intent")
        metadata = subject.get("metadata") or {}
        if "order_id" not in metadata and intent_id:
            # Charges do not always carry the intent's metadata: ask Stripe for the intent.
            metadata = {"order_id": str((await found.stripe.retrieve(intent_id)).order_id or "")}
    else:
        intent_id = subject.get("id")
        metadata = subject.get("metadata") or {}
    failure = subject.get("last_payment_error") or {}
    try:
        received = StripeEventReceived(
            order_id=metadata.get("order_id"),
            stripe_event_id=event.id,
            stripe_type=event.type,
            intent_id=intent_id,
            failure_message=failure.get("message"),
        )
        envelope = Envelope.new(metadata.get("tenant", ""), received,
                                event_id=uuid.uuid5(STRIPE_EVENT_NAMESPACE, event.id))
    except ValidationError as exc:
        log.warning("Stripe event %s (%s) names no order of ours: %s", event.id, event.type, exc)
        return _acknowledged(event.id, "the event carries no order_id and tenant of this system in its metadata")
    await found.writer.write(envelope)
    return web.json_response({"received": True, "stripe_event_id": event.id, "order_id": str(received.order_id)})


def _acknowledged(event_id: str, why: str) -> web.Response:
    body: dict[str, Any] = {"received": True, "stripe_event_id": event_id, "ignored": why}
    return web.json_response(body)
