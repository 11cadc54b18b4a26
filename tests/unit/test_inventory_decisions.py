"""Inventory decisions (streams/tables/inventory.py): reserve, release, commit and adjust one SKU's stock, and
hold it for group-buying campaigns."""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

import pytest

from streams.models import (
    AdjustmentOutcome,
    AdjustStock,
    CampaignStockHeld,
    CampaignStockRefused,
    CancelOrder,
    CommitStock,
    HoldForCampaign,
    Money,
    OrderLine,
    PlaceOrder,
    ProductUpserted,
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
from streams.tables import inventory
from streams.tables.decision import UnhandledEvent

TENANT = "acme"
SKU = "SKU-1"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ORDER = uuid.UUID(int=1)
OTHER_ORDER = uuid.UUID(int=2)
ADJUSTMENT = uuid.UUID(int=100)
CAMPAIGN = "spring-mugs"
CAMPAIGN_HOLD = inventory.campaign_hold(CAMPAIGN)  # the campaign's key among the holds
GROUP_PRICE = Money(amount=399, currency="EUR")  # below the catalog's 499


def level(on_hand: int = 0, holds: Mapping[uuid.UUID | str, int] | None = None) -> StockLevel:
    return StockLevel(
        tenant=TENANT, sku=SKU, on_hand=on_hand, holds={str(order): qty for order, qty in (holds or {}).items()}
    )


def reserve_cmd(quantity: int, order: uuid.UUID = ORDER) -> ReserveStock:
    return ReserveStock(order_id=order, sku=SKU, quantity=quantity)


def release_cmd(order: uuid.UUID = ORDER) -> ReleaseStock:
    return ReleaseStock(order_id=order, sku=SKU, reason="order cancelled")


def commit_cmd(order: uuid.UUID = ORDER) -> CommitStock:
    return CommitStock(order_id=order, sku=SKU)


def adjust_cmd(delta: int, adjustment: uuid.UUID = ADJUSTMENT) -> AdjustStock:
    return AdjustStock(adjustment_id=adjustment, sku=SKU, delta=delta, reason="cycle count")


def hold_cmd(quantity: int, campaign: str = CAMPAIGN) -> HoldForCampaign:
    return HoldForCampaign(campaign_id=campaign, sku=SKU, quantity=quantity)


def release_hold_cmd(keep: int, campaign: str = CAMPAIGN) -> ReleaseCampaignHold:
    return ReleaseCampaignHold(campaign_id=campaign, sku=SKU, keep=keep)


def draw_cmd(quantity: int, order: uuid.UUID = ORDER, unit_price: Money | None = GROUP_PRICE) -> ReserveStock:
    """The reservation of a campaign's pledge order: its units come from the campaign's hold."""
    return ReserveStock(order_id=order, sku=SKU, quantity=quantity, campaign=CAMPAIGN, unit_price=unit_price)


@pytest.fixture
def product(make_product):
    return make_product(SKU, tenant=TENANT, amount=499, currency="EUR")


@pytest.fixture
def decide(make_envelope, product):
    """inventory.decide for one command; `known=False` means the SKU is missing from the catalog."""

    def run(state: StockLevel | None, command, *, known: bool = True):
        return inventory.decide(state, make_envelope(command, tenant=TENANT), NOW, product=product if known else None)

    return run


# --- reserve ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("on_hand", "held_by_others", "quantity"),
    [
        (5, 0, 5),  # exactly what is available
        (5, 0, 1),
        (5, 2, 3),  # other orders' holds leave exactly enough
        (100, 40, 60),
    ],
)
def test_reserve_succeeds_when_available_covers_quantity(decide, product, on_hand, held_by_others, quantity):
    # Given stock of which `held_by_others` units are already held by another order
    state = level(on_hand, {OTHER_ORDER: held_by_others} if held_by_others else {})

    # When an order asks for `quantity` units
    decision = decide(state, reserve_cmd(quantity))

    # Then the units are held for the order, at the catalog price
    assert decision.state.holds == {**state.holds, str(ORDER): quantity}
    assert decision.state.on_hand == on_hand
    assert decision.state.available == on_hand - held_by_others - quantity
    assert decision.events == [StockReserved(order_id=ORDER, sku=SKU, quantity=quantity, unit_price=product.price)]


