"""Refunds as Stripe has them, and the webhook's edges, on the real stack: a worker and a gateway on
the session's broker, Stripe's SDK against stripe-mock behind `MetadataKeepingStripe` (stripe-mock
forgets an intent's metadata; real Stripe, and this proxy, return it with the intent), and signed
webhooks as Stripe sends them. What was written is read back from the topics, never inferred from a
404."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from connectors.stripe_webhooks import sign
from devtools.stripe_trigger import build_event
from tests.conftest import Api, Reply, read_topic, token
from tests.harness import Stack, eventually_async
from tests.integration.conftest import WEBHOOK_SECRET
from tests.integration.orders_api import stock
from tests.integration.payments_api import awaiting_payment, send_webhook, settled_past
from tests.integration.stubs import MetadataKeepingStripe

TOPIC_WAIT = 60  # generous: these wait for outcomes, they do not time them


@pytest.fixture(scope="module")
def keeping_stripe(stripe_mock: str) -> Iterator[MetadataKeepingStripe]:
    with MetadataKeepingStripe(stripe_mock).running() as proxy:
        yield proxy


@pytest.fixture(scope="module")
def stack_env(keeping_stripe: MetadataKeepingStripe) -> dict[str, str]:
    return {"STRIPE_API_BASE": keeping_stripe.url, "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET}


@pytest.fixture
def api(seeded_api: Api) -> Api:
    return seeded_api


async def confirmed(api: Api, stack: Stack, customer: str, lines: dict[str, int]) -> dict[str, Any]:
    """An order paid and captured, its units sold (the sale has reached the SKUs)."""
    order = await awaiting_payment(api, customer, lines)
    reply = await send_webhook(api, "payment_intent.amount_capturable_updated", order)
    assert reply.status == 200, reply.body
    done = await settled_past(api, order, customer, "payment_pending", "paid")
    assert done["status"] == "confirmed", done
    await asyncio.to_thread(stack.wait_drained)
    return done


async def order_of(api: Api, order: dict[str, Any], customer: str) -> dict[str, Any]:
    reply = await api.get(f"/v1/orders/{order['order_id']}", token("customer", sub=customer))
    assert reply.status == 200, reply.body
    return dict(reply.body)


async def shows_refunded(api: Api, order: dict[str, Any], customer: str, amount: int) -> dict[str, Any]:
    """Until the order's payment shows `amount` refunded."""
    async def check() -> dict[str, Any] | None:
        seen = await order_of(api, order, customer)
        return seen if (seen["payment"].get("refunded") or {}).get("amount") == amount else None

    return await eventually_async(check, TOPIC_WAIT, f"{amount} refunded on order {order['order_id']}")


def payloads(stack: Stack, topic: str) -> list[dict[str, Any]]:
    return [json.loads(m.value()) for m in read_topic(stack.bootstrap, stack.topic(topic))]


def of_order(stack: Stack, topic: str, order_id: str) -> list[dict[str, Any]]:
    return [e for e in payloads(stack, topic) if e["payload"].get("order_id") == order_id]


async def test_a_partial_refund_is_recorded_on_the_order_and_moves_no_stock(api: Api, stack: Stack) -> None:
    # Given a confirmed order of 2 MUG-1 at 1299 EUR: 2598 EUR, its units sold
    order = await confirmed(api, stack, "partial", {"MUG-1": 2})
    assert order["total"] == {"amount": 2598, "currency": "EUR"}
    before = await stock(api, "MUG-1")

    # When Stripe refunds 500 of it
    first = await send_webhook(api, "charge.refunded", order, event_id="evt_partial_1", amount_refunded=500)
    assert first.status == 200, first.body

    # Then the order stays confirmed and shows 500 EUR refunded, partially
    shown = await shows_refunded(api, order, "partial", 500)
    assert shown["status"] == "confirmed"
    assert shown["payment"]["status"] == "partially_refunded"
    assert shown["payment"]["refunded"] == {"amount": 500, "currency": "EUR"}

    # When 300 more are refunded (Stripe's charge says 800 so far), and the first event is delivered again
    again = await send_webhook(api, "charge.refunded", order, event_id="evt_partial_1", amount_refunded=500)
    second = await send_webhook(api, "charge.refunded", order, event_id="evt_partial_2", amount_refunded=800)
    assert (again.status, second.status) == (200, 200)

    # Then the refunds add up to 800, counted once each, and the stock has not moved
    shown = await shows_refunded(api, order, "partial", 800)
    assert [entry["status"] for entry in shown["history"]][-1] == "confirmed"
    await asyncio.to_thread(stack.wait_drained)
    assert await stock(api, "MUG-1") == before
    told = [e["payload"] for e in of_order(stack, "payments.events", order["order_id"])
            if e["type"] == "PaymentPartiallyRefunded"]
    assert [(e["amount"]["amount"], e["refunded"]["amount"]) for e in told] == [(500, 500), (300, 800)]
    adjustments = [e for e in payloads(stack, "inventory.stock-changes")
                   if order["order_id"] in e["payload"].get("reason", "")]
    assert adjustments == []


