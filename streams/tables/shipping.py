"""Shipping: an order's shipments and carrier tracking, as pure decisions.

Two halves, each with its own single writer:

- **The order's shipments** (`ship`, `track`), decided by the orders agent, keyed by order id: the
  orders agent is the one writer of an order, so a shipment and a cancel can never both win. A
  confirmed order awaits shipment (`fulfilment = awaiting_shipment`). The vendor ships lines of it
  (`CreateShipment`); several shipments may split an order, never more units of a SKU than ordered.
  The order's status is read from its shipments: `partially_shipped` while units remain unshipped,
  `shipped` once every unit is in a shipment, `delivered` once every shipment is delivered. A new
  shipment registers its tracking number with the shipping agent (`RegisterTracking`).
- **The tracking index** (`resolve`), decided by the shipping agent, keyed by tracking number:
  registrations, and carrier updates resolved to their order (`TrackShipment`, with the order's
  tenant); an update for a tracking number nobody registered is dead-lettered with the reason.

A carrier update never moves a shipment backwards: updates are delivered at least once and in any
order, so one applies only when its carrier event id is new, its carrier time is later than the
last one applied (or the same, for a step forward: carriers stamp to the second or the minute),
the shipment has not ended (`delivered`, `returned`), and its status ranks at
least as high as the highest reached (`exception` ranks beside any status: a delivery that failed
may go on).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from streams.models import (
    CarrierUpdate,
    CarrierUpdateReceived,
    CreateShipment,
    Envelope,
    Order,
    OrderStatus,
    OrderStatusChanged,
    Payload,
    RegisterTracking,
    Shipment,
    ShipmentCreated,
    ShipmentStatus,
    ShipmentStatusChanged,
    StatusEntry,
    TrackingRegistration,
    TrackShipment,
)
from streams.tables.decision import Decision, UnhandledEvent

AWAITING_SHIPMENT = "awaiting_shipment"
# Statuses in which an order takes (more) shipments.
SHIPPABLE = (OrderStatus.CONFIRMED, OrderStatus.PARTIALLY_SHIPPED)
# Statuses of an order with any shipment: it cannot be cancelled, only returned.
SHIPPING_STATUSES = (OrderStatus.PARTIALLY_SHIPPED, OrderStatus.SHIPPED, OrderStatus.DELIVERED)

# How far a shipment has come; `exception` has no rank of its own (see `applies`).
RANK = {
    ShipmentStatus.LABEL_CREATED: 0,
    ShipmentStatus.IN_TRANSIT: 1,
    ShipmentStatus.OUT_FOR_DELIVERY: 2,
    ShipmentStatus.DELIVERED: 3,
    ShipmentStatus.RETURNED: 3,
}
FINAL = (ShipmentStatus.DELIVERED, ShipmentStatus.RETURNED)
REMEMBERED_CARRIER_EVENTS = 50
REMEMBERED_REFUSALS = 20

# EasyPost's tracker statuses (https://docs.easypost.com/docs/trackers) to ours.
EASYPOST_STATUSES = {
    "pre_transit": ShipmentStatus.LABEL_CREATED,
    "in_transit": ShipmentStatus.IN_TRANSIT,
    "out_for_delivery": ShipmentStatus.OUT_FOR_DELIVERY,
    "available_for_pickup": ShipmentStatus.OUT_FOR_DELIVERY,
    "delivered": ShipmentStatus.DELIVERED,
    "return_to_sender": ShipmentStatus.RETURNED,
    "failure": ShipmentStatus.EXCEPTION,
    "error": ShipmentStatus.EXCEPTION,
    "unknown": ShipmentStatus.EXCEPTION,
    "cancelled": ShipmentStatus.EXCEPTION,
}


def status_of_easypost(status: str) -> str:
    """Our shipment status for an EasyPost tracker status; one we do not know is an exception."""
    return EASYPOST_STATUSES.get(status, ShipmentStatus.EXCEPTION)


class UnknownTrackingNumber(UnhandledEvent):
    """A carrier update for a tracking number no shipment registered: dead-lettered with this reason."""


# --- the order's shipments (orders agent) ---------------------------------------------------------

def ordered_units(order: Order) -> dict[str, int]:
    return {line.sku: line.quantity for line in order.lines}


def shipped_units(shipments: Iterable[Shipment]) -> dict[str, int]:
    shipped: dict[str, int] = {}
    for shipment in shipments:
        for line in shipment.lines:
            shipped[line.sku] = shipped.get(line.sku, 0) + line.quantity
    return shipped


def shipment_problem(order: Order, lines: Iterable[tuple[str, int]]) -> str | None:
    """Why these lines cannot ship now, as `code: message`; None when they can."""
    if order.status not in SHIPPABLE:
        return f"not_shippable: the order is {order.status}; only a confirmed order ships"
    ordered, shipped = ordered_units(order), shipped_units(order.shipments)
    seen: set[str] = set()
    for sku, quantity in lines:
        if sku in seen:
            return f"duplicate_sku: {sku} appears on two lines of the shipment; put the whole quantity on one"
        seen.add(sku)
        left = ordered.get(sku, 0) - shipped.get(sku, 0)
        if quantity > left:
            return (f"exceeds_ordered: {quantity} x {sku} would ship more than ordered "
                    f"({ordered.get(sku, 0)} ordered, {shipped.get(sku, 0)} shipped already)")
    return None


def status_from_shipments(order: Order) -> str:
    """The order's status read from its shipments (its own status when it has none)."""
    if not order.shipments:
        return order.status
    if shipped_units(order.shipments) != ordered_units(order):
        return OrderStatus.PARTIALLY_SHIPPED
    if all(shipment.status == ShipmentStatus.DELIVERED for shipment in order.shipments):
        return OrderStatus.DELIVERED
    return OrderStatus.SHIPPED


