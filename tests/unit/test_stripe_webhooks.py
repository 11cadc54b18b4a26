"""Webhook signatures: what `sign` makes, `verify` accepts; anything altered, stale, early, unsigned or not
an event it refuses, with a message that says which."""

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
NEW_SECRET = "whsec_unit_test_rolled"
ORDER_ID = uuid.UUID(int=42)
NOW = 1_800_000_000  # the verifier's clock in the timestamp tests


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
    assert event.object["metadata"] == {"order_id": str(ORDER_ID), "tenant": "acme"}


def test_a_payment_failure_carries_the_message_for_the_customer() -> None:
    body = event_body("payment_intent.payment_failed")
    event = verify(body, sign(body, SECRET), SECRET)
    assert event.object["last_payment_error"]["message"] == "Your card was declined."


def test_a_refund_event_names_the_intent_of_its_charge() -> None:
    body = event_body("charge.refunded")
    charge = verify(body, sign(body, SECRET), SECRET).object
    assert charge["object"] == "charge" and charge["payment_intent"] == "pi_unit"
    assert (charge["amount"], charge["amount_refunded"], charge["refunded"], charge["currency"]) == (2598, 2598, True, "eur")


def test_another_secrets_signature_is_refused() -> None:
    body = event_body()
    with pytest.raises(InvalidWebhook, match="no v1 signature .* matches"):
        verify(body, sign(body, "whsec_someone_else"), SECRET)


def test_a_tampered_body_is_refused() -> None:
    # Given a genuine signature
    body = event_body()
    header = sign(body, SECRET)
    # When one byte of the amount changes in transit
    tampered = body.replace(b'"amount": 2598', b'"amount": 2599', 1)
    assert tampered != body
    # Then the event is refused
    with pytest.raises(InvalidWebhook, match="no v1 signature .* matches"):
        verify(tampered, header, SECRET)


def test_a_stale_timestamp_is_refused_even_with_a_valid_signature() -> None:
    body = event_body()
    stale = sign(body, SECRET, timestamp=NOW - TOLERANCE_SECONDS - 60)
    with pytest.raises(InvalidWebhook, match=f"is 360 s old; events signed more than {TOLERANCE_SECONDS} s ago"):
        verify(body, stale, SECRET, now=NOW)


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
    with pytest.raises(InvalidWebhook, match="not UTF-8 JSON"):
        verify(body, sign(body, SECRET), SECRET)


# --- Stripe's scheme, edge by edge --------------------------------------------------------------


def hmac_hex(secret: str, at: int, body: bytes) -> str:
    """Stripe's v1, computed here without the module: HMAC-SHA256 keyed by the secret over '<t>.<body>'."""
    return hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    ("offset", "accepted"),
    [
        (-TOLERANCE_SECONDS - 1, False),  # signed 301 s ago: a replay
        (-TOLERANCE_SECONDS, True),  # exactly at the edge
        (0, True),
        (TOLERANCE_SECONDS, True),
        (TOLERANCE_SECONDS + 1, False),  # signed 301 s ahead of this clock
        (86_400, False),
    ],
    ids=["stale-by-1s", "oldest-accepted", "now", "latest-accepted", "future-by-1s", "a-day-ahead"],
)
def test_the_timestamp_must_lie_within_the_tolerance_either_way(offset, accepted):
    # Given a body correctly signed at NOW + offset
    body = event_body()
    header = sign(body, SECRET, timestamp=NOW + offset)

    # When it is verified at NOW
    # Then it is accepted inside [NOW - 300, NOW + 300] and refused outside, saying old or future
    if accepted:
        assert verify(body, header, SECRET, now=NOW).id == "evt_unit"
        return
    expected = "s old" if offset < 0 else "s in the future"
    with pytest.raises(InvalidWebhook, match=expected):
        verify(body, header, SECRET, now=NOW)


def test_a_future_timestamp_names_how_far_ahead_it_is():
    body = event_body()
    with pytest.raises(InvalidWebhook, match=r"is 600 s in the future; more than 300 s ahead"):
        verify(body, sign(body, SECRET, timestamp=NOW + 600), SECRET, now=NOW)


def test_a_stale_signature_with_the_wrong_secret_is_refused_for_its_signature():
    # The signature is checked before the time: a stranger learns nothing about the window
    body = event_body()
    with pytest.raises(InvalidWebhook, match="no v1 signature"):
        verify(body, sign(body, "whsec_stranger", timestamp=NOW - 10_000), SECRET, now=NOW)


