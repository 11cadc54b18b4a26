"""Webhook signatures: what `sign` makes, `verify` accepts; anything altered, stale or unsigned it refuses."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid

import pytest

from connectors.stripe_webhooks import TOLERANCE_SECONDS, InvalidWebhook, sign, verify
from devtools.stripe_trigger import EVENT_TYPES, build_event

SECRET = "whsec_unit_test"
ORDER_ID = uuid.UUID(int=42)


def event_body(event_type: str = "payment_intent.amount_capturable_updated") -> bytes:
    event = build_event(event_type, order_id=ORDER_ID, tenant="acme", intent_id="pi_unit", amount=2598,
                        currency="EUR", event_id="evt_unit")
    return json.dumps(event).encode()


def test_the_header_is_stripes_format_an_hmac_of_timestamp_dot_body() -> None:
    # Given a body signed at a known time
    body, at = event_body(), 1_700_000_000
    # When it is signed
    header = sign(body, SECRET, timestamp=at)
    # Then the header is t=<time>,v1=<HMAC-SHA256 of "<time>.<body>"> computed independently here
    expected = hmac.new(SECRET.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    assert header == f"t={at},v1={expected}"


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_a_signed_event_verifies_and_parses(event_type: str) -> None:
    body = event_body(event_type)
    event = verify(body, sign(body, SECRET), SECRET)
    assert event.id == "evt_unit" and event.type == event_type
    # stripe 16's StripeObject is no dict: compare its plain form
    assert event.data.object.metadata.to_dict() == {"order_id": str(ORDER_ID), "tenant": "acme"}


def test_a_payment_failure_carries_the_message_for_the_customer() -> None:
    body = event_body("payment_intent.payment_failed")
    event = verify(body, sign(body, SECRET), SECRET)
    assert event.data.object.last_payment_error.message == "Your card was declined."


def test_a_refund_event_names_the_intent_of_its_charge() -> None:
    body = event_body("charge.refunded")
    charge = verify(body, sign(body, SECRET), SECRET).data.object
    assert charge.object == "charge" and charge.payment_intent == "pi_unit"
    assert charge.amount_refunded == 2598 and charge.currency == "eur"


def test_another_secrets_signature_is_refused() -> None:
    body = event_body()
    with pytest.raises(InvalidWebhook, match="bad Stripe-Signature"):
        verify(body, sign(body, "whsec_someone_else"), SECRET)


def test_a_tampered_body_is_refused() -> None:
    # Given a genuine signature
    body = event_body()
    header = sign(body, SECRET)
    # When one byte of the amount changes in transit
    tampered = body.replace(b'"amount": 2598', b'"amount": 2599', 1)
    assert tampered != body
    # Then the event is refused
    with pytest.raises(InvalidWebhook, match="bad Stripe-Signature"):
        verify(tampered, header, SECRET)


def test_a_stale_timestamp_is_refused_even_with_a_valid_signature() -> None:
    body = event_body()
    stale = sign(body, SECRET, timestamp=int(time.time()) - TOLERANCE_SECONDS - 60)
    with pytest.raises(InvalidWebhook, match="tolerance"):
        verify(body, stale, SECRET)


def test_a_timestamp_inside_the_window_is_accepted() -> None:
    body = event_body()
    recent = sign(body, SECRET, timestamp=int(time.time()) - TOLERANCE_SECONDS + 60)
    assert verify(body, recent, SECRET).id == "evt_unit"


@pytest.mark.parametrize("header", ["", None, "garbage", "t=1700000000"])
def test_a_missing_or_malformed_header_is_refused(header: str | None) -> None:
    with pytest.raises(InvalidWebhook):
        verify(event_body(), header, SECRET)


def test_a_signed_body_that_is_not_json_is_refused() -> None:
    body = b"not json"
    with pytest.raises(InvalidWebhook, match="not a JSON event"):
        verify(body, sign(body, SECRET), SECRET)
