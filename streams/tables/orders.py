"""Orders: the order-level decision of the reservation and payment sagas, keyed by order id.

Placing an order asks every line's SKU owner for a hold (`ReserveStock`). The order becomes
`reserved` once every line is held, or `rejected` at the first refusal. Every exit from
`pending` or `reserved` other than success releases *all* lines: a release for a line whose
reservation is still in flight is safe because the orders agent wrote that `ReserveStock` earlier
to the same SKU partition, so the inventory agent sees the reserve before the release; a release
of a line that was never held changes nothing.

Once every line is held the order asks the payments context for a PaymentIntent
(`RequestPayment`) and follows its answers: `payment_pending` (intent created), `paid` (authorized;
the order asks for the capture), `confirmed` (captured; the held units become sales). A failed
payment is recorded as `payment_failed` and the order is `cancelled` with the stock released. A
cancel or an expiry before the capture voids the intent (`CancelPayment`); a cancel after it asks
for a refund (`refunding`), and the refund puts the units back on hand (`refunded`).

A refund made in Stripe for part of a confirmed order (`PaymentPartiallyRefunded`) is recorded on
the order's payment (`partially_refunded`, with the amount refunded so far); the order stays
`confirmed` and no unit moves: which units came back, if any, is the vendor's to say with a stock
adjustment. The refund that completes it (`PaymentRefunded`) ends the order `refunded` and
restocks every line, as a cancel's refund does.

A confirmed order awaits shipment; its shipments and the statuses read from them
(`partially_shipped`, `shipped`, `delivered`) are decided in streams/tables/shipping.py. An order
with a shipment is never cancelled (a CancelOrder changes nothing); a refund in Stripe after shipping
is recorded on its payment and moves no stock.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from streams.models import (
    AdjustStock,
    CancelOrder,
    CancelPayment,
    CapturePayment,
    CommitStock,
    CreateShipment,
    Envelope,
    ExpireOrderHold,
    Money,
    Order,
    OrderLine,
    OrderLineState,
    OrderPayment,
    OrderStatus,
    OrderStatusChanged,
    Payload,
    PaymentAuthorized,
    PaymentCanceled,
    PaymentCaptured,
    PaymentFailed,
    PaymentIntentCreated,
    PaymentPartiallyRefunded,
    PaymentRefunded,
    PaymentStatus,
    PlaceOrder,
    RefundPayment,
    ReleaseStock,
    RequestPayment,
    ReserveStock,
    StatusEntry,
    TrackShipment,
    StockReleased,
    StockReservationRejected,
    StockReserved,
)
from streams.tables import shipping
from streams.tables.decision import Decision, UnhandledEvent

# Stock is held and no money taken yet: a cancel releases the stock (and voids the intent).
OPEN_STATUSES = (OrderStatus.PENDING, OrderStatus.RESERVED, OrderStatus.PAYMENT_PENDING, OrderStatus.PAID)
# A PaymentIntent has been asked for: leaving these statuses without a capture must void it.
PAYMENT_REQUESTED = (OrderStatus.RESERVED, OrderStatus.PAYMENT_PENDING, OrderStatus.PAID)
# The hold's time to live runs while the customer has not paid.
AWAITING_PAYMENT = (OrderStatus.RESERVED, OrderStatus.PAYMENT_PENDING)


def _changed(order: Order, previous: str | None) -> OrderStatusChanged:
    return OrderStatusChanged(
        order_id=order.order_id,
        customer=order.customer,
        status=order.status,
        previous_status=previous,
        reason=order.reason,
        total=order.total,
        item_count=sum(line.quantity for line in order.lines),
    )


def _transition(order: Order, status: str, now: datetime, **changes: object) -> tuple[Order, OrderStatusChanged]:
    updated = order.model_copy(
        update={"status": status, "history": (*order.history, StatusEntry(status=status, at=now)), **changes}
    )
    return updated, _changed(updated, order.status)


def _release_all(order: Order, reason: str) -> list[Payload]:
    return [ReleaseStock(order_id=order.order_id, sku=line.sku, reason=reason) for line in order.lines]


def _line_problem(lines: Iterable[OrderLineState]) -> str | None:
    seen: set[str] = set()
    for line in lines:
        if line.quantity < 1:
            return f"invalid_quantity: {line.sku} has quantity {line.quantity}; it must be at least 1"
        if line.sku in seen:
            return f"duplicate_sku: {line.sku} appears on two lines; put the whole quantity on one"
        seen.add(line.sku)
    return None


def place(event: Envelope, command: PlaceOrder, now: datetime) -> Decision[Order]:
    lines = tuple(OrderLineState(sku=line.sku, quantity=line.quantity) for line in command.lines)
    order = Order(
        order_id=command.order_id,
        tenant=event.tenant,
        customer=command.customer,
        status=OrderStatus.PENDING,
        lines=lines,
        request_hash=command.request_hash,
        history=(StatusEntry(status=OrderStatus.PENDING, at=now),),
    )
    placed = _changed(order, None)
    problem = _line_problem(lines)
    if problem is not None:
        rejected, changed = _transition(order, OrderStatus.REJECTED, now, reason=problem)
        return Decision(rejected, [placed, changed])
    reserves: list[Payload] = [
        ReserveStock(order_id=order.order_id, sku=line.sku, quantity=line.quantity, campaign=command.campaign,
                     unit_price=command.unit_price)
        for line in lines
    ]
    return Decision(order, [placed, *reserves])


def line_reserved(order: Order, result: StockReserved, now: datetime, hold_ttl: timedelta) -> Decision[Order]:
    if order.status != OrderStatus.PENDING:
        return Decision(order)
    lines = tuple(
        line.model_copy(update={"reserved": True, "unit_price": result.unit_price}) if line.sku == result.sku else line
        for line in order.lines
    )
    order = order.model_copy(update={"lines": lines})
    if not all(line.reserved for line in lines):
        return Decision(order)
    currencies = {line.unit_price.currency for line in lines if line.unit_price is not None}
    if len(currencies) != 1:
        reason = f"mixed_currency: the lines are priced in {', '.join(sorted(currencies))}; order one currency at a time"
        rejected, changed = _transition(order, OrderStatus.REJECTED, now, reason=reason)
        return Decision(rejected, [changed, *_release_all(rejected, "order rejected")])
    total = Money(
        amount=sum(line.quantity * line.unit_price.amount for line in lines if line.unit_price is not None),
        currency=currencies.pop(),
    )
    reserved, changed = _transition(
        order, OrderStatus.RESERVED, now, total=total, hold_expires_at=now + hold_ttl
    )
    return Decision(reserved, [changed, RequestPayment(order_id=order.order_id, customer=order.customer, amount=total)])


def line_refused(order: Order, result: StockReservationRejected, now: datetime) -> Decision[Order]:
    if order.status != OrderStatus.PENDING:
        return Decision(order)
    rejected, changed = _transition(order, OrderStatus.REJECTED, now, reason=f"{result.sku}: {result.reason}")
    return Decision(rejected, [changed, *_release_all(rejected, "order rejected")])


def _close(order: Order, status: str, now: datetime, reason: str) -> Decision[Order]:
    """Leave an open status without a sale: the stock goes back and a requested intent is voided."""
    closed, changed = _transition(order, status, now, reason=reason, hold_expires_at=None)
    void = [CancelPayment(order_id=order.order_id, reason=reason)] if order.status in PAYMENT_REQUESTED else []
    return Decision(closed, [changed, *_release_all(closed, reason), *void])


def cancel(order: Order, command: CancelOrder, now: datetime) -> Decision[Order]:
    reason = f"cancelled by {command.requested_by}"
    if order.status == OrderStatus.CONFIRMED:
        refunding, changed = _transition(order, OrderStatus.REFUNDING, now, reason=reason)
        return Decision(refunding, [changed, RefundPayment(order_id=order.order_id, reason=reason)])
    if order.status not in OPEN_STATUSES:
        return Decision(order)
    return _close(order, OrderStatus.CANCELLED, now, reason)


def expire(order: Order, now: datetime) -> Decision[Order]:
    if order.status not in AWAITING_PAYMENT or order.hold_expires_at is None or now < order.hold_expires_at:
        return Decision(order)
    return _close(order, OrderStatus.EXPIRED, now, "hold_expired: the order was not paid in time")


def _with_payment_status(order: Order, status: str, **changes: object) -> Order:
    if order.payment is None:
        return order
    return order.model_copy(update={"payment": order.payment.model_copy(update={"status": status, **changes})})


def intent_created(order: Order, event: PaymentIntentCreated, now: datetime) -> Decision[Order]:
    if order.status != OrderStatus.RESERVED:
        return Decision(order)  # closed meanwhile: its CancelPayment is already on the way
    payment = OrderPayment(
        intent_id=event.intent_id, client_secret=event.client_secret, status=PaymentStatus.AWAITING_PAYMENT
    )
    pending, changed = _transition(order, OrderStatus.PAYMENT_PENDING, now, payment=payment)
    return Decision(pending, [changed])


def authorized(order: Order, event: PaymentAuthorized, now: datetime) -> Decision[Order]:
    if order.status not in AWAITING_PAYMENT:
        return Decision(order)
    paid, changed = _transition(_with_payment_status(order, PaymentStatus.AUTHORIZED), OrderStatus.PAID, now,
                                hold_expires_at=None)
    return Decision(paid, [changed, CapturePayment(order_id=order.order_id)])


def captured(order: Order, event: PaymentCaptured, now: datetime) -> Decision[Order]:
    if order.status not in PAYMENT_REQUESTED:
        return Decision(order)
    confirmed, changed = _transition(_with_payment_status(order, PaymentStatus.CAPTURED), OrderStatus.CONFIRMED, now,
                                     hold_expires_at=None, fulfilment=shipping.AWAITING_SHIPMENT)
    sales: list[Payload] = [CommitStock(order_id=order.order_id, sku=line.sku) for line in order.lines]
    # What was bought together, for the recommendations (streams/agents/recommendations.py).
    changed = changed.model_copy(update={"lines": tuple(OrderLine(sku=line.sku, quantity=line.quantity)
                                                        for line in order.lines)})
    return Decision(confirmed, [changed, *sales])


def payment_failed(order: Order, event: PaymentFailed, now: datetime) -> Decision[Order]:
    if event.action == "refund" and order.status == OrderStatus.REFUNDING:
        back, changed = _transition(order, OrderStatus.CONFIRMED, now, reason=f"refund_failed: {event.reason}")
        return Decision(back, [changed])
    if event.action not in ("create", "authorize", "capture") or order.status not in PAYMENT_REQUESTED:
        return Decision(order)
    failed, failed_changed = _transition(
        _with_payment_status(order, PaymentStatus.FAILED), OrderStatus.PAYMENT_FAILED, now,
        reason=f"payment_failed: {event.reason}",
    )
    reason = f"payment_failed: {event.reason}"
    closed = _close(failed, OrderStatus.CANCELLED, now, reason)
    # Only an authorized intent (a failed capture) still holds the customer's money; voiding another changes
    # nothing. `_close` voids nothing itself here: it sees the order as payment_failed.
    void = [CancelPayment(order_id=order.order_id, reason=reason)] if event.action == "capture" else []
    return Decision(closed.state, [failed_changed, *closed.events, *void])


# The money was taken: only a refund changes the payment now, never a cancellation.
SOLD = (OrderStatus.CONFIRMED, OrderStatus.REFUNDING, OrderStatus.REFUNDED)


def payment_canceled(order: Order, event: PaymentCanceled, now: datetime) -> Decision[Order]:
    if order.status in SOLD:
        return Decision(order)
    order = _with_payment_status(order, PaymentStatus.CANCELED)
    if order.status not in PAYMENT_REQUESTED:
        return Decision(order)  # our own void after a cancel or an expiry: only the payment's status changes
    closed = _close(order, OrderStatus.CANCELLED, now, f"payment_canceled: {event.reason}")
    return Decision(closed.state, [e for e in closed.events if not isinstance(e, CancelPayment)])


def partially_refunded(order: Order, event: PaymentPartiallyRefunded, now: datetime) -> Decision[Order]:
    if order.status not in (OrderStatus.REFUNDING, OrderStatus.CONFIRMED, *shipping.SHIPPING_STATUSES) \
            or order.payment is None:
        return Decision(order)
    before = order.payment.refunded
    if before is not None and before.amount >= event.refunded.amount:
        return Decision(order)
    return Decision(_with_payment_status(order, PaymentStatus.PARTIALLY_REFUNDED, refunded=event.refunded))


def refunded(order: Order, event: PaymentRefunded, now: datetime) -> Decision[Order]:
    if order.status in shipping.SHIPPING_STATUSES:
        # Refunded in Stripe after shipping: the units are with the customer, the vendor restocks what comes back.
        return Decision(_with_payment_status(order, PaymentStatus.REFUNDED, refunded=event.amount))
    if order.status not in (OrderStatus.REFUNDING, OrderStatus.CONFIRMED):
        return Decision(order)
    done, changed = _transition(_with_payment_status(order, PaymentStatus.REFUNDED, refunded=event.amount),
                                OrderStatus.REFUNDED, now)
    restock: list[Payload] = [
        AdjustStock(
            adjustment_id=uuid.uuid5(order.order_id, f"refund:{line.sku}"), sku=line.sku, delta=line.quantity,
            reason=f"order {order.order_id} refunded",
        )
        for line in order.lines
    ]
    return Decision(done, [changed, *restock])


def decide(state: Order | None, event: Envelope, now: datetime, *, hold_ttl: timedelta) -> Decision[Order | None]:
    payload = event.payload
    if isinstance(payload, PlaceOrder):
        if state is not None:
            return Decision(state)  # a replayed placement: the first one stands
        return place(event, payload, now)  # type: ignore[return-value]
    if state is None:
        if type(payload) in _HANDLERS or isinstance(payload, StockReserved):
            # Results and commands for an order this partition has never seen carry nothing to apply.
            return Decision(None)
        raise UnhandledEvent(f"orders do not handle {event.type}")
    if isinstance(payload, StockReserved):
        return line_reserved(state, payload, now, hold_ttl)  # type: ignore[return-value]
    handler = _HANDLERS.get(type(payload))
    if handler is None:
        raise UnhandledEvent(f"orders do not handle {event.type}")
    return handler(state, payload, now)  # type: ignore[return-value]


_HANDLERS: dict[type[Payload], Callable[[Order, Any, datetime], Decision[Order]]] = {
    StockReservationRejected: line_refused,
    StockReleased: lambda order, result, now: Decision(order),
    CancelOrder: cancel,
    ExpireOrderHold: lambda order, command, now: expire(order, now),
    PaymentIntentCreated: intent_created,
    PaymentAuthorized: authorized,
    PaymentCaptured: captured,
    PaymentFailed: payment_failed,
    PaymentCanceled: payment_canceled,
    PaymentPartiallyRefunded: partially_refunded,
    PaymentRefunded: refunded,
    CreateShipment: shipping.ship,
    TrackShipment: shipping.track,
}
