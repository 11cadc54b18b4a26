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
    AvailabilityChanged,
    CampaignStockHeld,
    CampaignStockRefused,
    CommitStock,
    Envelope,
    HoldForCampaign,
    Money,
    Product,
    ReleaseCampaignHold,
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

# Adjustment outcomes remembered per SKU, newest last: an AdjustStock (an Idempotency-Key replay
# included) whose id is among them changes nothing; one older than the last 100 is a new adjustment.
REMEMBERED_ADJUSTMENTS = 100
REMEMBERED_CAMPAIGNS = 100


def campaign_hold(campaign_id: str) -> str:
    """The key of a campaign's hold among the order holds (order ids are UUIDs, never this)."""
    return f"campaign:{campaign_id}"


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
    if reason is not None:
        outcomes[key] = AdjustmentOutcome(applied=False, reason=reason, request_hash=command.request_hash)
        rejected = StockAdjustmentRejected(
            adjustment_id=command.adjustment_id, sku=command.sku, delta=command.delta, reason=reason
        )
        return Decision(state.model_copy(update={"recent_adjustments": outcomes}), [rejected])
    # The stock right after it is part of the outcome: the answer to the first request and to its replays.
    outcomes[key] = AdjustmentOutcome(applied=True, request_hash=command.request_hash, on_hand=new_on_hand,
                                      reserved=state.reserved)
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
    if command.campaign is not None:
        return _draw_from_campaign(state, command, command.campaign, command.unit_price or product.price)
    if state.available < command.quantity:
        return _refuse(
            state, command, f"insufficient_stock: {state.available} available, {command.quantity} requested"
        )
    new_state = state.model_copy(update={"holds": {**state.holds, order: command.quantity}})
    reserved = StockReserved(
        order_id=command.order_id, sku=command.sku, quantity=command.quantity, unit_price=product.price
    )
    return Decision(new_state, [reserved])


def _draw_from_campaign(state: StockLevel, command: ReserveStock, campaign_id: str, price: Money) -> Decision[StockLevel]:
    """Move a pledge order's units from its campaign's hold to the order's own hold."""
    key = campaign_hold(campaign_id)
    left = state.holds.get(key, 0)
    if left < command.quantity:
        return _refuse(state, command, f"campaign_hold_short: campaign {campaign_id} holds {left} units")
    holds = {**state.holds, str(command.order_id): command.quantity}
    if left == command.quantity:
        del holds[key]
    else:
        holds[key] = left - command.quantity
    draws = dict(state.campaign_draws)
    if campaign_id in draws:
        draws[campaign_id] += command.quantity
    new_state = state.model_copy(update={"holds": holds, "campaign_draws": draws})
    reserved = StockReserved(order_id=command.order_id, sku=command.sku, quantity=command.quantity, unit_price=price)
    return Decision(new_state, [reserved])


def hold_for_campaign(state: StockLevel, command: HoldForCampaign, product: Product | None) -> Decision[StockLevel]:
    key = campaign_hold(command.campaign_id)
    # A campaign is held once: a replay after its release (no hold, no draws left) must not hold it again.
    if key in state.holds or command.campaign_id in state.campaign_draws or command.campaign_id in state.campaigns:
        return Decision(state)
    reason = None
    if product is None:
        reason = "unknown_sku: the SKU is not in the catalog"
    elif command.quantity < 1:
        reason = "invalid_quantity: a campaign must hold at least 1 unit"
    elif state.available < command.quantity:
        reason = f"insufficient_stock: {state.available} available, {command.quantity} needed for max_quantity"
    if reason is not None:
        return Decision(state, [CampaignStockRefused(campaign_id=command.campaign_id, sku=command.sku, reason=reason)])
    campaigns = (*[c for c in state.campaigns if c != command.campaign_id][-(REMEMBERED_CAMPAIGNS - 1):],
                 command.campaign_id)
    new_state = state.model_copy(update={
        "holds": {**state.holds, key: command.quantity},
        "campaign_draws": {**state.campaign_draws, command.campaign_id: 0},
        "campaigns": campaigns,
    })
    held = CampaignStockHeld(campaign_id=command.campaign_id, sku=command.sku, quantity=command.quantity)
    return Decision(new_state, [held])


def release_campaign_hold(state: StockLevel, command: ReleaseCampaignHold) -> Decision[StockLevel]:
    """Keep what the campaign's pledge orders have not drawn yet; applied once (a replay finds no draws)."""
    if command.campaign_id not in state.campaign_draws:
        return Decision(state)
    draws = dict(state.campaign_draws)
    still_to_draw = command.keep - draws.pop(command.campaign_id)
    holds = dict(state.holds)
    key = campaign_hold(command.campaign_id)
    if still_to_draw > 0:
        holds[key] = still_to_draw
    else:
        holds.pop(key, None)
    return Decision(state.model_copy(update={"holds": holds, "campaign_draws": draws}))


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
    if isinstance(payload, HoldForCampaign):
        return hold_for_campaign(state or _empty(event, payload.sku), payload, product)
    if isinstance(payload, ReleaseCampaignHold):
        return Decision(state) if state is None else release_campaign_hold(state, payload)  # type: ignore[return-value]
    raise UnhandledEvent(f"inventory does not handle {event.type}")


def decide_and_announce(
    state: StockLevel | None, event: Envelope, now: datetime, *, product: Product | None
) -> Decision[StockLevel]:
    """`decide`, plus one `AvailabilityChanged` when the SKU goes in or out of stock: its available
    units go from 0 or less to more than 0, or from more than 0 to 0 (the gateway's catalog view only
    filters on `in_stock`; it follows them on the compacted `inventory.availability`). It carries the
    available units at that moment. A SKU without state has 0 available: not in stock.

    Announcing the flips only keeps the reservation path to one output per reservation, but for the
    reservations that take a SKU's last units."""
    decision = decide(state, event, now, product=product)
    if decision.state is None:
        return decision
    before = state.available if state is not None else 0
    after = decision.state.available
    if (after > 0) == (before > 0):
        return decision
    changed = AvailabilityChanged(sku=decision.state.sku, available=after, in_stock=after > 0)
    return Decision(decision.state, [*decision.events, changed], decision.tenant)
