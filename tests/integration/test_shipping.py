"""Shipments and carrier tracking on the real stack: a confirmed order shipped in two parts reaches
`delivered` through signed EasyPost updates; replayed and reordered updates change nothing twice; an
unknown tracking number is acknowledged and dead-lettered; a bad signature writes nothing; a shipped
order cannot be cancelled."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.carrier_webhooks import build_event, sign
from devtools.stack import CARRIER_SECRET
from streams.models import Envelope
from tests.conftest import Api, Reply, read_topic, token
from tests.harness import Stack
from tests.integration.payments_api import awaiting_payment, send_webhook, settled_past

VENDOR = token("vendor", sub="vera")
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


async def confirmed_order(api: Api, customer: str, lines: dict[str, int]) -> dict[str, Any]:
    order = await awaiting_payment(api, customer, lines)
    reply = await send_webhook(api, "payment_intent.amount_capturable_updated", order)
    assert reply.status == 200, reply.body
    confirmed = await settled_past(api, order, customer, "payment_pending", "paid")
    assert confirmed["status"] == "confirmed" and confirmed["fulfilment"] == "awaiting_shipment", confirmed
    return confirmed


async def ship(api: Api, order_id: str, tracking: str, lines: dict[str, int], key: str | None = None) -> Reply:
    return await api.post(f"/v1/orders/{order_id}/shipments", VENDOR,
                          {"lines": [{"sku": s, "quantity": q} for s, q in lines.items()], "carrier": "USPS",
                           "tracking_number": tracking, "service": "Priority"},
                          headers={"Idempotency-Key": key} if key else None)


async def carrier(api: Api, tracking: str, status: str, minutes: int, event_id: str | None = None,
                  secret: str = CARRIER_SECRET) -> Reply:
    event = build_event(tracking, status, event_id=event_id or f"evt_{uuid.uuid4().hex}",
                        at=T0 + timedelta(minutes=minutes))
    body = json.dumps(event).encode()
    return await api.post("/v1/shipping/webhook", None, raw=body,
                          headers={"X-Hmac-Signature": sign(body, secret), "Content-Type": "application/json"})


def shipment_events(stack: Stack, order_id: str) -> list[Envelope]:
    events = [Envelope.from_bytes(m.value()) for m in read_topic(stack.bootstrap, stack.topic("shipments.events"),
                                                                   idle_seconds=1.0)]
    return [e for e in events if str(e.payload.order_id) == order_id]  # type: ignore[attr-defined]


async def test_an_order_shipped_in_two_parts_is_delivered_and_tracking_replays_change_nothing(
        stack: Stack, seeded_api: Api) -> None:
    api = seeded_api
    # Given a confirmed order of 2 mugs and 1 tea
    order = await confirmed_order(seeded_api, "shipper", {"MUG-1": 2, "TEA-1": 1})
    order_id = order["order_id"]
    track_a, track_b = f"EZA{uuid.uuid4().hex[:10]}", f"EZB{uuid.uuid4().hex[:10]}"

    # When the vendor ships one mug (with a key, sent twice), then more than is left, then the rest
    first = await ship(api, order_id, track_a, {"MUG-1": 1}, key="ship-1")
    assert first.status == 201 and first.body["status"] == "label_created", first.body
    again = await ship(api, order_id, track_a, {"MUG-1": 1}, key="ship-1")
    assert (again.status, again.body["shipment_id"]) == (201, first.body["shipment_id"])
    reused = await ship(api, order_id, track_a, {"MUG-1": 2}, key="ship-1")
    assert reused.status == 409 and reused.body["error"]["code"] == "idempotency_key_reused"
    too_many = await ship(api, order_id, track_b, {"MUG-1": 2})
    assert too_many.status == 409 and too_many.body["error"]["code"] == "exceeds_ordered", too_many.body
    partial = (await api.get(f"/v1/orders/{order_id}", VENDOR)).body
    assert partial["status"] == "partially_shipped" and len(partial["shipments"]) == 1
    second = await ship(api, order_id, track_b, {"MUG-1": 1, "TEA-1": 1})
    assert second.status == 201, second.body
    assert (await api.get(f"/v1/orders/{order_id}", VENDOR)).body["status"] == "shipped"

    # ... and cancelling now is refused with the advice to return
    cancel = await api.post(f"/v1/orders/{order_id}/cancel", token("customer", sub="shipper"))
    assert cancel.status == 409 and cancel.body["error"]["code"] == "already_shipped", cancel.body
    assert "return" in cancel.body["error"]["message"]

    # ... and the carrier reports, with shipment B's updates reordered and replayed
    for tracking, status, minutes, event_id in [
        (track_a, "in_transit", 1, "evt_a1"), (track_a, "delivered", 5, "evt_a2"),
        (track_b, "out_for_delivery", 4, "evt_b2"), (track_b, "in_transit", 2, "evt_b1"),  # late
        (track_b, "out_for_delivery", 4, "evt_b2"),  # replayed
        (track_a, "in_transit", 1, "evt_a1"),  # replayed after delivery
        (track_b, "delivered", 6, "evt_b3"), (track_b, "delivered", 6, "evt_b3"),
    ]:
        reply = await carrier(api, tracking, status, minutes, event_id)
        assert reply.status == 200, reply.body

    # Then the order is delivered, its shipments too
    delivered = await api.poll_past(f"/v1/orders/{order_id}", VENDOR, {"shipped"}, 60)
    assert delivered["status"] == "delivered", delivered
    assert [s["status"] for s in delivered["shipments"]] == ["delivered", "delivered"]
    assert [h["status"] for h in delivered["history"]][-3:] == ["partially_shipped", "shipped", "delivered"]
    # ... and shipments.events told each step once: two created, A in_transit+delivered, B out_for_delivery+delivered
    await asyncio.to_thread(stack.wait_drained)
    events = shipment_events(stack, order_id)
    assert sorted(e.type for e in events) == ["ShipmentCreated"] * 2 + ["ShipmentStatusChanged"] * 4
    changes = [(e.payload.tracking_number, e.payload.status) for e in events  # type: ignore[attr-defined]
               if e.type == "ShipmentStatusChanged"]
    assert sorted(changes) == sorted([(track_a, "in_transit"), (track_a, "delivered"),
                                      (track_b, "out_for_delivery"), (track_b, "delivered")])
    assert {e.tenant for e in events} == {"acme"}

    # When the same updates are all sent once more, nothing is written again
    for tracking, status, minutes, event_id in [(track_a, "delivered", 5, "evt_a2"), (track_b, "in_transit", 2, "evt_b9")]:
        assert (await carrier(api, tracking, status, minutes, event_id)).status == 200
    await asyncio.to_thread(stack.wait_drained)
    assert len(shipment_events(stack, order_id)) == 6


async def test_unknown_tracking_is_acknowledged_and_dead_lettered_and_a_bad_signature_writes_nothing(
        stack: Stack, seeded_api: Api) -> None:
    api = seeded_api
    before = len(read_topic(stack.bootstrap, stack.topic("shipping.tracking"), idle_seconds=1.0))
    # Given a forged update (wrong secret) and one without a signature
    forged = await carrier(api, "EZFORGED1", "delivered", 1, secret="not-the-carrier-secret-at-all-xxxxx")
    assert forged.status == 400 and forged.body["error"]["code"] == "invalid_webhook"
    unsigned = await api.post("/v1/shipping/webhook", None, raw=b'{"object":"Event"}',
                              headers={"Content-Type": "application/json"})
    assert unsigned.status == 400
    # Then nothing was written
    assert len(read_topic(stack.bootstrap, stack.topic("shipping.tracking"), idle_seconds=1.0)) == before

    # When a genuine update names a tracking number no shipment has
    unknown = await carrier(api, "EZNOBODY42", "in_transit", 1, "evt_unknown_1")
    # Then it is acknowledged, and dead-lettered with the reason
    assert unknown.status == 200 and unknown.body["tracking_code"] == "EZNOBODY42"
    await asyncio.to_thread(stack.wait_drained)
    letters = [Envelope.from_bytes(m.value()).payload
               for m in read_topic(stack.bootstrap, stack.topic("shipping.tracking.dlq"), idle_seconds=1.0)]
    assert any("unknown tracking number EZNOBODY42" in letter.error for letter in letters), letters  # type: ignore[attr-defined]


async def test_a_shipment_of_an_unconfirmed_order_is_refused(stack: Stack, seeded_api: Api) -> None:
    order = await awaiting_payment(seeded_api, "unpaid", {"MUG-1": 1})
    refused = await ship(seeded_api, order["order_id"], "EZUNPAID1", {"MUG-1": 1})
    assert refused.status == 409 and refused.body["error"]["code"] == "not_shippable", refused.body
    customer = await seeded_api.post(f"/v1/orders/{order['order_id']}/shipments", token("customer", sub="unpaid"),
                                     {"lines": [{"sku": "MUG-1", "quantity": 1}], "carrier": "USPS",
                                      "tracking_number": "EZX1"})
    assert customer.status == 403