@pytest.mark.parametrize(
    ("on_hand", "held_by_others", "quantity"),
    [
        (5, 0, 6),  # one more than on hand
        (5, 2, 4),  # enough on hand, but not once other holds are counted
        (0, 0, 1),
        (10, 10, 1),  # everything held already
    ],
)
def test_reserve_refused_when_available_is_short(decide, on_hand, held_by_others, quantity):
    # Given stock with fewer available units than requested
    state = level(on_hand, {OTHER_ORDER: held_by_others} if held_by_others else {})

    # When an order asks for `quantity` units
    decision = decide(state, reserve_cmd(quantity))

    # Then nothing is held and the refusal says how many were available
    assert decision.state == state
    [refusal] = decision.events
    assert isinstance(refusal, StockReservationRejected)
    assert (refusal.order_id, refusal.sku, refusal.quantity) == (ORDER, SKU, quantity)
    assert refusal.reason.startswith(f"insufficient_stock: {on_hand - held_by_others} available")


@pytest.mark.parametrize(
    ("known", "quantity", "reason_prefix"),
    [
        (False, 1, "unknown_sku"),
        (False, 0, "unknown_sku"),  # an unknown SKU is reported before a bad quantity
        (True, 0, "invalid_quantity"),
        (True, -3, "invalid_quantity"),
    ],
)
def test_reserve_refused_for_unknown_sku_or_bad_quantity(decide, known, quantity, reason_prefix):
    # Given plenty of stock
    state = level(on_hand=50)

    # When a reservation names a SKU missing from the catalog, or a quantity below 1
    decision = decide(state, reserve_cmd(quantity), known=known)

    # Then it is refused with the matching reason and the stock is untouched
    assert decision.state == state
    [refusal] = decision.events
    assert isinstance(refusal, StockReservationRejected)
    assert refusal.quantity == quantity
    assert refusal.reason.startswith(reason_prefix)


@pytest.mark.parametrize(
    "second_quantity",
    [
        2,  # an exact replay
        1,  # a different quantity does not resize the hold
        50,  # more than is available would otherwise be refused
    ],
)
def test_second_reserve_for_same_order_is_a_no_op(decide, second_quantity):
    # Given an order already holding 2 units
    held = decide(level(on_hand=5), reserve_cmd(2)).state

    # When a reservation for the same order arrives again
    decision = decide(held, reserve_cmd(second_quantity))

    # Then the first hold stands and nothing is emitted
    assert decision.state == held
    assert decision.events == []


# --- release ---------------------------------------------------------------------------------


def test_release_gives_the_held_units_back():
    # Given two orders holding 3 and 2 of 10 units
    state = level(on_hand=10, holds={ORDER: 3, OTHER_ORDER: 2})

    # When the first order's hold is released
    decision = inventory.release(state, release_cmd(ORDER))

    # Then its 3 units are available again and the other hold is kept
    assert decision.state.holds == {str(OTHER_ORDER): 2}
    assert decision.state.available == 8
    assert decision.events == [StockReleased(order_id=ORDER, sku=SKU, quantity=3, reason="order cancelled")]


@pytest.mark.parametrize(
    "state",
    [
        None,  # a SKU never seen
        level(on_hand=10),
        level(on_hand=10, holds={OTHER_ORDER: 4}),
    ],
    ids=["no-state", "no-holds", "other-order-holds"],
)
@pytest.mark.parametrize("command", [release_cmd(ORDER), commit_cmd(ORDER)], ids=["release", "commit"])
def test_release_or_commit_for_an_order_without_a_hold_is_a_no_op(decide, state, command):
    # Given stock where ORDER holds nothing
    # When ORDER's hold is released, or committed
    decision = decide(state, command)

    # Then nothing changes, nothing is given back or sold, and nothing is emitted
    assert decision.events == []
    assert decision.state == state  # a SKU never seen gets no empty row


def test_released_twice_only_the_first_release_counts(decide):
    # Given an order whose hold was released
    released = decide(level(on_hand=10, holds={ORDER: 3}), release_cmd(ORDER)).state

    # When the release is replayed
    decision = decide(released, release_cmd(ORDER))

    # Then no units are given back a second time
    assert decision.state == released
    assert decision.events == []


# --- commit ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("on_hand", "holds", "expected_on_hand", "expected_holds"),
    [
        (5, {ORDER: 2}, 3, {}),
        (3, {ORDER: 3}, 0, {}),  # the whole stock sold
        (10, {ORDER: 3, OTHER_ORDER: 4}, 7, {OTHER_ORDER: 4}),  # the other order keeps its hold
        (10, {OTHER_ORDER: 4, ORDER: 6}, 4, {OTHER_ORDER: 4}),  # ... whichever hold came first
    ],
)
def test_commit_turns_the_orders_hold_into_a_sale(decide, on_hand, holds, expected_on_hand, expected_holds):
    # Given stock with a hold for the paid order, and maybe another order's
    state = level(on_hand, holds)
    available = state.available

    # When the paid order's hold is committed
    decision = decide(state, commit_cmd(ORDER))

    # Then its units leave on_hand and its hold goes, other holds are untouched, what is available stays the
    # same, and the sale is told with the new figures
    assert decision.state == level(expected_on_hand, expected_holds)
    assert decision.state.available == available
    assert decision.events == [
        StockCommitted(
            order_id=ORDER, sku=SKU, quantity=holds[ORDER], on_hand=expected_on_hand,
            reserved=sum(expected_holds.values()),
        )
    ]


