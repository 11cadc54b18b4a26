"""The webhook view (gateway/views/payments.py) with no Kafka and no Stripe: what it writes for each
signed event, how it finds the order of an event without metadata, and what it answers when Stripe
cannot tell. A recording writer stands for Kafka, a scripted `retrieve` for Stripe."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from connectors.stripe import Intent, PaymentRejected, StripeUnavailable
from connectors.stripe_webhooks import sign
from devtools.stripe_trigger import build_event
from gateway.auth import auth_middleware
from gateway.errors import error_middleware
from gateway.routes import setup_routes
from gateway.services import SERVICES, Services
from gateway.views import payments as view
from streams.models import RefundedCharge, StripeEventReceived
from streams.settings import Settings
from tests.unit.doubles import RecordingWriter

JWT_SECRET = "webhook-view-tests-secret-of-32-bytes-at-least"
WEBHOOK_SECRET = "whsec_webhook_view_tests_secret_of_32_bytes"
ORDER_ID = uuid.UUID(int=77)
INTENT = "pi_view77"


class ScriptedStripe:
    """`retrieve` answers `intent`, raises `error`, or (hang) never answers; it records what was asked."""

    def __init__(self, intent: Intent | None = None, error: Exception | None = None, hang: bool = False) -> None:
        self.intent, self.error, self.hang = intent, error, hang
        self.asked: list[str] = []

    async def retrieve(self, intent_id: str) -> Intent:
        self.asked.append(intent_id)
        if self.hang:
            await asyncio.Event().wait()
        if self.error is not None:
            raise self.error
        assert self.intent is not None
        return self.intent


def intent_of(order_id: uuid.UUID | None, tenant: str | None) -> Intent:
    return Intent(id=INTENT, status="succeeded", amount=2598, currency="eur", client_secret=None, order_id=order_id,
                  tenant=tenant)


@pytest.fixture
async def gateway() -> AsyncIterator[Any]:
    clients: list[TestClient] = []

    async def start(stripe: ScriptedStripe) -> tuple[TestClient, RecordingWriter]:
        settings = Settings(jwt_secret=JWT_SECRET, stripe_webhook_secret=WEBHOOK_SECRET)
        app = web.Application(middlewares=[error_middleware, auth_middleware(JWT_SECRET, frozenset({view.WEBHOOK_PATH}))])
        setup_routes(app)
        writer = RecordingWriter()
        app[SERVICES] = Services(settings=settings, writer=writer, reads=None, stripe=stripe, admin=None)  # type: ignore[arg-type]
        client = TestClient(TestServer(app, host="127.0.0.1", port=0))
        await client.start_server()
        clients.append(client)
        return client, writer

    yield start
    for client in clients:
        await client.close()


async def post(client: TestClient, event: dict[str, Any], *, timestamp: int | None = None) -> tuple[int, Any]:
    body = json.dumps(event).encode()
    reply = await client.post(view.WEBHOOK_PATH, data=body, headers={
        "Stripe-Signature": sign(body, WEBHOOK_SECRET, timestamp), "Content-Type": "application/json"})
    return reply.status, await reply.json()


def refund_event(amount_refunded: int, *, metadata: bool = True, event_id: str = "evt_refund") -> dict[str, Any]:
    return build_event("charge.refunded", order_id=ORDER_ID, tenant="acme", intent_id=INTENT, amount=2598,
                       currency="eur", amount_refunded=amount_refunded, metadata=metadata, event_id=event_id)


async def test_a_partial_refund_is_written_with_the_charges_amounts(gateway):
    # Given a gateway
    client, writer = await gateway(ScriptedStripe())
    event = refund_event(500)

    # When Stripe says 500 of the 2598 eur charge are refunded
    status, body = await post(client, event)

    # Then one StripeEventReceived carries the charge's amount, the amount refunded so far and the currency
    assert (status, body["order_id"]) == (200, str(ORDER_ID))
    [written] = writer.written
    assert written.tenant == "acme" and written.event_id == uuid.uuid5(view.STRIPE_EVENT_NAMESPACE, "evt_refund")
    assert written.payload == StripeEventReceived(
        order_id=ORDER_ID, stripe_event_id="evt_refund", stripe_type="charge.refunded", intent_id=INTENT,
        charge=RefundedCharge(charge_id=event["data"]["object"]["id"], amount=2598, amount_refunded=500,
                              currency="EUR", refunded=False),
    )


async def test_an_event_with_metadata_asks_stripe_nothing(gateway):
    stripe = ScriptedStripe()
    client, writer = await gateway(stripe)
    status, _ = await post(client, refund_event(2598))
    assert status == 200 and stripe.asked == [] and len(writer.written) == 1
    assert writer.written[0].payload.charge.refunded is True


@pytest.mark.parametrize("event_type", ["charge.refunded", "payment_intent.succeeded"])
async def test_an_event_without_metadata_reaches_its_order_through_the_intent(gateway, event_type):
    # Given a Stripe whose PaymentIntent names the order and tenant in its metadata
    stripe = ScriptedStripe(intent_of(ORDER_ID, "acme"))
    client, writer = await gateway(stripe)

    # When an event arrives whose object has no metadata
    event = build_event(event_type, order_id=ORDER_ID, tenant="acme", intent_id=INTENT, amount=2598,
                        currency="eur", metadata=False, event_id="evt_bare")
    status, body = await post(client, event)

    # Then the gateway asked Stripe for that intent once and wrote the event for its order and tenant
    assert (status, body["order_id"]) == (200, str(ORDER_ID))
    assert stripe.asked == [INTENT]
    [written] = writer.written
    assert (written.tenant, written.payload.order_id, written.payload.intent_id) == ("acme", ORDER_ID, INTENT)


@pytest.mark.parametrize(
    "stripe",
    [
        ScriptedStripe(intent_of(None, None)),  # an intent without metadata: not one of ours
        ScriptedStripe(intent_of(ORDER_ID, None)),  # no tenant
        ScriptedStripe(error=PaymentRejected("No such payment_intent: 'pi_view77'", code="resource_missing")),
    ],
    ids=["intent-without-metadata", "intent-without-tenant", "no-such-intent"],
)
async def test_an_event_whose_intent_names_no_order_of_ours_is_acknowledged_and_writes_nothing(gateway, stripe):
    client, writer = await gateway(stripe)
    status, body = await post(client, refund_event(500, metadata=False))
    assert status == 200 and body["ignored"] and writer.written == []


@pytest.mark.parametrize(
    "stripe",
    [
        ScriptedStripe(error=StripeUnavailable("Stripe retrieve (order None) failed transiently: 502")),
        ScriptedStripe(error=PaymentRejected("Invalid API Key provided: sk_live_***", code=None)),
        ScriptedStripe(hang=True),
    ],
    ids=["unavailable", "refused", "hanging"],
)
async def test_when_stripe_cannot_name_the_order_the_answer_is_503_and_nothing_is_written(gateway, monkeypatch,
                                                                                          stripe):
    # Given a Stripe that fails, refuses or never answers the intent's retrieval (bounded here by 0.2 s)
    monkeypatch.setattr(view, "RESOLVE_DEADLINE_SECONDS", 0.2)
    client, writer = await gateway(stripe)

    # When an event without metadata arrives
    status, body = await post(client, refund_event(500, metadata=False))

    # Then the answer is 503 (Stripe sends the event again later), without Stripe's words, and nothing is written
    assert status == 503 and body["error"]["code"] == "unavailable"
    assert "sk_live" not in body["error"]["message"] and "502" not in body["error"]["message"]
    assert writer.written == []


async def test_an_unknown_event_type_is_acknowledged_logged_and_writes_nothing(gateway, caplog):
    client, writer = await gateway(ScriptedStripe())
    event = {"id": "evt_unknown", "object": "event", "type": "customer.created", "data": {"object": {"id": "cus_1"}}}
    with caplog.at_level(logging.INFO, logger="gateway.views.payments"):
        status, body = await post(client, event)
    assert (status, body["ignored"]) == (200, "customer.created is not an event this system acts on")
    assert writer.written == []
    assert any("evt_unknown" in record.getMessage() and "customer.created" in record.getMessage()
               for record in caplog.records)


@pytest.mark.parametrize(
    "charge",
    [
        {"id": "ch_1", "amount": 2598, "currency": "eur", "payment_intent": INTENT},  # no amount_refunded
        {"id": "ch_1", "amount": "lots", "amount_refunded": 5, "currency": "eur", "payment_intent": INTENT},
        {"id": "ch_1", "amount": 2598, "amount_refunded": -1, "currency": "eur", "payment_intent": INTENT},
        {"id": "ch_1", "amount": 2598, "amount_refunded": 5, "currency": None, "payment_intent": INTENT},
    ],
    ids=["no-amount-refunded", "amount-not-a-number", "negative", "no-currency"],
)
async def test_a_refund_without_the_charges_amounts_is_malformed(gateway, charge):
    client, writer = await gateway(ScriptedStripe())
    event = {"id": "evt_bad", "object": "event", "type": "charge.refunded", "data": {"object": charge}}
    status, body = await post(client, event)
    assert status == 400 and body["error"]["code"] == "invalid_webhook" and writer.written == []


# (a minute past the 300 s tolerance: a second's truncation or a slow event loop must not bring it back in)
@pytest.mark.parametrize(("offset", "words"), [(-360, "s old"), (360, "s in the future")], ids=["stale", "future"])
async def test_a_timestamp_outside_the_tolerance_is_400_and_writes_nothing(gateway, offset, words):
    client, writer = await gateway(ScriptedStripe())
    status, body = await post(client, refund_event(500), timestamp=int(time.time()) + offset)
    assert status == 400 and body["error"]["code"] == "invalid_webhook" and words in body["error"]["message"]
    assert writer.written == []
