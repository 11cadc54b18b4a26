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

The timer runs on every worker over the deadlines of the partitions it owns; it only asks
(`ExpireOrderHold` on `orders.commands`), and the agent decides, so a timer that fires twice or
on a worker that just lost the partition changes nothing. Deadlines live in a changelogged table:
a restart or a rebalance never loses a pending expiry.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from streams import topics
from streams.models import Envelope, ExpireOrderHold, Order, utc_now
from streams.processing import Processor, StateTable
from streams.tables import orders
from streams.tables.decision import Decision
from streams.worker import Worker

log = logging.getLogger(__name__)

SOURCES = (topics.ORDERS_COMMANDS, topics.INVENTORY_RESERVATIONS, topics.PAYMENTS_EVENTS)


def register(worker: Worker) -> StateTable[Order]:
    settings = worker.settings
    hold_ttl = timedelta(seconds=settings.hold_ttl_seconds)
    order_table = StateTable(worker.table("orders"), Order)
    deadlines = worker.table("order-hold-deadlines")

    def decide(state: Order | None, event: Envelope, now: datetime) -> Decision[Order | None]:
        return orders.decide(state, event, now, hold_ttl=hold_ttl)

    def track_deadline(key: bytes, order: Order | None) -> None:
        if order is not None and order.status in orders.AWAITING_PAYMENT and order.hold_expires_at is not None:
            deadlines[key] = order.hold_expires_at.isoformat().encode()
        elif key in deadlines:
            del deadlines[key]

    processor = Processor(
        worker.binder,
        SOURCES,
        order_table,
        decide,
        worker.watchers,
        on_stored=track_deadline,
    )

    @worker.app.agent(
        worker.binder.source(*SOURCES), name="orders"
    )
    async def orders_agent(stream):  # type: ignore[no-untyped-def]
        async for event in stream.events():
            await processor.handle(event)

    @worker.app.timer(interval=settings.expiry_scan_interval_seconds)
    async def expire_due_holds() -> None:
        now = utc_now()
        due = [
            (key, order_table.get(key))
            for key, deadline in list(deadlines.items())
            if datetime.fromisoformat(deadline.decode()) <= now
        ]
        for key, order in due:
            if order is None:
                continue
            log.info("hold of order %s expired at %s; asking to expire it", order.order_id, order.hold_expires_at)
            await worker.binder.send(Envelope.new(order.tenant, ExpireOrderHold(order_id=uuid.UUID(key.decode()))))

    worker.serve_state(order_table)
    return order_table
