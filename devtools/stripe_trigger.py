"""Send the gateway a signed Stripe webhook event, as `stripe trigger` would (stripe-mock sends none).

    python -m devtools.stripe_trigger payment_intent.amount_capturable_updated \\
        --order 0b5e...-uuid --tenant acme --intent pi_123 --amount 2598 --currency eur
    python -m devtools.stripe_trigger payment_intent.amount_capturable_updated --order <id> --token <JWT>
    python -m devtools.stripe_trigger payment_intent.payment_failed ... --failure-message "Your card was declined."
    python -m devtools.stripe_trigger charge.refunded ... --event-id evt_same   # resend: a duplicate
    python -m devtools.stripe_trigger charge.refunded ... --amount-refunded 500  # a partial refund: 500 so far
    python -m devtools.stripe_trigger charge.refunded ... --no-metadata  # the gateway asks Stripe for the intent's
    python -m devtools.stripe_trigger payment_intent.succeeded ... --dry-run    # print, send nothing

The event is signed with STRIPE_WEBHOOK_SECRET (its development value with FC_DEVELOPMENT=1, as `make
trigger` sets) and POSTed to `<gateway>/v1/payments/webhook`.
`build_event` makes the same JSON for tests.

A `charge.refunded` is sent for every refund of a charge, partial or not, with the charge's
`amount_refunded` so far (the sum of its refunds, as Stripe reports it): refunding 500 and then
300 of a 2598 charge is `--amount-refunded 500`, then `--amount-refunded 800`; the default is the
whole amount. `--no-metadata` sends the event's object without `metadata` (the gateway then looks
the intent up in Stripe; stripe-mock returns intents without metadata, so against it such an event
is acknowledged and ignored).
"""

from __future__ import annotations

import argparse
import json
import secrets
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import stripe

from connectors.stripe_webhooks import sign
from devtools import signed_post
from streams.settings import load

WEBHOOK_PATH = "/v1/payments/webhook"
DEFAULT_FAILURE_MESSAGE = "Your card was declined."

# Event type -> the payment intent's fields at that point of its life.
INTENT_STATES: dict[str, dict[str, Any]] = {
    "payment_intent.amount_capturable_updated": {"status": "requires_capture"},
    "payment_intent.succeeded": {"status": "succeeded"},
    "payment_intent.payment_failed": {"status": "requires_payment_method"},
    "payment_intent.canceled": {"status": "canceled", "cancellation_reason": "requested_by_customer"},
}
EVENT_TYPES = [*INTENT_STATES, "charge.refunded"]


def _stripe_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def payment_intent(order_id: uuid.UUID, tenant: str, intent_id: str, amount: int, currency: str,
                   created: int, **fields: Any) -> dict[str, Any]:
    return {
        "id": intent_id, "object": "payment_intent", "amount": amount, "amount_capturable": 0,
        "amount_received": 0, "capture_method": "manual", "cancellation_reason": None,
        "client_secret": f"{intent_id}_secret_{secrets.token_hex(8)}", "created": created,
        "currency": currency.lower(), "last_payment_error": None, "latest_charge": None, "livemode": False,
        "metadata": {"order_id": str(order_id), "tenant": tenant}, "payment_method_types": ["card"],
        **fields,
    }


def charge(order_id: uuid.UUID, tenant: str, intent_id: str, amount: int, currency: str,
           created: int, amount_refunded: int | None = None) -> dict[str, Any]:
    """The charge of a captured intent, `amount_refunded` of it refunded so far (all of it when None)."""
    refunded = amount if amount_refunded is None else amount_refunded
    return {
        "id": _stripe_id("ch"), "object": "charge", "amount": amount, "amount_captured": amount,
        "amount_refunded": refunded, "captured": True, "created": created, "currency": currency.lower(),
        "livemode": False, "metadata": {"order_id": str(order_id), "tenant": tenant}, "paid": True,
        "payment_intent": intent_id, "refunded": refunded >= amount, "status": "succeeded",
    }


