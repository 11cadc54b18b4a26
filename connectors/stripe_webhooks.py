"""Stripe webhook signatures: verify what Stripe sends, sign what tests and devtools send.

    event = verify(request_body, request.headers.get("Stripe-Signature"), settings.stripe_webhook_secret)
    event.id, event.type, event.object                # the event's id, type and `data.object` (a dict)
    header = sign(body, secret)                       # "t=<unix time>,v1=<hex HMAC-SHA256 of '<t>.<body>'>"
    header = sign(body, old, also=(new,))             # one v1 per secret, as Stripe sends while a secret rolls

Stripe's scheme (docs.stripe.com/webhooks, "verify manually"): the `Stripe-Signature` header is a
comma-separated list of `key=value` items; `t` is the Unix time of the signing and each `v1` a hex
HMAC-SHA256, keyed by the endpoint's signing secret, of `<t>.<raw body>`. While a secret is rolled
Stripe signs with the old and the new one, so the header carries several `v1`: the event is
genuine when any of them matches. Other schemes (`v0`) are ignored.

`verify` checks the signature over the raw body bytes (parse nothing before it), then the
timestamp, which the signature covers: it must lie within `tolerance` seconds (Stripe's default,
300) of this server's clock either way. Older is a captured request replayed; newer is a clock that
cannot be trusted to bound replays. Only then is the body parsed: a UTF-8 JSON object with a string
`id` and `type` and an object `data.object`, or `InvalidWebhook`. Every refusal says what is wrong in
this module's words (no library text). A verified event may still be a duplicate or arrive out of
order: dedupe on `event.id`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# Stripe's recommended replay window.
TOLERANCE_SECONDS = 300
SCHEME = "v1"


class InvalidWebhook(Exception):
    """The request is not a genuine, recent Stripe event; answer 400 and process nothing."""


@dataclass(frozen=True)
class WebhookEvent:
    """A verified Stripe event: its id (`evt_...`), type and `data.object` as JSON."""

    id: str
    type: str
    object: dict[str, Any]


def _signature(payload: bytes, secret: str, timestamp: int) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()


def _parse_header(header: str) -> tuple[int, list[str]]:
    timestamps: list[str] = []
    signatures: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            timestamps.append(value)
        elif key == SCHEME:
            signatures.append(value)
    if len(timestamps) != 1 or not (timestamps[0].isascii() and timestamps[0].isdigit()):
        raise InvalidWebhook("the Stripe-Signature header needs one timestamp, t=<unix time>")
    if not signatures:
        raise InvalidWebhook(f"the Stripe-Signature header has no {SCHEME} signature")
    return int(timestamps[0]), signatures


def verify(payload: bytes, signature_header: str | None, secret: str, tolerance: int = TOLERANCE_SECONDS,
           now: float | None = None) -> WebhookEvent:
    check_signature(payload, signature_header, secret, tolerance, now)
    return _event(payload)


def check_signature(payload: bytes, signature_header: str | None, secret: str, tolerance: int = TOLERANCE_SECONDS,
                    now: float | None = None) -> None:
    """Stripe's scheme, also the platform's own outbound webhooks' (connectors/webhooks.py): raise
    InvalidWebhook unless one `v1` of the header signs `payload` with `secret` within `tolerance`."""
    if not signature_header:
        raise InvalidWebhook("missing Stripe-Signature header")
    timestamp, signatures = _parse_header(signature_header)
    expected = _signature(payload, secret, timestamp).encode()
    if not any(hmac.compare_digest(expected, candidate.encode("utf-8", "replace")) for candidate in signatures):
        raise InvalidWebhook(f"no {SCHEME} signature in the Stripe-Signature header matches this body and the "
                             "endpoint's signing secret")
    age = (time.time() if now is None else now) - timestamp
    if age > tolerance:
        raise InvalidWebhook(f"the Stripe-Signature timestamp is {age:.0f} s old; events signed more than "
                             f"{tolerance} s ago are refused as replays")
    if -age > tolerance:
        raise InvalidWebhook(f"the Stripe-Signature timestamp is {-age:.0f} s in the future; more than "
                             f"{tolerance} s ahead of this server's clock is refused")


def _event(payload: bytes) -> WebhookEvent:
    try:
        event = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidWebhook("the body is not UTF-8 JSON") from None
    data = event.get("data") if isinstance(event, dict) else None
    subject = data.get("object") if isinstance(data, dict) else None
    if not (isinstance(event, dict) and isinstance(event.get("id"), str) and event["id"]
            and isinstance(event.get("type"), str) and isinstance(subject, dict)):
        raise InvalidWebhook("the body is not a Stripe event: an object with a string id and type and an object "
                             "data.object")
    return WebhookEvent(id=event["id"], type=event["type"], object=subject)


def sign(payload: bytes, secret: str, timestamp: int | None = None, *, also: Sequence[str] = ()) -> str:
    """A valid `Stripe-Signature` header for `payload`, at `timestamp` (now when None): one `v1` for
    `secret` and one for each secret in `also`, as Stripe signs while a secret is rolled."""
    at = int(time.time()) if timestamp is None else timestamp
    return ",".join([f"t={at}", *(f"{SCHEME}={_signature(payload, key, at)}" for key in (secret, *also))])