@pytest.mark.parametrize("second", [commit_cmd(ORDER), release_cmd(ORDER)], ids=["commit", "release"])
def test_after_a_commit_the_order_has_nothing_left_to_commit_or_release(decide, second):
    # Given an order whose 3 held units were committed
    committed = decide(level(on_hand=10, holds={ORDER: 3, OTHER_ORDER: 2}), commit_cmd(ORDER)).state

    # When the commit is replayed, or a late release arrives
    decision = decide(committed, second)

    # Then the units are neither sold twice nor given back
    assert decision.state == committed
    assert decision.events == []


# --- adjust ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("on_hand", "held", "delta", "expected_on_hand"),
    [
        (0, 0, 5, 5),  # delivery into an empty SKU
        (10, 0, -10, 0),  # write off everything
        (10, 4, -6, 4),  # write off down to exactly what is held
        (3, 0, 0, 3),
    ],
)
def test_adjust_is_applied_when_stock_stays_consistent(decide, on_hand, held, delta, expected_on_hand):
    # Given stock with `held` units held by an order
    state = level(on_hand, {ORDER: held} if held else {})

    # When an adjustment of `delta` arrives
    decision = decide(state, adjust_cmd(delta))

    # Then on_hand moves, the holds stay, and the outcome is remembered as applied
    assert decision.state.on_hand == expected_on_hand
    assert decision.state.holds == state.holds
    assert decision.state.recent_adjustments == {
        str(ADJUSTMENT): AdjustmentOutcome(applied=True, on_hand=expected_on_hand, reserved=held)
    }
    assert decision.events == [
        StockAdjusted(
            adjustment_id=ADJUSTMENT, sku=SKU, delta=delta, reason="cycle count", on_hand=expected_on_hand, reserved=held
        )
    ]


@pytest.mark.parametrize(
    ("known", "on_hand", "held", "delta", "reason_prefix"),
    [
        (False, 10, 0, 5, "unknown_sku"),
        (True, 3, 0, -4, "insufficient_stock: on_hand is 3"),
        (True, 0, 0, -1, "insufficient_stock: on_hand is 0"),
        (True, 10, 4, -7, "insufficient_stock: 4 units are held"),
    ],
    ids=["unknown-sku", "negative-on-hand", "negative-from-zero", "below-reserved"],
)
def test_adjust_is_refused_and_remembered(decide, known, on_hand, held, delta, reason_prefix):
    # Given stock with `held` units held by an order
    state = level(on_hand, {ORDER: held} if held else {})

    # When an adjustment that would break the stock (or names an unknown SKU) arrives
    decision = decide(state, adjust_cmd(delta), known=known)

    # Then stock is unchanged, the refusal is emitted and remembered under the adjustment id
    assert (decision.state.on_hand, decision.state.holds) == (on_hand, state.holds)
    [refusal] = decision.events
    assert isinstance(refusal, StockAdjustmentRejected)
    assert (refusal.adjustment_id, refusal.delta) == (ADJUSTMENT, delta)
    assert refusal.reason.startswith(reason_prefix)
    assert decision.state.recent_adjustments == {
        str(ADJUSTMENT): AdjustmentOutcome(applied=False, reason=refusal.reason)
    }


@pytest.mark.parametrize(
    ("first_delta", "replayed_delta"),
    [
        (5, 5),  # an applied adjustment replayed
        (5, 7),  # the same id with another delta is still the same adjustment
        (-99, -99),  # a refused adjustment replayed stays refused, silently
    ],
)
def test_repeated_adjustment_id_is_a_no_op(decide, first_delta, replayed_delta):
    # Given an adjustment already decided
    after_first = decide(level(on_hand=10), adjust_cmd(first_delta)).state

    # When an adjustment with the same id arrives again
    decision = decide(after_first, adjust_cmd(replayed_delta))

    # Then nothing changes and nothing is emitted
    assert decision.state == after_first
    assert decision.events == []


