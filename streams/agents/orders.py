"""Orders agent: the order-level half of the reservation saga, and the hold-expiry timer.

Inputs: `orders.commands` (PlaceOrder, CancelOrder, ExpireOrderHold), `inventory.reservations`
(StockReserved, StockReservationRejected, StockReleased) and `payments.events` (PaymentIntentCreated,
PaymentAuthorized, PaymentCaptured, PaymentFailed, PaymentCanceled, PaymentRefunded,
PaymentPartiallyRefunded) and `shipments.commands` (CreateShipment from the gateway, TrackShipment
from the shipping agent), all keyed by order id and co-partitioned, so one worker owns an order and
every message about it, its shipments included.
State: table `orders` (Order), same key and partitions, with the due times of unpaid holds.
Outputs: `inventory.commands` (ReserveStock, ReleaseStock, CommitStock, AdjustStock of a refund;
key `<tenant>/<sku>`), `payments.commands` (RequestPayment, CapturePayment, CancelPayment,
RefundPayment; key order id), `orders.events` (OrderStatusChanged, key order id),
`shipments.events` (ShipmentCreated, ShipmentStatusChanged; key order id) and `shipping.tracking`
(RegisterTracking; key tracking number).

Hold expiry: when an unpaid hold's time is up, the deadline timer asks with `ExpireOrderHold` on
`orders.commands`, once; the agent decides.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from streams import topics
from streams.models import Envelope, ExpireOrderHold, Order
from streams.runtime.agent import Agent, Deadline, Table, Tables
from streams.settings import Settings
from streams.tables import orders
from streams.tables.decision import Decision

SOURCES = (topics.ORDERS_COMMANDS, topics.INVENTORY_RESERVATIONS, topics.PAYMENTS_EVENTS, topics.SHIPMENTS_COMMANDS)
TABLE = Table("orders", Order)


def hold_expiry(order: Order) -> datetime | None:
    return order.hold_expires_at if order.status in orders.AWAITING_PAYMENT else None


def expire(key: bytes, order: Order) -> Envelope:
    return Envelope.new(order.tenant, ExpireOrderHold(order_id=order.order_id))


def agent(settings: Settings) -> Agent:
    hold_ttl = timedelta(seconds=settings.hold_ttl_seconds)

    def decide(state: Order | None, event: Envelope, now: datetime, tables: Tables) -> Decision[Order | None]:
        return orders.decide(state, event, now, hold_ttl=hold_ttl)

    return Agent(name="orders", sources=SOURCES, table=TABLE, decide=decide,
                 deadline=Deadline(due_at=hold_expiry, ask=expire))