async def test_a_full_refund_after_a_partial_one_restocks_each_unit_once(api: Api, stack: Stack) -> None:
    # Given a confirmed order of 1 POT-1 (3900) and 2 CUP-1 (800 each): 5500 EUR
    order = await confirmed(api, stack, "full", {"POT-1": 1, "CUP-1": 2})
    assert order["total"] == {"amount": 5500, "currency": "EUR"}
    pots, cups = (await stock(api, "POT-1"))["on_hand"], (await stock(api, "CUP-1"))["on_hand"]

    # When Stripe refunds 1000, then the rest (5500 so far, refunded: true), the last one delivered twice
    for event_id, so_far in [("evt_full_1", 1000), ("evt_full_2", 5500), ("evt_full_2", 5500)]:
        reply = await send_webhook(api, "charge.refunded", order, event_id=event_id, amount_refunded=so_far)
        assert reply.status == 200, reply.body

    # Then the order is refunded, with the whole 5500 back
    refunded = await settled_past(api, order, "full", "confirmed")
    assert refunded["status"] == "refunded"
    assert refunded["payment"] == {**refunded["payment"], "status": "refunded",
                                   "refunded": {"amount": 5500, "currency": "EUR"}}

    # And every unit is back on hand once: 1 POT-1, 2 CUP-1, one adjustment per SKU
    async def restocked() -> bool:
        return ((await stock(api, "POT-1"))["on_hand"], (await stock(api, "CUP-1"))["on_hand"]) == (pots + 1, cups + 2)

    await eventually_async(restocked, TOPIC_WAIT, "the refunded units coming back")
    await asyncio.to_thread(stack.wait_drained)
    assert ((await stock(api, "POT-1"))["on_hand"], (await stock(api, "CUP-1"))["on_hand"]) == (pots + 1, cups + 2)
    order_id = uuid.UUID(order["order_id"])
    adjusted = [e["payload"] for e in payloads(stack, "inventory.stock-changes") if e["type"] == "StockAdjusted"
                and e["payload"]["adjustment_id"] in {str(uuid.uuid5(order_id, f"refund:{sku}"))
                                                      for sku in ("POT-1", "CUP-1")}]
    assert sorted((e["sku"], e["delta"]) for e in adjusted) == [("CUP-1", 2), ("POT-1", 1)]
    kinds = [e["type"] for e in of_order(stack, "payments.events", order["order_id"])]
    assert kinds.count("PaymentPartiallyRefunded") == 1 and kinds.count("PaymentRefunded") == 1


async def test_a_refund_without_metadata_reaches_its_order_through_the_intent(
        api: Api, stack: Stack, keeping_stripe: MetadataKeepingStripe) -> None:
    # Given a confirmed order of 1 TEA-1 (450 EUR)
    order = await confirmed(api, stack, "bare", {"TEA-1": 1})
    intent_id = order["payment"]["intent_id"]
    teas = (await stock(api, "TEA-1"))["on_hand"]

    # When Stripe refunds it in full with a charge that carries no metadata
    reply = await send_webhook(api, "charge.refunded", order, event_id="evt_bare", metadata=False)

    # Then the gateway found the order through the PaymentIntent's metadata, and the order is refunded and restocked
    assert reply.status == 200 and reply.body["order_id"] == order["order_id"], reply.body
    assert intent_id in keeping_stripe.retrieved
    refunded = await settled_past(api, order, "bare", "confirmed")
    assert refunded["status"] == "refunded"

    async def restocked() -> bool:
        return (await stock(api, "TEA-1"))["on_hand"] == teas + 1

    await eventually_async(restocked, TOPIC_WAIT, "the refunded TEA-1 coming back")
    written = [e for e in payloads(stack, "payments.webhooks") if e["payload"]["stripe_event_id"] == "evt_bare"]
    assert [(e["tenant"], e["payload"]["order_id"]) for e in written] == [("acme", order["order_id"])]


# --- the webhook's edges: each refused or ignored one writes nothing ---------------------------------


def signed(event: dict[str, Any] | bytes, *, timestamp: int | None = None, secrets: tuple[str, ...] = (WEBHOOK_SECRET,)
           ) -> tuple[bytes, str]:
    body = event if isinstance(event, bytes) else json.dumps(event).encode()
    return body, sign(body, secrets[0], timestamp, also=secrets[1:])


async def deliver(api: Api, body: bytes, signature: str | None) -> Reply:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    return await api.post("/v1/payments/webhook", None, raw=body, headers=headers)


def stranger_event(event_type: str, event_id: str, **fields: Any) -> dict[str, Any]:
    """A well-formed event for an order id no stack knows (the payments agent finds nothing to apply)."""
    return build_event(event_type, order_id=uuid.uuid4(), tenant="acme", intent_id=f"pi_{uuid.uuid4().hex[:12]}",
                       amount=1000, currency="eur", event_id=event_id, **fields)


