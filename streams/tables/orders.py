"""Orders: the order-level decision of the reservation saga, keyed by order id.

Placing an order asks every line's SKU owner for a hold (`ReserveStock`). The order becomes
`reserved` once every line is held, or `rejected` at the first refusal. Every exit from
`pending` or `reserved` other than success releases *all* lines: a release for a line whose
reservation is still in flight is safe because the orders agent wrote that `ReserveStock` earlier
to the same SKU partition, so the inventory agent sees the reserve before the release; a release
of a line that was never held changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from streams.models import (
    CancelOrder,
    Envelope,
    ExpireOrderHold,
    Money,
    Order,
    OrderLineState,
    OrderStatus,
    OrderStatusChanged,
    Payload,
    PlaceOrder,
    ReleaseStock,
    ReserveStock,
    StatusEntry,
    StockReleased,
    StockReservationRejected,
    StockReserved,
)
from streams.tables.decision import Decision, UnhandledEvent

OPEN_STATUSES = (OrderStatus.PENDING, OrderStatus.RESERVED)


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
        ReserveStock(order_id=order.order_id, sku=line.sku, quantity=line.quantity) for line in lines
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
    return Decision(reserved, [changed])


def line_refused(order: Order, result: StockReservationRejected, now: datetime) -> Decision[Order]:
    if order.status != OrderStatus.PENDING:
        return Decision(order)
    rejected, changed = _transition(order, OrderStatus.REJECTED, now, reason=f"{result.sku}: {result.reason}")
    return Decision(rejected, [changed, *_release_all(rejected, "order rejected")])


def cancel(order: Order, command: CancelOrder, now: datetime) -> Decision[Order]:
    if order.status not in OPEN_STATUSES:
        return Decision(order)
    cancelled, changed = _transition(
        order, OrderStatus.CANCELLED, now, reason=f"cancelled by {command.requested_by}", hold_expires_at=None
    )
    return Decision(cancelled, [changed, *_release_all(cancelled, "order cancelled")])


def expire(order: Order, now: datetime) -> Decision[Order]:
    if order.status != OrderStatus.RESERVED or order.hold_expires_at is None or now < order.hold_expires_at:
        return Decision(order)
    expired, changed = _transition(
        order, OrderStatus.EXPIRED, now, reason="hold_expired: the order was not paid in time", hold_expires_at=None
    )
    return Decision(expired, [changed, *_release_all(expired, "hold expired")])


def decide(state: Order | None, event: Envelope, now: datetime, *, hold_ttl: timedelta) -> Decision[Order | None]:
    payload = event.payload
    if isinstance(payload, PlaceOrder):
        if state is not None:
            return Decision(state)  # a replayed placement: the first one stands
        return place(event, payload, now)  # type: ignore[return-value]
    if state is None:
        # Results and commands for an order this partition has never seen carry nothing to apply.
        if isinstance(payload, (StockReserved, StockReservationRejected, StockReleased, CancelOrder, ExpireOrderHold)):
            return Decision(None)
        raise UnhandledEvent(f"orders do not handle {event.type}")
    if isinstance(payload, StockReserved):
        return line_reserved(state, payload, now, hold_ttl)  # type: ignore[return-value]
    if isinstance(payload, StockReservationRejected):
        return line_refused(state, payload, now)  # type: ignore[return-value]
    if isinstance(payload, StockReleased):
        return Decision(state)
    if isinstance(payload, CancelOrder):
        return cancel(state, payload, now)  # type: ignore[return-value]
    if isinstance(payload, ExpireOrderHold):
        return expire(state, now)  # type: ignore[return-value]
    raise UnhandledEvent(f"orders do not handle {event.type}")
