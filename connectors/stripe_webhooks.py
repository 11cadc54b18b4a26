"""Stripe webhook signatures: verify what Stripe sends, sign what tests and devtools send.

    event = verify(request_body, request.headers.get("Stripe-Signature", ""), settings.stripe_webhook_secret)
    header = sign(body, secret)                       # "t=<unix time>,v1=<hex HMAC-SHA256 of 't.body'>"

`verify` checks the signature over the raw body bytes (parse nothing before it) and refuses a
timestamp older than `TOLERANCE_SECONDS`, so a captured request cannot be replayed later. A
verified event may still be a duplicate or arrive out of order: dedupe on `event.id`.
"""

from __future__ import annotations

import stripe

# Stripe's recommended replay window.
TOLERANCE_SECONDS = 300


class InvalidWebhook(Exception):
    """The request is not a genuine, recent Stripe event; answer 400 and process nothing."""


def verify(payload: bytes, signature_header: str | None, secret: str,
           tolerance: int = TOLERANCE_SECONDS) -> stripe.Event:
    if not signature_header:
        raise InvalidWebhook("missing Stripe-Signature header")
    try:
        return stripe.Webhook.construct_event(payload, signature_header, secret, tolerance=tolerance)
    except stripe.SignatureVerificationError as error:
        raise InvalidWebhook(f"bad Stripe-Signature: {error.user_message}") from error
    except ValueError as error:  # signed, but not UTF-8 JSON
        raise InvalidWebhook(f"body is not a JSON event: {error}") from error


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """A valid `Stripe-Signature` header for `payload`, at `timestamp` (now when None)."""
    return stripe.WebhookSignature.generate_signature_header(payload.decode("utf-8"), secret, timestamp)