@pytest.mark.parametrize(
    "count",
    [
        inventory.REMEMBERED_ADJUSTMENTS - 1,
        inventory.REMEMBERED_ADJUSTMENTS,
        inventory.REMEMBERED_ADJUSTMENTS + 1,
        2 * inventory.REMEMBERED_ADJUSTMENTS + 7,
    ],
)
def test_recent_adjustments_keep_only_the_latest(decide, count):
    # Given `count` distinct adjustments, some applied and some refused
    ids = [uuid.UUID(int=1000 + n) for n in range(count)]
    state = level(on_hand=0)

    # When they are applied one after another
    for n, adjustment in enumerate(ids):
        state = decide(state, adjust_cmd(1 if n % 3 else -1_000, adjustment)).state

    # Then only the latest REMEMBERED_ADJUSTMENTS are remembered, oldest first
    assert list(state.recent_adjustments) == [str(i) for i in ids[-inventory.REMEMBERED_ADJUSTMENTS:]]


def keyed_adjust_cmd(delta: int, request_hash: str, adjustment: uuid.UUID = ADJUSTMENT) -> AdjustStock:
    """An adjustment a client named with an Idempotency-Key: its request's hash travels with it."""
    return AdjustStock(adjustment_id=adjustment, sku=SKU, delta=delta, reason="restock", request_hash=request_hash)


@pytest.mark.parametrize(
    ("on_hand", "held", "delta", "expected"),
    [
        (10, 4, 5, AdjustmentOutcome(applied=True, request_hash="h-1", on_hand=15, reserved=4)),
        (10, 4, -6, AdjustmentOutcome(applied=True, request_hash="h-1", on_hand=4, reserved=4)),
        (10, 4, -7, AdjustmentOutcome(applied=False, request_hash="h-1",
                                      reason="insufficient_stock: 4 units are held by orders; on_hand cannot go below that")),
    ],
    ids=["restock", "write-off-to-the-holds", "refused"],
)
def test_a_keyed_adjustment_remembers_its_request_and_the_stock_right_after_it(decide, on_hand, held, delta, expected):
    # Given 10 units on hand, 4 of them held by an order
    state = level(on_hand, {ORDER: held})

    # When an adjustment named by a client's key arrives
    decision = decide(state, keyed_adjust_cmd(delta, "h-1"))

    # Then its outcome carries the request's hash and, when applied, the stock the first answer shows
    assert decision.state.recent_adjustments == {str(ADJUSTMENT): expected}


@pytest.mark.parametrize("first_delta", [5, -99], ids=["applied", "refused"])
def test_a_replay_with_another_body_changes_nothing_and_the_first_request_stays_remembered(decide, first_delta):
    # Given a keyed adjustment decided on 10 units on hand
    after_first = decide(level(on_hand=10), keyed_adjust_cmd(first_delta, "first-body")).state

    # When the same key comes with another body (the same adjustment id, another hash), as a
    # concurrent request or a later one
    decision = decide(after_first, keyed_adjust_cmd(3, "other-body"))

    # Then nothing changes: the outcome keeps the first request's hash, which the gateway compares
    assert decision.state == after_first
    assert decision.events == []
    assert decision.state.recent_adjustments[str(ADJUSTMENT)].request_hash == "first-body"


def test_the_first_answer_of_an_adjustment_does_not_follow_later_stock_changes(decide):
    # Given a restock of 5 onto 10 units on hand, 4 held
    state = decide(level(10, {ORDER: 4}), keyed_adjust_cmd(5, "h-1")).state

    # When other orders hold units and another adjustment follows
    state = decide(state, reserve_cmd(3, OTHER_ORDER)).state
    state = decide(state, adjust_cmd(-2, uuid.UUID(int=101))).state

    # Then the restock's outcome still shows the stock right after it: 15 on hand, 4 reserved
    assert (state.on_hand, state.reserved) == (13, 7)
    assert state.recent_adjustments[str(ADJUSTMENT)] == AdjustmentOutcome(
        applied=True, request_hash="h-1", on_hand=15, reserved=4)


@pytest.mark.parametrize(
    ("later", "applied_again"),
    [
        (inventory.REMEMBERED_ADJUSTMENTS - 1, False),  # still among the latest 100
        (inventory.REMEMBERED_ADJUSTMENTS, True),  # pushed out by 100 later adjustments
    ],
)
def test_a_key_is_remembered_for_the_latest_adjustments_of_its_sku_only(decide, later, applied_again):
    # Given a keyed restock of 1, then `later` other adjustments of 1 unit each
    state = decide(level(on_hand=0), keyed_adjust_cmd(1, "h-1")).state
    for n in range(later):
        state = decide(state, adjust_cmd(1, uuid.UUID(int=5000 + n))).state

    # When the restock is replayed
    decision = decide(state, keyed_adjust_cmd(1, "h-1"))

    # Then it is a no-op while remembered, and a new adjustment once forgotten (the documented bound)
    assert decision.state.on_hand == 1 + later + (1 if applied_again else 0)
    assert len(decision.events) == (1 if applied_again else 0)