def webhook_ids(stack: Stack) -> list[str]:
    return [e["payload"]["stripe_event_id"] for e in payloads(stack, "payments.webhooks")]


async def test_refused_and_ignored_webhooks_write_nothing_and_a_rolled_secret_is_accepted(
        api: Api, stack: Stack, keeping_stripe: MetadataKeepingStripe) -> None:
    # Given the records on payments.webhooks so far
    before = webhook_ids(stack)
    now = int(time.time())
    refunded = stranger_event("charge.refunded", "evt_edge_stale")

    # When Stripe-looking requests arrive that must be refused (400) ...
    refused = {
        "stale": signed(refunded, timestamp=now - 400),
        "future": signed(stranger_event("charge.refunded", "evt_edge_future"), timestamp=now + 400),
        "signed-not-json": signed(b"this is not json"),
        "signed-not-an-event": signed(b'{"id": "evt_edge_shapeless", "type": "charge.refunded"}'),
        "refund-without-amounts": signed({"id": "evt_edge_no_amounts", "object": "event", "type": "charge.refunded",
                                          "data": {"object": {"id": "ch_1", "payment_intent": "pi_1"}}}),
        "unsigned-garbage": (b"\x00\xff garbage", None),
        "wrong-secrets": signed(stranger_event("charge.refunded", "evt_edge_wrong"),
                                secrets=("whsec_old_not_ours", "whsec_new_not_ours")),
    }
    answers = {name: await deliver(api, body, signature) for name, (body, signature) in refused.items()}
    # ... or acknowledged and ignored (200): a type this system does not act on
    unknown = await deliver(api, *signed(stranger_event("payment_intent.succeeded", "evt_edge_unknown")
                                         | {"type": "payment_intent.processing"}))
    # ... and, last, a genuine event signed with a rolled secret beside ours (two v1 signatures)
    rolled = await deliver(api, *signed(stranger_event("payment_intent.succeeded", "evt_edge_rolled"),
                                        secrets=("whsec_being_rolled_out", WEBHOOK_SECRET)))

    # Then each refusal is a 400 invalid_webhook that says what is wrong
    assert {name: reply.status for name, reply in answers.items()} == dict.fromkeys(refused, 400)
    assert {reply.body["error"]["code"] for reply in answers.values()} == {"invalid_webhook"}
    assert "s old" in answers["stale"].body["error"]["message"]
    assert "in the future" in answers["future"].body["error"]["message"]
    assert "no v1 signature" in answers["wrong-secrets"].body["error"]["message"]
    # ... the unknown type is acknowledged, ignored and logged; the rolled secret's event is accepted
    assert unknown.status == 200 and "not an event this system acts on" in unknown.body["ignored"]
    assert rolled.status == 200 and rolled.body["stripe_event_id"] == "evt_edge_rolled"
    assert stack.gateway is not None and "evt_edge_unknown" in stack.gateway.log_path.read_text()

    # And the topic gained exactly one record, the rolled secret's event (read once it is there)
    async def rolled_written() -> list[str] | None:
        ids = await asyncio.to_thread(webhook_ids, stack)
        return ids if "evt_edge_rolled" in ids else None

    after = await eventually_async(rolled_written, TOPIC_WAIT, "the rolled secret's event on payments.webhooks")
    assert len(after) == len(before) + 1
    assert sorted(set(after) - set(before)) == ["evt_edge_rolled"]
    assert keeping_stripe.retrieved.count("pi_1") == 0  # nothing refused was looked up in Stripe either


async def test_a_stripe_that_hangs_on_the_intent_gets_a_503_and_nothing_is_written(
        api: Api, stack: Stack, keeping_stripe: MetadataKeepingStripe) -> None:
    # Given a Stripe that never answers for one PaymentIntent
    keeping_stripe.hang.add("pi_hangs_forever")
    before = webhook_ids(stack)
    event = build_event("charge.refunded", order_id=uuid.uuid4(), tenant="acme", intent_id="pi_hangs_forever",
                        amount=1000, currency="eur", event_id="evt_edge_hang", metadata=False)

    # When a refund without metadata names that intent, and a genuine event with metadata follows it
    hung, meanwhile = await asyncio.gather(
        deliver(api, *signed(event)),
        deliver(api, *signed(stranger_event("payment_intent.succeeded", "evt_edge_meanwhile"))),
    )

    # Then the first is answered 503 (Stripe will send it again) without Stripe's words, the second 200
    assert hung.status == 503 and hung.body["error"]["code"] == "unavailable", hung.body
    assert hung.headers.get("Retry-After")
    assert meanwhile.status == 200
    assert "pi_hangs_forever" in keeping_stripe.retrieved

    # And of the two only the second was written
    async def meanwhile_written() -> list[str] | None:
        ids = await asyncio.to_thread(webhook_ids, stack)
        return ids if "evt_edge_meanwhile" in ids else None

    after = await eventually_async(meanwhile_written, TOPIC_WAIT, "the second event on payments.webhooks")
    assert sorted(set(after) - set(before)) == ["evt_edge_meanwhile"] and len(after) == len(before) + 1
