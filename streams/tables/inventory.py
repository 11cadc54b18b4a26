"""Inventory: stock per SKU, keyed by <tenant>/<sku>; the only place stock is decided.

Its agent is the single writer of a SKU's stock, so a reservation is checked and applied in one
step and units can never be promised twice. Holds are keyed by order id, which makes reserving
and releasing idempotent; adjustments are remembered by id for the same reason.
"""

from __future__ import annotations

from datetime import datetime

from streams.models import (
    AdjustmentOutcome,
    AdjustStock,
    CommitStock,
    Envelope,
    Product,
    ReleaseStock,
    ReserveStock,
    StockAdjusted,
    StockAdjustmentRejected,
    StockCommitted,
    StockLevel,
    StockReleased,
    StockReservationRejected,
    StockReserved,
)
from streams.tables.decision import Decision, UnhandledEvent

REMEMBERED_ADJUSTMENTS = 100


def _empty(event: Envelope, sku: str) -> StockLevel:
    return StockLevel(tenant=event.tenant, sku=sku)


def adjust(state: StockLevel, command: AdjustStock, product: Product | None) -> Decision[StockLevel]:
    key = str(command.adjustment_id)
    if key in state.recent_adjustments:
        return Decision(state)
    new_on_hand = state.on_hand + command.delta
    reason = None
    if product is None:
        reason = "unknown_sku: the SKU is not in the catalog; create the product first"
    elif new_on_hand < 0:
        reason = f"insufficient_stock: on_hand is {state.on_hand}, a delta of {command.delta} would make it negative"
    elif new_on_hand < state.reserved:
        reason = f"insufficient_stock: {state.reserved} units are held by orders; on_hand cannot go below that"
    outcomes = dict(list(state.recent_adjustments.items())[-(REMEMBERED_ADJUSTMENTS - 1):])
    outcomes[key] = AdjustmentOutcome(applied=reason is None, reason=reason)
    if reason is not None:
        rejected = StockAdjustmentRejected(
            adjustment_id=command.adjustment_id, sku=command.sku, delta=command.delta, reason=reason
        )
        return Decision(state.model_copy(update={"recent_adjustments": outcomes}), [rejected])
    new_state = state.model_copy(update={"on_hand": new_on_hand, "recent_adjustments": outcomes})
    adjusted = StockAdjusted(
        adjustment_id=command.adjustment_id,
        sku=command.sku,
        delta=command.delta,
        reason=command.reason,
        on_hand=new_state.on_hand,
        reserved=new_state.reserved,
    )
    return Decision(new_state, [adjusted])


def reserve(state: StockLevel, command: ReserveStock, product: Product | None) -> Decision[StockLevel]:
    order = str(command.order_id)
    if order in state.holds:
        return Decision(state)
    if product is None:
        return _refuse(state, command, "unknown_sku: the SKU is not in the catalog")
    if command.quantity < 1:
        return _refuse(state, command, "invalid_quantity: a quantity must be at least 1")
    if state.available < command.quantity:
        return _refuse(
            state, command, f"insufficient_stock: {state.available} available, {command.quantity} requested"
        )
    new_state = state.model_copy(update={"holds": {**state.holds, order: command.quantity}})
    reserved = StockReserved(
        order_id=command.order_id, sku=command.sku, quantity=command.quantity, unit_price=product.price
    )
    return Decision(new_state, [reserved])


def _refuse(state: StockLevel, command: ReserveStock, reason: str) -> Decision[StockLevel]:
    rejected = StockReservationRejected(
        order_id=command.order_id, sku=command.sku, quantity=command.quantity, reason=reason
    )
    return Decision(state, [rejected])


def release(state: StockLevel, command: ReleaseStock) -> Decision[StockLevel]:
    order = str(command.order_id)
    if order not in state.holds:
        return Decision(state)
    holds = dict(state.holds)
    quantity = holds.pop(order)
    released = StockReleased(order_id=command.order_id, sku=command.sku, quantity=quantity, reason=command.reason)
    return Decision(state.model_copy(update={"holds": holds}), [released])


def commit(state: StockLevel, command: CommitStock) -> Decision[StockLevel]:
    """A paid order's hold becomes a sale in one step, so no other order can take its units meanwhile."""
    order = str(command.order_id)
    if order not in state.holds:
        return Decision(state)
    holds = dict(state.holds)
    quantity = holds.pop(order)
    new_state = state.model_copy(update={"holds": holds, "on_hand": state.on_hand - quantity})
    committed = StockCommitted(
        order_id=command.order_id, sku=command.sku, quantity=quantity, on_hand=new_state.on_hand,
        reserved=new_state.reserved,
    )
    return Decision(new_state, [committed])


def decide(
    state: StockLevel | None, event: Envelope, now: datetime, *, product: Product | None
) -> Decision[StockLevel]:
    payload = event.payload
    if isinstance(payload, AdjustStock):
        return adjust(state or _empty(event, payload.sku), payload, product)
    if isinstance(payload, ReserveStock):
        return reserve(state or _empty(event, payload.sku), payload, product)
    if isinstance(payload, ReleaseStock):
        # Nothing is held for a SKU without stock: no state to create.
        return Decision(state) if state is None else release(state, payload)  # type: ignore[return-value]
    if isinstance(payload, CommitStock):
        return Decision(state) if state is None else commit(state, payload)  # type: ignore[return-value]
    raise UnhandledEvent(f"inventory does not handle {event.type}")