# --- campaign holds --------------------------------------------------------------------------


def run_all(decide, state: StockLevel, commands) -> StockLevel:
    for command in commands:
        state = decide(state, command).state
    return state


@pytest.mark.parametrize(
    ("on_hand", "held_by_others", "quantity"),
    [
        (10, 0, 10),  # exactly what is available
        (10, 3, 7),  # other orders' holds leave exactly enough
        (10, 0, 1),
        (100, 40, 25),
    ],
)
def test_a_campaign_hold_is_granted_when_available_covers_it(decide, on_hand, held_by_others, quantity):
    # Given stock of which `held_by_others` units are held by an order
    state = level(on_hand, {OTHER_ORDER: held_by_others} if held_by_others else {})

    # When a campaign asks for its max_quantity to be held
    decision = decide(state, hold_cmd(quantity))

    # Then the units are held under the campaign's key, nothing is drawn yet, the SKU lists the campaign,
    # and the campaign is told
    assert decision.state == state.model_copy(update={
        "holds": {**state.holds, CAMPAIGN_HOLD: quantity}, "campaign_draws": {CAMPAIGN: 0}, "campaigns": (CAMPAIGN,),
    })
    assert decision.state.available == on_hand - held_by_others - quantity
    assert decision.events == [CampaignStockHeld(campaign_id=CAMPAIGN, sku=SKU, quantity=quantity)]


@pytest.mark.parametrize(
    ("known", "on_hand", "held_by_others", "quantity", "reason_prefix"),
    [
        (False, 50, 0, 5, "unknown_sku"),
        (True, 10, 3, 8, "insufficient_stock: 7 available, 8 needed"),
        (True, 0, 0, 1, "insufficient_stock: 0 available"),
        (True, 10, 10, 1, "insufficient_stock: 0 available"),
        (True, 50, 0, 0, "invalid_quantity"),
        (True, 50, 0, -2, "invalid_quantity"),
    ],
    ids=["unknown-sku", "short", "empty", "all-held", "zero", "negative"],
)
def test_a_campaign_hold_is_refused_with_a_reason(decide, known, on_hand, held_by_others, quantity, reason_prefix):
    # Given stock of which `held_by_others` units are held by an order
    state = level(on_hand, {OTHER_ORDER: held_by_others} if held_by_others else {})

    # When a campaign asks for more than is available, a quantity below 1, or names an unknown SKU
    decision = decide(state, hold_cmd(quantity), known=known)

    # Then nothing is held or listed, and the campaign is told why
    assert decision.state == state
    [refusal] = decision.events
    assert isinstance(refusal, CampaignStockRefused)
    assert (refusal.campaign_id, refusal.sku) == (CAMPAIGN, SKU)
    assert refusal.reason.startswith(reason_prefix)


@pytest.mark.parametrize("replayed_quantity", [6, 1, 500], ids=["same", "smaller", "more-than-on-hand"])
@pytest.mark.parametrize(
    "since",
    [
        [],
        [draw_cmd(2)],
        [draw_cmd(6)],  # the whole hold drawn: no campaign key left among the holds
        [release_hold_cmd(0)],  # the campaign failed: its units are back
        [draw_cmd(2), release_hold_cmd(2)],  # it succeeded
        [release_hold_cmd(4), draw_cmd(4)],
    ],
    ids=["held", "partly-drawn", "fully-drawn", "released", "drawn-then-released", "released-then-drawn"],
)
def test_a_replayed_campaign_hold_is_a_no_op(decide, since, replayed_quantity):
    # Given a campaign that held 6 of 20 units, and what happened to its hold since
    state = run_all(decide, level(on_hand=20), [hold_cmd(6), *since])

    # When its HoldForCampaign is delivered again (reprocessing after a stall or a crash)
    decision = decide(state, hold_cmd(replayed_quantity))

    # Then no unit is held again and nothing is told: the campaign already has its answer
    assert decision.state == state
    assert decision.events == []


