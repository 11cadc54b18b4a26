"""The shipping decisions (streams/tables/shipping.py): shipments of an order, carrier tracking, the index."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from connectors import carrier_webhooks
from streams.models import (
    CarrierUpdate,
    CarrierUpdateReceived,
    CreateShipment,
    Envelope,
    Order,
    OrderLineState,
    OrderStatus,
    OrderStatusChanged,
    RegisterTracking,
    ShipmentCreated,
    ShipmentLine,
    ShipmentStatusChanged,
    StatusEntry,
    TrackingRegistration,
    TrackShipment,
)
from streams.tables import shipping
from streams.tables.decision import UnhandledEvent

ORDER = uuid.UUID(int=7)
S1, S2 = uuid.UUID(int=101), uuid.UUID(int=102)
T_CONFIRMED = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
NOW = T_CONFIRMED + timedelta(hours=2)


def confirmed() -> Order:
    return Order(order_id=ORDER, tenant="acme", customer="alice", status=OrderStatus.CONFIRMED,
                 lines=(OrderLineState(sku="MUG-1", quantity=2), OrderLineState(sku="BOWL-1", quantity=1)),
                 request_hash="h", history=(StatusEntry(status=OrderStatus.CONFIRMED, at=T_CONFIRMED),),
                 fulfilment=shipping.AWAITING_SHIPMENT)


def create(shipment_id: uuid.UUID, tracking: str, **lines: int) -> CreateShipment:
    return CreateShipment(order_id=ORDER, shipment_id=shipment_id, carrier="USPS", tracking_number=tracking,
                          lines=tuple(ShipmentLine(sku=sku.replace("_", "-"), quantity=q) for sku, q in lines.items()),
                          requested_by="vera", request_hash="r")


def update(event_id: str, status: str, minutes: int) -> TrackShipment:
    return TrackShipment(order_id=ORDER, shipment_id=S1, tracking_number="EZ1", update=CarrierUpdate(
        carrier_event_id=event_id, status=status, carrier="USPS", carrier_time=T_CONFIRMED + timedelta(minutes=minutes)))


def test_a_first_partial_shipment_makes_the_order_partially_shipped_and_registers_its_tracking() -> None:
    # Given a confirmed order of 2 mugs and a bowl
    # When one mug ships
    decision = shipping.ship(confirmed(), create(S1, "EZ1", MUG_1=1), NOW)
    # Then the order is partially shipped, the shipment label_created, and three events say so
    order = decision.state
    assert (order.status, order.fulfilment) == ("partially_shipped", "partially_shipped")
    assert [s.status for s in order.shipments] == ["label_created"]
    created, register, changed = decision.events
    assert created == ShipmentCreated(order_id=ORDER, shipment_id=S1, lines=(ShipmentLine(sku="MUG-1", quantity=1),),
                                      carrier="USPS", tracking_number="EZ1", units=1, since_confirmed_seconds=7200)
    assert register == RegisterTracking(tracking_number="EZ1", order_id=ORDER, shipment_id=S1)
    assert isinstance(changed, OrderStatusChanged) and (changed.status, changed.previous_status) == (
        "partially_shipped", "confirmed")


def test_the_rest_ships_the_order_and_a_replayed_command_changes_nothing() -> None:
    first = shipping.ship(confirmed(), create(S1, "EZ1", MUG_1=1), NOW).state
    second = shipping.ship(first, create(S2, "EZ2", MUG_1=1, BOWL_1=1), NOW)
    assert second.state.status == "shipped"
    assert shipping.ship(second.state, create(S2, "EZ2", MUG_1=1, BOWL_1=1), NOW).events == []


@pytest.mark.parametrize(("lines", "code"), [
    ({"MUG_1": 3}, "exceeds_ordered"),
    ({"CUP_1": 1}, "exceeds_ordered"),
])
def test_more_units_than_ordered_are_refused_and_the_refusal_kept(lines: dict[str, int], code: str) -> None:
    decision = shipping.ship(confirmed(), create(S1, "EZ1", **lines), NOW)
    assert decision.events == [] and decision.state.shipments == ()
    assert decision.state.refused_shipments[str(S1)].startswith(f"{code}: ")


def test_units_already_shipped_count_against_what_is_left() -> None:
    first = shipping.ship(confirmed(), create(S1, "EZ1", MUG_1=2), NOW).state
    refused = shipping.ship(first, create(S2, "EZ2", MUG_1=1), NOW).state
    assert refused.refused_shipments[str(S2)] == (
        "exceeds_ordered: 1 x MUG-1 would ship more than ordered (2 ordered, 2 shipped already)")


@pytest.mark.parametrize("status", ["pending", "payment_pending", "refunding", "cancelled", "shipped"])
def test_only_a_confirmed_or_partially_shipped_order_ships(status: str) -> None:
    order = confirmed().model_copy(update={"status": status})
    assert shipping.ship(order, create(S1, "EZ1", MUG_1=1), NOW).state.refused_shipments[str(S1)].startswith(
        "not_shippable: ")


def shipped_all_in_one() -> Order:
    return shipping.ship(confirmed(), create(S1, "EZ1", MUG_1=2, BOWL_1=1), NOW).state


def test_tracking_moves_forward_to_delivered_and_the_order_with_it() -> None:
    order = shipped_all_in_one()
    statuses = []
    for event_id, status, minutes in [("e1", "in_transit", 1), ("e2", "out_for_delivery", 2), ("e3", "delivered", 3)]:
        decision = shipping.track(order, update(event_id, status, minutes), NOW)
        order = decision.state
        statuses += [(type(e).__name__, e.status) for e in decision.events]  # type: ignore[attr-defined]
    assert statuses == [("ShipmentStatusChanged", "in_transit"), ("ShipmentStatusChanged", "out_for_delivery"),
                        ("ShipmentStatusChanged", "delivered"), ("OrderStatusChanged", "delivered")]
    assert order.status == "delivered" and order.shipments[0].carrier_time == T_CONFIRMED + timedelta(minutes=3)


def test_a_replayed_or_older_update_changes_nothing() -> None:
    order = shipping.track(shipped_all_in_one(), update("e2", "out_for_delivery", 2), NOW).state
    assert shipping.track(order, update("e2", "out_for_delivery", 2), NOW).state == order  # replay
    older = shipping.track(order, update("e1", "in_transit", 1), NOW)  # arrives late
    assert older.state == order and older.events == []
    lower_but_newer = shipping.track(order, update("e9", "in_transit", 5), NOW)  # a carrier's step back
    assert lower_but_newer.state == order and lower_but_newer.events == []


def test_a_step_forward_stamped_in_the_same_second_applies_and_a_step_back_does_not() -> None:
    # (the walk-through's `make carrier` sent in_transit and delivered within one second)
    order = shipping.track(shipped_all_in_one(), update("e1", "in_transit", 1), NOW).state
    same_time_back = shipping.track(order, update("e0", "label_created", 1), NOW)
    assert same_time_back.state == order and same_time_back.events == []
    forward = shipping.track(order, update("e2", "delivered", 1), NOW)
    assert forward.state.shipments[0].status == "delivered" and forward.state.status == "delivered"


def test_an_exception_may_come_after_any_status_and_delivery_after_it_but_nothing_after_delivery() -> None:
    order = shipping.track(shipped_all_in_one(), update("e2", "out_for_delivery", 2), NOW).state
    order = shipping.track(order, update("e3", "exception", 3), NOW).state
    assert order.shipments[0].status == "exception"
    assert shipping.track(order, update("e4", "in_transit", 4), NOW).events == []  # below out_for_delivery
    order = shipping.track(order, update("e5", "delivered", 5), NOW).state
    assert order.status == "delivered"
    assert shipping.track(order, update("e6", "returned", 6), NOW).events == []


def test_the_status_changed_event_carries_the_carriers_time() -> None:
    decision = shipping.track(shipped_all_in_one(), update("e1", "in_transit", 30), NOW)
    (event,) = decision.events
    assert event == ShipmentStatusChanged(
        order_id=ORDER, shipment_id=S1, status="in_transit", carrier="USPS", tracking_number="EZ1",
        occurred_at=T_CONFIRMED + timedelta(minutes=30), previous_status="label_created", since_confirmed_seconds=1800)


@pytest.mark.parametrize(("easypost", "ours"), [
    ("pre_transit", "label_created"), ("in_transit", "in_transit"), ("out_for_delivery", "out_for_delivery"),
    ("delivered", "delivered"), ("failure", "exception"), ("error", "exception"), ("unknown", "exception"),
    ("return_to_sender", "returned"), ("something_new", "exception"),
])
def test_easypost_statuses_map_to_ours(easypost: str, ours: str) -> None:
    assert shipping.status_of_easypost(easypost) == ours


def test_the_index_keeps_the_first_registration_and_resolves_updates_with_the_orders_tenant() -> None:
    registered = Envelope.new("acme", RegisterTracking(tracking_number="EZ1", order_id=ORDER, shipment_id=S1))
    state = shipping.resolve(None, registered, NOW).state
    assert state == TrackingRegistration(tracking_number="EZ1", tenant="acme", order_id=ORDER, shipment_id=S1)
    other = Envelope.new("globex", RegisterTracking(tracking_number="EZ1", order_id=uuid.UUID(int=8), shipment_id=S2))
    assert shipping.resolve(state, other, NOW).state == state
    carrier = CarrierUpdate(carrier_event_id="evt_1", status="in_transit", carrier="USPS", carrier_time=NOW)
    received = Envelope.new("carrier", CarrierUpdateReceived(tracking_number="EZ1", update=carrier))
    decision = shipping.resolve(state, received, NOW)
    assert decision.tenant == "acme"
    assert decision.events == [TrackShipment(order_id=ORDER, shipment_id=S1, tracking_number="EZ1", update=carrier)]


def test_an_update_for_an_unknown_tracking_number_is_dead_lettered_with_the_reason() -> None:
    carrier = CarrierUpdate(carrier_event_id="evt_1", status="in_transit", carrier="USPS", carrier_time=NOW)
    received = Envelope.new("carrier", CarrierUpdateReceived(tracking_number="NOPE1", update=carrier))
    with pytest.raises(UnhandledEvent, match="unknown tracking number NOPE1"):
        shipping.resolve(None, received, NOW)


def test_easypost_signatures_verify_and_refuse() -> None:
    import json
    body = json.dumps(carrier_webhooks.build_event("EZ1", "in_transit", event_id="evt_1", at=NOW)).encode()
    event = carrier_webhooks.verify(body, carrier_webhooks.sign(body, "s" * 32), "s" * 32)
    assert (event.tracking_code, event.status, event.carrier_time, event.event_id) == ("EZ1", "in_transit", NOW, "evt_1")
    for header in (None, "", carrier_webhooks.sign(body, "t" * 32), carrier_webhooks.sign(body + b" ", "s" * 32)):
        with pytest.raises(carrier_webhooks.InvalidCarrierWebhook):
            carrier_webhooks.verify(body, header, "s" * 32)
