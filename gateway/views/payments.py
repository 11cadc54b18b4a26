"""`POST /v1/payments/webhook`: Stripe's signed events in, one `StripeEventReceived` out.

No bearer token here: the `Stripe-Signature` header, checked against STRIPE_WEBHOOK_SECRET over
the raw body, is the authentication (connectors/stripe_webhooks.py: any of its `v1` signatures,
a timestamp within 5 minutes of now either way). A missing or bad signature, a timestamp outside
that window or a body that is not a Stripe event gets 400 and nothing is written. A genuine event
is written to `payments.webhooks`, keyed by the order id from the metadata (`order_id`, `tenant`)
of its PaymentIntent, with an envelope id derived from Stripe's event id: a redelivered webhook
becomes the same event again, and the payments agent applies each Stripe event id once. A
`charge.refunded` carries the charge's amount and `amount_refunded` so far: the payments agent
tells a partial refund from a full one.

An event whose object lacks that metadata (a charge need not carry its intent's) is resolved
through its PaymentIntent: the gateway retrieves the intent from Stripe and takes its metadata.
That call is made here, before the answer, because the record's key is the order id: without it
there is no partition whose owner could make the call later. It is bounded by
`RESOLVE_DEADLINE_SECONDS` and runs on the gateway's event loop, so a Stripe that hangs holds only
these webhooks, never other requests or the workers. When Stripe does not answer in time (or
refuses for a reason other than "no such intent") the answer is 503 and nothing is written:
Stripe sends the event again later, with backoff, for up to three days, which is the retry.

Genuine events this system does not act on (other types, intents that are not ours) are
acknowledged (200), logged, and nothing is written, so that Stripe stops resending.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from connectors.stripe import PaymentProvider, PaymentRejected, StripeUnavailable
from connectors.stripe_webhooks import InvalidWebhook, WebhookEvent, verify
from gateway.errors import ApiError
from gateway.services import services
from streams.models import Envelope, RefundedCharge, StripeEventReceived

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
# How long a webhook waits for Stripe to name the order of an event without metadata: well below
# the time Stripe waits for an answer, which it does not publish.
RESOLVE_DEADLINE_SECONDS = 5.0
RETRY_AFTER_SECONDS = 60


async def stripe_webhook(request: web.Request) -> web.Response:
    found = services(request)
    body = await request.read()
    try:
        event = verify(body, request.headers.get("Stripe-Signature"), found.settings.stripe_webhook_secret)
    except InvalidWebhook as invalid:
        raise ApiError(400, "invalid_webhook", str(invalid)) from None
    if event.type not in HANDLED:
        log.info("Stripe event %s (%s) acknowledged and ignored: not an event this system acts on",
                 event.id, event.type)
        return _acknowledged(event.id, f"{event.type} is not an event this system acts on")
    subject = event.object
    if event.type == "charge.refunded":
        intent_id, charge = _id_of(subject.get("payment_intent")), _refunded_charge(event)
    else:
        intent_id, charge = _id_of(subject.get("id")), None
    metadata = subject.get("metadata") if isinstance(subject.get("metadata"), dict) else {}
    order_id, tenant = metadata.get("order_id"), metadata.get("tenant")
    if not (order_id and tenant) and intent_id is not None:
        order_id, tenant = await _order_of_intent(found.stripe, event, intent_id)
    failure = subject.get("last_payment_error")
    try:
        received = StripeEventReceived(
            order_id=order_id,
            stripe_event_id=event.id,
            stripe_type=event.type,
            intent_id=intent_id,
            failure_message=failure.get("message") if isinstance(failure, dict) else None,
            charge=charge,
        )
        envelope = Envelope.new(tenant or "", received, event_id=uuid.uuid5(STRIPE_EVENT_NAMESPACE, event.id))
    except ValidationError as exc:
        log.warning("Stripe event %s (%s) acknowledged and ignored: it names no order of ours (%s)",
                    event.id, event.type, exc.errors(include_url=False)[0]["msg"])
        return _acknowledged(event.id, "neither the event nor its PaymentIntent names an order_id and tenant of "
                                       "this system in its metadata")
    await found.writer.write(envelope)
    return web.json_response({"received": True, "stripe_event_id": event.id, "order_id": str(received.order_id)})


def _id_of(reference: Any) -> str | None:
    """A Stripe object's id, whether the event gives it as a string or expanded."""
    if isinstance(reference, dict):
        reference = reference.get("id")
    return reference if isinstance(reference, str) and reference else None


def _refunded_charge(event: WebhookEvent) -> RefundedCharge:
    charge = event.object
    try:
        return RefundedCharge(
            charge_id=charge.get("id"), amount=charge.get("amount"), amount_refunded=charge.get("amount_refunded"),
            currency=str(charge.get("currency", "")).upper(), refunded=charge.get("refunded") or False,
        )
    except ValidationError:
        raise ApiError(400, "invalid_webhook", "a charge.refunded event must carry its charge's id, amount, "
                                               "amount_refunded and currency") from None


async def _order_of_intent(stripe: PaymentProvider, event: WebhookEvent,
                           intent_id: str) -> tuple[str | None, str | None]:
    """The order id and tenant in the metadata of the PaymentIntent `intent_id`, as Stripe has it now."""
    try:
        intent = await asyncio.wait_for(stripe.retrieve(intent_id), RESOLVE_DEADLINE_SECONDS)
    except PaymentRejected as refused:
        if refused.code == "resource_missing":
            return None, None  # no such intent in this Stripe account: not ours
        log.error("Stripe refused to retrieve PaymentIntent %s for event %s (%s): %s; answering 503 so that "
                  "Stripe sends the event again", intent_id, event.id, event.type, refused.message)
        raise _unavailable() from None
    except (StripeUnavailable, TimeoutError):
        log.warning("Stripe did not name the order of PaymentIntent %s within %gs (event %s, %s); answering 503 "
                    "so that Stripe sends the event again", intent_id, RESOLVE_DEADLINE_SECONDS, event.id, event.type)
        raise _unavailable() from None
    return (str(intent.order_id) if intent.order_id else None), intent.tenant


def _unavailable() -> ApiError:
    return ApiError(503, "unavailable", "the event's order could not be looked up in Stripe right now; "
                                        "Stripe will send the event again",
                    headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def _acknowledged(event_id: str, why: str) -> web.Response:
    body: dict[str, Any] = {"received": True, "stripe_event_id": event_id, "ignored": why}
    return web.json_response(body)