@pytest.mark.parametrize(
    "count",
    [1, inventory.REMEMBERED_CAMPAIGNS, inventory.REMEMBERED_CAMPAIGNS + 1, 2 * inventory.REMEMBERED_CAMPAIGNS + 7],
)
def test_campaigns_of_a_sku_are_listed_once_newest_last_and_bounded(decide, count):
    # Given `count` campaigns holding this SKU one after another, some closed at once, each followed by a
    # replay of a recent campaign's hold and by a campaign that is refused
    ids = [f"camp-{n}" for n in range(count)]
    state = level(on_hand=10_000)
    for n, campaign_id in enumerate(ids):
        state = decide(state, hold_cmd(2, campaign_id)).state
        if n % 3 == 0:
            state = decide(state, release_hold_cmd(0, campaign_id)).state
        state = decide(state, hold_cmd(2, ids[max(0, n - 5)])).state
        state = decide(state, hold_cmd(10_001, f"refused-{n}")).state

    # Then the SKU lists the latest REMEMBERED_CAMPAIGNS that held it, each once, oldest first
    assert state.campaigns == tuple(ids[-inventory.REMEMBERED_CAMPAIGNS:])
    # ... and holds 2 units for each campaign still open
    assert state.reserved == 2 * sum(1 for n in range(count) if n % 3)


@pytest.mark.parametrize(
    ("campaign_units", "quantity", "left"),
    [
        (6, 2, 4),
        (6, 6, None),  # the whole hold: the campaign's key goes
        (1, 1, None),
    ],
)
def test_a_pledge_order_draws_its_units_from_the_campaigns_hold_at_the_group_price(
    decide, campaign_units, quantity, left
):
    # Given a campaign holding `campaign_units` and another order holding the rest: nothing else is available
    state = decide(level(campaign_units + 4, {OTHER_ORDER: 4}), hold_cmd(campaign_units)).state
    assert state.available == 0

    # When a pledge order of the campaign reserves its units, at the group price
    decision = decide(state, draw_cmd(quantity))

    # Then its units move from the campaign's hold to the order's own hold (what is available stays the same),
    # the draw is counted for the release to come, and the order is told the group price
    assert decision.state == state.model_copy(update={
        "holds": {str(OTHER_ORDER): 4, str(ORDER): quantity, **({CAMPAIGN_HOLD: left} if left else {})},
        "campaign_draws": {CAMPAIGN: quantity},
    })
    assert decision.state.available == 0
    assert decision.events == [StockReserved(order_id=ORDER, sku=SKU, quantity=quantity, unit_price=GROUP_PRICE)]


def test_a_pledge_order_without_a_unit_price_pays_the_catalog_price(decide, product):
    # Given a campaign holding 6 units
    state = decide(level(on_hand=10), hold_cmd(6)).state

    # When a campaign order without a unit price reserves
    decision = decide(state, draw_cmd(2, unit_price=None))

    # Then it still draws on the campaign's hold, at the catalog price
    assert decision.state.holds == {CAMPAIGN_HOLD: 4, str(ORDER): 2}
    assert decision.events == [StockReserved(order_id=ORDER, sku=SKU, quantity=2, unit_price=product.price)]


@pytest.mark.parametrize(
    ("before", "quantity", "campaign_units"),
    [
        ([hold_cmd(2)], 3, 2),
        ([hold_cmd(6), draw_cmd(6, OTHER_ORDER)], 1, 0),  # all drawn by another pledge order
        ([], 1, 0),  # no such campaign here
        ([hold_cmd(6), release_hold_cmd(0)], 1, 0),  # the campaign failed and gave its units back
        ([hold_cmd(6), release_hold_cmd(2)], 3, 2),  # more than was kept for the pledges
    ],
    ids=["short", "all-drawn", "no-campaign", "released", "beyond-keep"],
)
def test_a_draw_the_campaigns_hold_cannot_cover_is_refused(decide, before, quantity, campaign_units):
    # Given plenty of stock, and a campaign hold smaller than the pledge order
    state = run_all(decide, level(on_hand=50), before)

    # When the pledge order reserves
    decision = decide(state, draw_cmd(quantity))

    # Then it is refused, not served from the SKU's other units, and the reason says what the campaign holds
    assert decision.state == state
    assert decision.events == [
        StockReservationRejected(order_id=ORDER, sku=SKU, quantity=quantity,
                                 reason=f"campaign_hold_short: campaign {CAMPAIGN} holds {campaign_units} units")
    ]


PLEDGE_ORDERS = [(uuid.UUID(int=11), 2), (uuid.UUID(int=12), 3), (uuid.UUID(int=13), 1)]  # 6 units pledged
RELEASE_AND_DRAWS = [release_hold_cmd(6), *(draw_cmd(quantity, order) for order, quantity in PLEDGE_ORDERS)]