def build_event(event_type: str, *, order_id: uuid.UUID, tenant: str, intent_id: str, amount: int,
                currency: str, failure_message: str = DEFAULT_FAILURE_MESSAGE, event_id: str | None = None,
                created: int | None = None, amount_refunded: int | None = None,
                metadata: bool = True) -> dict[str, Any]:
    """A Stripe event of `event_type` about the order's payment intent (or its charge, for refunds:
    `amount_refunded` of it refunded so far, all when None); without `metadata` its object has none."""
    created = int(time.time()) if created is None else created
    if event_type == "charge.refunded":
        obj = charge(order_id, tenant, intent_id, amount, currency, created, amount_refunded)
    elif event_type in INTENT_STATES:
        fields = dict(INTENT_STATES[event_type])
        if event_type == "payment_intent.amount_capturable_updated":
            fields["amount_capturable"] = amount
        elif event_type == "payment_intent.succeeded":
            fields.update(amount_received=amount, latest_charge=_stripe_id("ch"))
        elif event_type == "payment_intent.payment_failed":
            fields["last_payment_error"] = {
                "type": "card_error", "code": "card_declined", "decline_code": "generic_decline",
                "message": failure_message,
            }
        obj = payment_intent(order_id, tenant, intent_id, amount, currency, created, **fields)
    else:
        raise ValueError(f"unsupported event type {event_type!r}; one of {', '.join(EVENT_TYPES)}")
    if not metadata:
        obj["metadata"] = {}
    return {
        "id": event_id or _stripe_id("evt"), "object": "event", "type": event_type, "created": created,
        "api_version": stripe.api_version, "data": {"object": obj}, "livemode": False, "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
    }


def read_payment(gateway: str, order_id: uuid.UUID, token: str) -> tuple[str, int, str]:
    """The order's PaymentIntent id, amount and currency, as the gateway shows them."""
    request = urllib.request.Request(f"{gateway.rstrip('/')}/v1/orders/{order_id}",
                                     headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            order = json.load(response)
    except urllib.error.HTTPError as error:
        raise SystemExit(f"[stripe-trigger] reading order {order_id} answered {error.code}: {error.read().decode()}")
    except urllib.error.URLError as error:
        raise SystemExit(f"[stripe-trigger] {gateway} did not answer ({error.reason}); is the gateway running?")
    if not order.get("payment"):
        raise SystemExit(f"[stripe-trigger] order {order_id} is {order['status']} and has no PaymentIntent yet")
    return order["payment"]["intent_id"], order["total"]["amount"], order["total"]["currency"]


def main() -> None:
    settings = load()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("event_type", choices=EVENT_TYPES)
    parser.add_argument("--order", required=True, type=uuid.UUID, help="order id (metadata.order_id)")
    parser.add_argument("--tenant", default="acme")
    parser.add_argument("--token", help="a bearer token that may read the order: fills in --intent, --amount and "
                                            "--currency from GET /v1/orders/<order>")
    parser.add_argument("--intent", help="payment intent id, e.g. pi_...")
    parser.add_argument("--amount", type=int, help="minor units")
    parser.add_argument("--currency", default="eur")
    parser.add_argument("--failure-message", default=DEFAULT_FAILURE_MESSAGE)
    parser.add_argument("--event-id", help="reuse an event id to send a duplicate")
    parser.add_argument("--amount-refunded", type=int,
                        help="charge.refunded: minor units refunded so far, this refund included (Stripe's "
                             "amount_refunded); below the amount it is a partial refund; default the whole amount")
    parser.add_argument("--no-metadata", action="store_true",
                        help="send the object without metadata: the gateway asks Stripe for the intent's")
    parser.add_argument("--gateway", default=f"http://{settings.gateway_host}:{settings.gateway_port}")
    parser.add_argument("--dry-run", action="store_true", help="print the signed event, send nothing")
    args = parser.parse_args()
    if not settings.stripe_webhook_secret:
        raise SystemExit("[stripe-trigger] STRIPE_WEBHOOK_SECRET is not set: set it to the gateway's webhook secret, "
                         "or FC_DEVELOPMENT=1 for the development one (what `make run` uses)")
    if args.intent is None or args.amount is None:
        if args.token is None:
            parser.error("give --intent and --amount, or --token to read them from the order")
        args.intent, args.amount, args.currency = read_payment(args.gateway, args.order, args.token)
    event = build_event(
        args.event_type, order_id=args.order, tenant=args.tenant, intent_id=args.intent, amount=args.amount,
        currency=args.currency, failure_message=args.failure_message, event_id=args.event_id,
        amount_refunded=args.amount_refunded, metadata=not args.no_metadata,
    )
    body = json.dumps(event, indent=2).encode()
    signature = sign(body, settings.stripe_webhook_secret)
    signed_post.send("stripe-trigger", args.gateway.rstrip("/") + WEBHOOK_PATH, body, "Stripe-Signature", signature,
                     args.dry_run, f"{event['type']} {event['id']}")

if __name__ == "__main__":
    main()