def _since_confirmed(order: Order, at: datetime) -> int:
    confirmed = next((entry.at for entry in order.history if entry.status == OrderStatus.CONFIRMED), None)
    return max(0, int((at - confirmed).total_seconds())) if confirmed is not None else 0


def _with_status_from_shipments(order: Order, now: datetime) -> tuple[Order, list[Payload]]:
    status = status_from_shipments(order)
    if status == order.status:
        return order, []
    updated = order.model_copy(update={
        "status": status, "fulfilment": status, "history": (*order.history, StatusEntry(status=status, at=now)),
    })
    changed = OrderStatusChanged(order_id=order.order_id, customer=order.customer, status=status,
                                 previous_status=order.status, reason=order.reason, total=order.total,
                                 item_count=sum(line.quantity for line in order.lines))
    return updated, [changed]


def ship(order: Order, command: CreateShipment, now: datetime) -> Decision[Order]:
    """A vendor's shipment: the first command with a shipment id stands; a refusal is kept by id."""
    key = str(command.shipment_id)
    if any(s.shipment_id == command.shipment_id for s in order.shipments) or key in order.refused_shipments:
        return Decision(order)
    problem = shipment_problem(order, ((line.sku, line.quantity) for line in command.lines))
    if problem is not None:
        refused = dict(list(order.refused_shipments.items())[-(REMEMBERED_REFUSALS - 1):])
        refused[key] = problem
        return Decision(order.model_copy(update={"refused_shipments": refused}))
    shipment = Shipment(
        shipment_id=command.shipment_id, lines=command.lines, carrier=command.carrier,
        tracking_number=command.tracking_number, service=command.service, created_at=now,
        requested_by=command.requested_by, request_hash=command.request_hash,
    )
    order = order.model_copy(update={"shipments": (*order.shipments, shipment)})
    order, changed = _with_status_from_shipments(order, now)
    created = ShipmentCreated(
        order_id=order.order_id, shipment_id=shipment.shipment_id, lines=shipment.lines, carrier=shipment.carrier,
        tracking_number=shipment.tracking_number, service=shipment.service, units=shipment.units,
        since_confirmed_seconds=_since_confirmed(order, now),
    )
    register = RegisterTracking(tracking_number=command.tracking_number, order_id=order.order_id,
                                shipment_id=shipment.shipment_id)
    return Decision(order, [created, register, *changed])


def applies(shipment: Shipment, update: CarrierUpdate) -> bool:
    """Whether a carrier update moves the shipment (never backwards, never twice)."""
    if update.carrier_event_id in shipment.seen_events or shipment.status in FINAL:
        return False
    if shipment.carrier_time is not None and update.carrier_time < shipment.carrier_time:
        return False
    if shipment.carrier_time is not None and update.carrier_time == shipment.carrier_time:
        # Carriers stamp to the second (EasyPost) or the minute: two steps may share a time, and
        # then only a step forward tells which came second.
        return RANK.get(update.status, -1) > shipment.rank
    if update.status == ShipmentStatus.EXCEPTION:
        return True
    return RANK.get(update.status, -1) >= shipment.rank


def track(order: Order, command: TrackShipment, now: datetime) -> Decision[Order]:
    index = next((i for i, s in enumerate(order.shipments) if s.shipment_id == command.shipment_id), None)
    if index is None:
        raise UnhandledEvent(f"order {order.order_id} has no shipment {command.shipment_id}")
    shipment, update = order.shipments[index], command.update
    if not applies(shipment, update):
        return Decision(order)
    moved = shipment.model_copy(update={
        "status": update.status, "carrier_time": update.carrier_time,
        "rank": max(shipment.rank, RANK.get(update.status, shipment.rank)),
        "tracking_url": update.tracking_url or shipment.tracking_url, "detail": update.detail,
        "seen_events": (*shipment.seen_events, update.carrier_event_id)[-REMEMBERED_CARRIER_EVENTS:],
    })
    shipments = (*order.shipments[:index], moved, *order.shipments[index + 1:])
    order, changed = _with_status_from_shipments(order.model_copy(update={"shipments": shipments}), now)
    if moved.status == shipment.status:
        return Decision(order, changed)  # a newer update of the same status: remembered, nothing to tell
    event = ShipmentStatusChanged(
        order_id=order.order_id, shipment_id=moved.shipment_id, status=moved.status, carrier=moved.carrier,
        tracking_number=moved.tracking_number, tracking_url=moved.tracking_url, detail=moved.detail,
        occurred_at=update.carrier_time, previous_status=shipment.status,
        since_confirmed_seconds=_since_confirmed(order, update.carrier_time),
    )
    return Decision(order, [event, *changed])


# --- the tracking index (shipping agent) ------------------------------------------------------------

def resolve(state: TrackingRegistration | None, event: Envelope, now: datetime) -> Decision[TrackingRegistration | None]:
    payload = event.payload
    if isinstance(payload, RegisterTracking):
        if state is not None:
            return Decision(state)  # the first registration of a tracking number stands
        return Decision(TrackingRegistration(tracking_number=payload.tracking_number, tenant=event.tenant,
                                             order_id=payload.order_id, shipment_id=payload.shipment_id))
    if isinstance(payload, CarrierUpdateReceived):
        if state is None:
            raise UnknownTrackingNumber(
                f"unknown tracking number {payload.tracking_number}: no shipment registered it "
                f"(carrier event {payload.update.carrier_event_id}, {payload.update.status})")
        tracked = TrackShipment(order_id=state.order_id, shipment_id=state.shipment_id,
                                tracking_number=state.tracking_number, update=payload.update)
        return Decision(state, [tracked], tenant=state.tenant)
    raise UnhandledEvent(f"shipping does not handle {event.type}")