@pytest.mark.parametrize(
    "arrival",
    list(itertools.permutations(range(len(RELEASE_AND_DRAWS)))),
    ids=lambda arrival: "-".join("release" if i == 0 else f"draw{i}" for i in arrival),
)
def test_a_release_gives_the_same_stock_whenever_it_arrives_among_the_draws(decide, arrival):
    # Given a campaign holding 10 of 15 units (another order holds 2), which succeeded with 2 + 3 + 1 units pledged
    start = decide(level(on_hand=15, holds={OTHER_ORDER: 2}), hold_cmd(10)).state

    # When its release (keep 6) and its three pledge orders' draws reach the SKU in any order
    state = start
    for i in arrival:
        decision = decide(state, RELEASE_AND_DRAWS[i])
        state = decision.state
        # (every draw is served, and the release is silent)
        assert [type(event) for event in decision.events] == ([StockReserved] if i else [])

    # Then the stock ends the same: only the orders' holds, no campaign hold or draw count left, the 4 unpledged
    # units available again
    assert state == start.model_copy(update={
        "holds": {str(OTHER_ORDER): 2, **{str(order): quantity for order, quantity in PLEDGE_ORDERS}},
        "campaign_draws": {},
    })
    assert state.available == 15 - 2 - 6
    # ... and no further pledge order can draw on the campaign
    assert decide(state, draw_cmd(1, uuid.UUID(int=14))).events[0].reason.startswith("campaign_hold_short")


@pytest.mark.parametrize("others", [{}, {OTHER_ORDER: 3}], ids=["alone", "other-order"])
def test_a_release_keeping_nothing_gives_the_whole_hold_back(decide, others):
    # Given a campaign holding 8 of 12 units
    start = level(on_hand=12, holds=others)
    held = decide(start, hold_cmd(8)).state

    # When the campaign fails (keep 0)
    decision = decide(held, release_hold_cmd(0))

    # Then every unit of its hold is available again, still listed as a campaign of the SKU
    assert decision.state == held.model_copy(update={"holds": start.holds, "campaign_draws": {}})
    assert decision.state.available == start.available
    assert decision.events == []


@pytest.mark.parametrize(
    ("keep", "draws_before", "draws_after"),
    [
        (0, [], []),
        (6, [], []),
        (6, [draw_cmd(2)], []),
        (6, [], [draw_cmd(2)]),  # a replay after a draw must not restore the drawn units
        (6, [draw_cmd(2)], [draw_cmd(4, OTHER_ORDER)]),
    ],
)
def test_a_replayed_release_is_a_no_op(decide, keep, draws_before, draws_after):
    # Given a campaign holding 10 of 20 units, released (keeping `keep`) among its orders' draws
    state = run_all(decide, level(on_hand=20), [hold_cmd(10), *draws_before, release_hold_cmd(keep), *draws_after])

    # When the release is delivered again
    decision = decide(state, release_hold_cmd(keep))

    # Then nothing is given back or kept a second time
    assert decision.state == state
    assert decision.events == []


@pytest.mark.parametrize(
    "state",
    [None, level(on_hand=10), level(on_hand=10, holds={inventory.campaign_hold("other"): 4, OTHER_ORDER: 2})],
    ids=["no-state", "no-holds", "other-holds"],
)
def test_a_release_for_a_campaign_without_a_hold_is_a_no_op(decide, state):
    # Given stock where the campaign holds nothing
    # When its release arrives
    decision = decide(state, release_hold_cmd(0))

    # Then nothing changes (a SKU never seen gets no empty row)
    assert decision.state == state
    assert decision.events == []


@pytest.mark.parametrize(
    ("command", "outcome", "reason_prefix"),
    [
        (reserve_cmd(2), StockReserved, None),
        (reserve_cmd(3), StockReservationRejected, "insufficient_stock: 2 available"),
        (hold_cmd(2, "other"), CampaignStockHeld, None),
        (hold_cmd(3, "other"), CampaignStockRefused, "insufficient_stock: 2 available"),
        (adjust_cmd(-2), StockAdjusted, None),
        (adjust_cmd(-3), StockAdjustmentRejected, "insufficient_stock: 8 units are held"),
    ],
    ids=["order-fits", "order-short", "campaign-fits", "campaign-short", "write-off-fits", "write-off-too-much"],
)
def test_a_campaigns_hold_is_not_available_to_anyone_else(decide, command, outcome, reason_prefix):
    # Given 10 units of which a campaign holds 8
    state = decide(level(on_hand=10), hold_cmd(8)).state
    assert (state.reserved, state.available) == (8, 2)

    # When an ordinary order, another campaign or a write-off wants units
    decision = decide(state, command)

    # Then only the 2 units the campaign does not hold can go, and the campaign keeps its 8
    [event] = decision.events
    assert type(event) is outcome
    if reason_prefix is not None:
        assert event.reason.startswith(reason_prefix)
    assert decision.state.holds[CAMPAIGN_HOLD] == 8
    assert decision.state.available >= 0


