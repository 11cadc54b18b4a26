"""Orders agent: the order-level half of the reservation saga, and the hold-expiry timer.

Inputs: `orders.commands` (PlaceOrder, CancelOrder, ExpireOrderHold), `inventory.reservations`
(StockReserved, StockReservationRejected, StockReleased) and `payments.events` (PaymentIntentCreated,
PaymentAuthorized, PaymentCaptured, PaymentFailed, PaymentCanceled, PaymentRefunded), all keyed by
order id and co-partitioned, so one worker owns an order and every message about it.
State: table `orders` (Order) and table `order-hold-deadlines` (order id -> hold expiry, only
for orders whose stock is held and not yet paid for), same key and partitions.
Outputs: `inventory.commands` (ReserveStock, ReleaseStock, CommitStock, AdjustStock of a refund;
key `<tenant>/<sku>`), `payments.commands` (RequestPayment, CapturePayment, CancelPayment,
RefundPayment; key order id), `orders.events` (OrderStatusChanged, key order id).

Hold expiry: a deadline table and timer (`Worker.deadlines`) ask with `ExpireOrderHold` on
`orders.commands` when an unpaid hold's time is up; the agent decides.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from streams import topics
from streams.models import Envelope, ExpireOrderHold, Order
from streams.processing import Processor, StateTable
from streams.tables import orders
from streams.tables.decision import Decision
from streams.worker import Worker

SOURCES = (topics.ORDERS_COMMANDS, topics.INVENTORY_RESERVATIONS, topics.PAYMENTS_EVENTS)


def register(worker: Worker) -> StateTable[Order]:
    hold_ttl = timedelta(seconds=worker.settings.hold_ttl_seconds)
    order_table = StateTable(worker.table("orders"), Order)

    def decide(state: Order | None, event: Envelope, now: datetime) -> Decision[Order | None]:
        return orders.decide(state, event, now, hold_ttl=hold_ttl)

    def hold_expiry(order: Order) -> datetime | None:
        return order.hold_expires_at if order.status in orders.AWAITING_PAYMENT else None

    def expire(key: bytes, order: Order) -> Envelope:
        return Envelope.new(order.tenant, ExpireOrderHold(order_id=order.order_id))

    track_deadline = worker.deadlines("order-hold-deadlines", order_table, hold_expiry, expire)
    processor = Processor(worker.binder, SOURCES, order_table, decide, worker.watchers, on_stored=track_deadline)

    @worker.app.agent(worker.binder.source(*SOURCES), name="orders")
    async def orders_agent(stream):  # type: ignore[no-untyped-def]
        async for event in stream.events():
            await processor.handle(event)

    worker.serve_state(order_table)
    return order_table