@pytest.mark.parametrize(
    "signed_with",
    [(SECRET, NEW_SECRET), (NEW_SECRET, SECRET), ("whsec_a", "whsec_b", SECRET)],
    ids=["ours-first", "ours-second", "ours-third"],
)
def test_any_of_several_v1_signatures_will_do(signed_with):
    # Given a header with one v1 per secret, as Stripe sends while the endpoint's secret is rolled
    body = event_body()
    header = f"t={NOW}," + ",".join(f"v1={hmac_hex(secret, NOW, body)}" for secret in signed_with)

    # When it is verified with the one secret this endpoint has
    # Then the event is genuine, wherever its signature stands
    assert verify(body, header, SECRET, now=NOW).id == "evt_unit"


def test_sign_makes_one_v1_per_secret_in_order():
    body = event_body()
    header = sign(body, SECRET, timestamp=NOW, also=(NEW_SECRET,))
    assert header == f"t={NOW},v1={hmac_hex(SECRET, NOW, body)},v1={hmac_hex(NEW_SECRET, NOW, body)}"
    assert verify(body, header, NEW_SECRET, now=NOW).id == verify(body, header, SECRET, now=NOW).id == "evt_unit"


def test_several_v1_signatures_none_of_them_ours_are_refused():
    body = event_body()
    header = f"t={NOW},v1={hmac_hex('whsec_a', NOW, body)},v1={hmac_hex('whsec_b', NOW, body)}"
    with pytest.raises(InvalidWebhook, match="no v1 signature"):
        verify(body, header, SECRET, now=NOW)


def test_other_schemes_are_ignored():
    # Given a header whose only valid signature is under the v0 scheme, and one whose v1 is valid beside a v0
    body = event_body()
    good = hmac_hex(SECRET, NOW, body)
    # Then v0 counts for nothing: the first is refused, the second accepted
    with pytest.raises(InvalidWebhook, match="has no v1 signature"):
        verify(body, f"t={NOW},v0={good}", SECRET, now=NOW)
    assert verify(body, f"t={NOW},v0=deadbeef,v1={good}", SECRET, now=NOW).id == "evt_unit"


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        (f"v1={'0' * 64}", "needs one timestamp"),
        (f"t=soon,v1={'0' * 64}", "needs one timestamp"),
        (f"t=-5,v1={'0' * 64}", "needs one timestamp"),
        (f"t={NOW},t={NOW},v1={'0' * 64}", "needs one timestamp"),
        (f"t={NOW}", "has no v1 signature"),
        (f"t={NOW},v1=é", "no v1 signature .* matches"),
    ],
    ids=["no-t", "t-not-a-number", "t-negative", "two-t", "no-v1", "non-ascii-v1"],
)
def test_a_malformed_header_is_refused_with_what_is_wrong(header, problem):
    with pytest.raises(InvalidWebhook, match=problem):
        verify(event_body(), header, SECRET, now=NOW)


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xfe not utf-8",
        b"[1, 2]",
        b'"evt"',
        b"{}",
        b'{"id": "evt_1", "type": "charge.refunded"}',
        b'{"id": "evt_1", "type": "charge.refunded", "data": {"object": "ch_1"}}',
        b'{"id": 7, "type": "charge.refunded", "data": {"object": {}}}',
        b'{"id": "", "type": "charge.refunded", "data": {"object": {}}}',
        b'{"id": "evt_1", "type": null, "data": {"object": {}}}',
    ],
    ids=["not-utf8", "a-list", "a-string", "empty", "no-data", "object-not-an-object", "id-not-a-string",
         "id-empty", "type-null"],
)
def test_a_signed_body_that_is_not_an_event_is_refused(body):
    # Given a correctly signed body that is not a Stripe event
    header = sign(body, SECRET, timestamp=NOW)
    # Then it is refused: no answer but 400 can come of it
    with pytest.raises(InvalidWebhook, match="not UTF-8 JSON|not a Stripe event"):
        verify(body, header, SECRET, now=NOW)


def test_the_smallest_event_verifies():
    body = b'{"id": "evt_1", "type": "charge.refunded", "data": {"object": {}}}'
    event = verify(body, sign(body, SECRET, timestamp=NOW), SECRET, now=NOW)
    assert (event.id, event.type, event.object) == ("evt_1", "charge.refunded", {})


def test_a_partial_refund_event_carries_the_refunded_amount_so_far():
    event = build_event("charge.refunded", order_id=ORDER_ID, tenant="acme", intent_id="pi_unit", amount=2598,
                        currency="EUR", amount_refunded=500)
    charge = event["data"]["object"]
    assert (charge["amount"], charge["amount_refunded"], charge["refunded"]) == (2598, 500, False)


def test_an_event_without_metadata_has_an_empty_one():
    for event_type in EVENT_TYPES:
        event = build_event(event_type, order_id=ORDER_ID, tenant="acme", intent_id="pi_unit", amount=2598,
                            currency="EUR", metadata=False)
        assert event["data"]["object"]["metadata"] == {}