# --- dispatch --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        ProductUpserted(sku=SKU, name="Mug", price=Money(amount=1, currency="USD")),
        PlaceOrder(order_id=ORDER, customer="c", lines=(OrderLine(sku=SKU, quantity=1),), request_hash="h"),
        CancelOrder(order_id=ORDER, requested_by="c"),
        StockReserved(order_id=ORDER, sku=SKU, quantity=1, unit_price=Money(amount=1, currency="USD")),
    ],
    ids=lambda payload: type(payload).__name__,
)
@pytest.mark.parametrize("state", [None, level(on_hand=5)], ids=["no-state", "stock"])
def test_events_inventory_does_not_handle_raise_unhandled_event(decide, state, payload):
    # Given any stock
    # When an event of another context reaches the inventory decision
    # Then it is refused as unhandled (the agent dead-letters it)
    with pytest.raises(UnhandledEvent, match=type(payload).__name__):
        decide(state, payload)


@pytest.mark.parametrize(
    ("command", "expected_on_hand"),
    [(reserve_cmd(1), 0), (adjust_cmd(3), 3), (hold_cmd(1), 0)],
    ids=["reserve", "adjust", "campaign-hold"],
)
def test_first_command_for_a_sku_starts_from_empty_stock_of_that_tenant(decide, command, expected_on_hand):
    # Given a SKU without stored stock
    # When its first command arrives
    decision = decide(None, command)

    # Then the stock belongs to the event's tenant and SKU and starts at zero
    assert (decision.state.tenant, decision.state.sku) == (TENANT, SKU)
    assert decision.state.on_hand == expected_on_hand
    assert decision.state.holds == {}


# --- property: stock is never over-promised ------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_random_commands_never_make_available_negative(decide, seed):
    # Given a fixed-seed random stream of reserves, releases, commits and adjustments over a few orders,
    # with adjustment ids reused and the SKU occasionally missing from the catalog
    rng = random.Random(seed)
    orders = [uuid.UUID(int=n) for n in range(1, 9)]
    adjustments = [uuid.UUID(int=500 + n) for n in range(150)]
    state: StockLevel | None = None
    expected_on_hand, expected_holds = 0, {}
    seen = set()

    for step in range(600):
        roll = rng.random()
        if roll < 0.45:
            command = reserve_cmd(rng.randint(-1, 6), rng.choice(orders))
        elif roll < 0.6:
            command = release_cmd(rng.choice(orders))
        elif roll < 0.7:
            command = commit_cmd(rng.choice(orders))
        else:
            command = adjust_cmd(rng.randint(-10, 10), rng.choice(adjustments))

        # When each command is decided on the state left by the previous one
        before = None if state is None else state.model_dump()
        decision = decide(state, command, known=rng.random() > 0.05)

        # Then the input state is never mutated ...
        assert (None if state is None else state.model_dump()) == before
        state = decision.state
        # ... the state moves exactly as its events say ...
        for event in decision.events:
            seen.add(type(event).__name__)
            if isinstance(event, StockReserved):
                expected_holds[str(event.order_id)] = event.quantity
            elif isinstance(event, StockReleased):
                assert expected_holds.pop(str(event.order_id)) == event.quantity
            elif isinstance(event, StockCommitted):
                assert expected_holds.pop(str(event.order_id)) == event.quantity
                expected_on_hand -= event.quantity
                assert (event.on_hand, event.reserved) == (expected_on_hand, sum(expected_holds.values()))
            elif isinstance(event, StockAdjusted):
                expected_on_hand += event.delta
        if state is None:  # only a release or a commit can meet a SKU never seen, and neither creates anything
            assert (expected_on_hand, expected_holds) == (0, {}), f"step {step}: {command!r}"
            continue
        assert (state.on_hand, state.holds) == (expected_on_hand, expected_holds), f"step {step}: {command!r}"
        # ... and no unit is ever promised twice
        assert state.available >= 0, f"step {step}: {command!r} left {state!r}"
        assert state.on_hand >= 0
        assert all(quantity >= 1 for quantity in state.holds.values())

    # The stream exercised every outcome, so the invariant was really put to the test
    assert seen == {
        "StockReserved",
        "StockReservationRejected",
        "StockReleased",
        "StockCommitted",
        "StockAdjusted",
        "StockAdjustmentRejected",
    }
