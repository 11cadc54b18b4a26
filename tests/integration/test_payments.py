"""Payments through Stripe (the SDK against stripe-mock), driven by signed webhooks as Stripe sends them."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.conftest import Api, read_topic, token
from tests.harness import Stack, eventually_async
from tests.integration.orders_api import VENDOR, stock
from tests.integration.payments_api import awaiting_payment, send_webhook, settled_past


@pytest.fixture
def api(seeded_api: Api) -> Api:
    return seeded_api


def statuses(order: dict) -> list[str]:
    return [entry["status"] for entry in order["history"]]


async def test_an_authorized_payment_is_captured_and_confirms_the_order(api: Api, stack: Stack) -> None:
    # Given an order waiting for its payment
    before = await stock(api, "MUG-1")
    order = await awaiting_payment(api, "payer", {"MUG-1": 2})
    payment = order["payment"]
    assert payment["status"] == "awaiting_payment" and payment["intent_id"] and payment["client_secret"]
    # (only the customer sees the client secret)
    staff_view = (await api.get(f"/v1/orders/{order['order_id']}", VENDOR)).body
    assert staff_view["payment"]["intent_id"] == payment["intent_id"] and "client_secret" not in staff_view["payment"]
    # When Stripe says the amount is authorized
    reply = await send_webhook(api, "payment_intent.amount_capturable_updated", order)
    assert reply.status == 200, reply.body
    # Then the payment is captured and the order confirmed; its units are sold, not held
    confirmed = await settled_past(api, order, "payer", "payment_pending", "paid")
    assert statuses(confirmed) == ["pending", "reserved", "payment_pending", "paid", "confirmed"]
    assert confirmed["payment"]["status"] == "captured" and confirmed["hold_expires_at"] is None
    await asyncio.to_thread(stack.wait_drained)  # the sale reaches the SKU after the order is confirmed
    after = await stock(api, "MUG-1")
    assert (after["on_hand"], after["reserved"]) == (before["on_hand"] - 2, before["reserved"])


async def test_a_failed_payment_cancels_the_order_and_gives_the_stock_back(api: Api, stack: Stack) -> None:
    before = await stock(api, "CUP-1")
    order = await awaiting_payment(api, "declined", {"CUP-1": 3})
    assert (await stock(api, "CUP-1"))["reserved"] == before["reserved"] + 3
    # When the card is declined
    await send_webhook(api, "payment_intent.payment_failed", order, failure_message="Your card has insufficient funds.")
    # Then the order is cancelled with Stripe's reason and the 3 units are free again
    cancelled = await settled_past(api, order, "declined", "payment_pending")
    assert statuses(cancelled) == ["pending", "reserved", "payment_pending", "payment_failed", "cancelled"]
    assert cancelled["reason"] == "payment_failed: Your card has insufficient funds."
    await asyncio.to_thread(stack.wait_drained)
    assert await stock(api, "CUP-1") == before


async def test_repeated_and_late_webhooks_change_nothing(api: Api, stack: Stack) -> None:
    order = await awaiting_payment(api, "impatient", {"TEA-1": 1})
    # When the authorization arrives three times (one event redelivered twice, and a second event)
    first = await send_webhook(api, "payment_intent.amount_capturable_updated", order, event_id="evt_dup_1")
    again = await send_webhook(api, "payment_intent.amount_capturable_updated", order, event_id="evt_dup_1")
    other = await send_webhook(api, "payment_intent.amount_capturable_updated", order)
    assert (first.status, again.status, other.status) == (200, 200, 200)
    confirmed = await settled_past(api, order, "impatient", "payment_pending", "paid")
    # ... and a failure and a cancellation arrive late, after the capture
    await send_webhook(api, "payment_intent.payment_failed", order)
    await send_webhook(api, "payment_intent.canceled", order)
    await asyncio.to_thread(stack.wait_drained)
    # Then the order was paid and confirmed once, and stays confirmed
    final = (await api.get(f"/v1/orders/{order['order_id']}", token("customer", sub="impatient"))).body
    assert statuses(final) == statuses(confirmed) == ["pending", "reserved", "payment_pending", "paid", "confirmed"]
    events = [json.loads(m.value())["payload"] for m in read_topic(stack.bootstrap, stack.topic("payments.events"))]
    mine = [e for e in events if e["order_id"] == order["order_id"]]
    assert [e.get("intent_id") for e in mine] == [order["payment"]["intent_id"]] * 3
    assert len(mine) == 3  # created, authorized, captured: once each


async def test_a_webhook_with_a_bad_signature_is_refused_and_writes_nothing(api: Api, stack: Stack) -> None:
    order = await awaiting_payment(api, "forger", {"TEA-1": 1})
    forged = await send_webhook(api, "payment_intent.amount_capturable_updated", order, event_id="evt_forged",
                                secret="whsec_not_the_real_one")
    unsigned = await api.post("/v1/payments/webhook", None, raw=b'{"id": "evt_unsigned"}',
                              headers={"Content-Type": "application/json"})
    assert forged.status == unsigned.status == 400
    assert forged.body["error"]["code"] == unsigned.body["error"]["code"] == "invalid_webhook"
    written = read_topic(stack.bootstrap, stack.topic("payments.webhooks"))
    assert not any(b"evt_forged" in m.value() or b"evt_unsigned" in m.value() for m in written)
    still = (await api.get(f"/v1/orders/{order['order_id']}", token("customer", sub="forger"))).body
    assert still["status"] == "payment_pending"


async def test_cancelling_a_paid_order_refunds_it_and_restocks(api: Api) -> None:
    before = await stock(api, "POT-1")
    order = await awaiting_payment(api, "regretful", {"POT-1": 1})
    await send_webhook(api, "payment_intent.amount_capturable_updated", order)
    confirmed = await settled_past(api, order, "regretful", "payment_pending", "paid")
    assert confirmed["status"] == "confirmed"
    # When the customer cancels the paid order
    reply = await api.post(f"/v1/orders/{order['order_id']}/cancel", token("customer", sub="regretful"))
    assert reply.status == 202 and reply.body["status"] == "refunding"
    # Then the payment is refunded and the unit is back on hand
    refunded = await settled_past(api, order, "regretful", "confirmed", "refunding")
    assert statuses(refunded)[-3:] == ["confirmed", "refunding", "refunded"]
    assert refunded["payment"]["status"] == "refunded"

    async def restocked() -> bool:
        return await stock(api, "POT-1") == before

    await eventually_async(restocked, 30, "POT-1's unit coming back on hand")
    # And a refunded order cannot be cancelled again
    again = await api.post(f"/v1/orders/{order['order_id']}/cancel", token("customer", sub="regretful"))
    assert again.status == 409
