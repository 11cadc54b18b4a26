"""A price change reaches nothing priced before it: orders keep the price they were reserved at, and a
campaign's orders pay its group price whatever the catalog says. Also: the inventory decision announces
when a SKU goes in or out of stock (`decide_and_announce`, streams/tables/inventory.py).

The chains below run the pure decisions in the order the topics would deliver their events; every
expected amount is written by hand.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from streams.models import (
    AdjustStock,
    AvailabilityChanged,
    CommitStock,
    Envelope,
    HoldForCampaign,
    Money,
    OrderLine,
    PlaceOrder,
    ProductPriceChanged,
    ProductUpserted,
    ReleaseCampaignHold,
    ReleaseStock,
    RequestPayment,
    ReserveStock,
    StockAdjusted,
    StockLevel,
    StockReservationRejected,
    StockReserved,
)
from streams.tables import catalog, inventory, orders

TENANT, SKU = "acme", "MUG-1"
T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
ORDER_A, ORDER_B, PLEDGE_ORDER = uuid.UUID(int=1), uuid.UUID(int=2), uuid.UUID(int=3)
EUR = "EUR"


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def envelope(payload, minutes: int) -> Envelope:  # type: ignore[no-untyped-def]
    return Envelope.new(TENANT, payload, occurred_at=at(minutes))


def upsert(amount: int, minutes: int, product=None):  # type: ignore[no-untyped-def]
    upserted = ProductUpserted(sku=SKU, name="Mug", price=Money(amount=amount, currency=EUR))
    return catalog.decide(product, envelope(upserted, minutes), at(minutes))


def test_an_order_keeps_the_price_it_was_reserved_at_when_the_price_changes_before_it_is_paid():
    # Given MUG-1 at 12.99 EUR with 10 in stock, and order A for 2 reserved at that price
    product = upsert(1299, 0).state
    stock = inventory.decide(None, envelope(AdjustStock(adjustment_id=uuid.UUID(int=9), sku=SKU, delta=10,
                                                        reason="restock"), 1), at(1), product=product).state
    order = orders.decide(None, envelope(PlaceOrder(order_id=ORDER_A, customer="alice",
                                                    lines=(OrderLine(sku=SKU, quantity=2),), request_hash="h"), 2), at(2),
                          hold_ttl=timedelta(minutes=15)).state
    reserved = inventory.decide(stock, envelope(ReserveStock(order_id=ORDER_A, sku=SKU, quantity=2), 3), at(3),
                                product=product)
    assert reserved.events == [StockReserved(order_id=ORDER_A, sku=SKU, quantity=2,
                                             unit_price=Money(amount=1299, currency=EUR))]

    # When the vendor raises the price to 15.49 EUR before the reservation's answer reaches the order
    repriced = upsert(1549, 4, product)
    assert repriced.events == [ProductPriceChanged(sku=SKU, old_price=Money(amount=1299, currency=EUR),
                                                   new_price=Money(amount=1549, currency=EUR))]
    answered = orders.decide(order, envelope(reserved.events[0], 5), at(5), hold_ttl=timedelta(minutes=15))

    # Then order A asks to be paid 2 x 12.99 = 25.98 EUR
    assert answered.state.total == Money(amount=2598, currency=EUR)
    assert [e for e in answered.events if isinstance(e, RequestPayment)][0].amount == Money(amount=2598, currency=EUR)
    # and a replayed reservation of A at the new price changes nothing and emits nothing
    replayed = inventory.decide(reserved.state, envelope(ReserveStock(order_id=ORDER_A, sku=SKU, quantity=2), 6),
                                at(6), product=repriced.state)
    assert (replayed.state, replayed.events) == (reserved.state, [])
    # while order B, reserved after the change, pays 15.49 EUR a unit
    later = inventory.decide(reserved.state, envelope(ReserveStock(order_id=ORDER_B, sku=SKU, quantity=1), 7), at(7),
                             product=repriced.state)
    assert later.events == [StockReserved(order_id=ORDER_B, sku=SKU, quantity=1,
                                          unit_price=Money(amount=1549, currency=EUR))]


@pytest.mark.parametrize("new_amount", [1549, 299])  # raised above, or cut below, the group price
def test_a_campaigns_orders_pay_the_group_price_whatever_the_catalog_price_becomes(new_amount):
    # Given MUG-1 at 12.99 EUR and a campaign holding 5 units at a group price of 9.99 EUR
    product = upsert(1299, 0).state
    stock = StockLevel(tenant=TENANT, sku=SKU, on_hand=10)
    stock = inventory.decide(stock, envelope(HoldForCampaign(campaign_id="club", sku=SKU, quantity=5), 1), at(1),
                             product=product).state

    # When the price changes, and then the campaign's pledge order draws 3 units at the group price
    repriced = upsert(new_amount, 2, product).state
    drawn = inventory.decide(stock, envelope(ReserveStock(order_id=PLEDGE_ORDER, sku=SKU, quantity=3, campaign="club",
                                                          unit_price=Money(amount=999, currency=EUR)), 3), at(3),
                             product=repriced)

    # Then the order is reserved at 9.99 EUR a unit, from the campaign's hold
    assert drawn.events == [StockReserved(order_id=PLEDGE_ORDER, sku=SKU, quantity=3,
                                          unit_price=Money(amount=999, currency=EUR))]
    assert drawn.state.holds == {inventory.campaign_hold("club"): 2, str(PLEDGE_ORDER): 3}


def announce(state: StockLevel | None, payload, known: bool = True):  # type: ignore[no-untyped-def]
    product = upsert(1299, 0).state if known else None
    return inventory.decide_and_announce(state, envelope(payload, 1), at(1), product=product)


def level(on_hand: int, holds: dict[str, int] | None = None) -> StockLevel:
    return StockLevel(tenant=TENANT, sku=SKU, on_hand=on_hand, holds=holds or {})


def campaign_release_state(on_hand: int) -> StockLevel:
    """Campaign club held 4, its pledge order drew 1: 3 left in its hold, 1 in the order's."""
    return level(on_hand, {"campaign:club": 3, str(PLEDGE_ORDER): 1}).model_copy(update={"campaign_draws": {"club": 1}})


@pytest.mark.parametrize(
    ("state", "payload", "known", "announced"),
    [
        # restocking a SKU never stocked: 0 -> 5
        (None, AdjustStock(adjustment_id=uuid.UUID(int=7), sku=SKU, delta=5, reason="restock"), True, (5, True)),
        # restocking a sold-out SKU: 0 -> 3
        (level(0), AdjustStock(adjustment_id=uuid.UUID(int=7), sku=SKU, delta=3, reason="restock"), True, (3, True)),
        # restocking a SKU whose 2 units are all held: 0 -> 3
        (level(2, {str(ORDER_B): 2}), AdjustStock(adjustment_id=uuid.UUID(int=7), sku=SKU, delta=3, reason="restock"),
         True, (3, True)),
        # a reservation takes the last 2: 2 -> 0
        (level(2), ReserveStock(order_id=ORDER_A, sku=SKU, quantity=2), True, (0, False)),
        # a reservation takes the last 2 while another order holds 3: 2 -> 0
        (level(5, {str(ORDER_B): 3}), ReserveStock(order_id=ORDER_A, sku=SKU, quantity=2), True, (0, False)),
        # an adjustment takes the last 3 (damaged): 3 -> 0
        (level(3), AdjustStock(adjustment_id=uuid.UUID(int=7), sku=SKU, delta=-3, reason="damaged"), True, (0, False)),
        # a release gives back the 2 units that were all held: 0 -> 2
        (level(2, {str(ORDER_A): 2}), ReleaseStock(order_id=ORDER_A, sku=SKU, reason="cancelled"), True, (2, True)),
        # a campaign holds all 4: 4 -> 0
        (level(4), HoldForCampaign(campaign_id="club", sku=SKU, quantity=4), True, (0, False)),
        # a campaign keeps 2 (1 still to draw) of its 3 left when nothing else was available: 0 -> 2
        (campaign_release_state(4), ReleaseCampaignHold(campaign_id="club", sku=SKU, keep=2), True, (2, True)),
    ],
    ids=["restock-never-stocked", "restock-sold-out", "restock-all-held", "last-units-reserved",
         "last-units-reserved-beside-a-hold", "last-units-adjusted-away", "release-from-0", "campaign-holds-all",
         "campaign-release-from-0"],
)
def test_going_in_or_out_of_stock_is_announced_once(state, payload, known, announced):
    decision = announce(state, payload, known)
    available, in_stock = announced
    assert decision.events[-1] == AvailabilityChanged(sku=SKU, available=available, in_stock=in_stock)
    assert sum(isinstance(e, AvailabilityChanged) for e in decision.events) == 1
    # the other events are the decision's own, unchanged
    assert decision.events[:-1] == inventory.decide(state, envelope(payload, 1), at(1),
                                                    product=upsert(1299, 0).state).events


@pytest.mark.parametrize(
    ("state", "payload", "known"),
    [
        # a reservation that leaves units available: 5 -> 3
        (level(5), ReserveStock(order_id=ORDER_A, sku=SKU, quantity=2), True),
        # a restock of a SKU already in stock: 1 -> 5
        (level(1), AdjustStock(adjustment_id=uuid.UUID(int=7), sku=SKU, delta=4, reason="restock"), True),
        # a release while in stock: 1 -> 3
        (level(3, {str(ORDER_A): 2}), ReleaseStock(order_id=ORDER_A, sku=SKU, reason="cancelled"), True),
        # a campaign holds 4 of 6: 6 -> 2
        (level(6), HoldForCampaign(campaign_id="club", sku=SKU, quantity=4), True),
        # a campaign keeps 2 (1 still to draw) of its 3 left, 2 units being available: 2 -> 4
        (campaign_release_state(6), ReleaseCampaignHold(campaign_id="club", sku=SKU, keep=2), True),
        # refused: more than available
        (level(1), ReserveStock(order_id=ORDER_A, sku=SKU, quantity=2), True),
        # refused: a SKU never stocked
        (None, ReserveStock(order_id=ORDER_A, sku=SKU, quantity=1), True),
        # refused: not in the catalog
        (None, AdjustStock(adjustment_id=uuid.UUID(int=7), sku=SKU, delta=5, reason="restock"), False),
        # refused: on hand cannot go below what is held
        (level(3, {str(ORDER_A): 3}), AdjustStock(adjustment_id=uuid.UUID(int=7), sku=SKU, delta=-1, reason="damaged"),
         True),
        # a replayed reservation: already held, nothing changes
        (level(2, {str(ORDER_A): 2}), ReserveStock(order_id=ORDER_A, sku=SKU, quantity=2), True),
        # a commit turns a hold into a sale: on hand and held go down together, available stays 3
        (level(5, {str(ORDER_A): 2}), CommitStock(order_id=ORDER_A, sku=SKU), True),
        # a commit of the last units: available stays 0
        (level(2, {str(ORDER_A): 2}), CommitStock(order_id=ORDER_A, sku=SKU), True),
        # a release of nothing held
        (level(5), ReleaseStock(order_id=ORDER_A, sku=SKU, reason="cancelled"), True),
        (None, ReleaseStock(order_id=ORDER_A, sku=SKU, reason="cancelled"), True),
    ],
    ids=["reservation-leaving-units", "restock-in-stock", "release-in-stock", "campaign-hold-leaving-units",
         "campaign-release-in-stock", "refused-reservation", "reservation-never-stocked", "unknown-sku",
         "refused-adjustment", "replayed-reservation", "commit", "commit-of-the-last-units", "release-of-nothing",
         "release-without-stock"],
)
def test_nothing_is_announced_while_the_sku_stays_in_or_out_of_stock(state, payload, known):
    decision = announce(state, payload, known)
    assert not any(isinstance(e, AvailabilityChanged) for e in decision.events)
    assert decision.events == inventory.decide(state, envelope(payload, 1), at(1),
                                               product=upsert(1299, 0).state if known else None).events


def test_a_restock_from_0_announces_the_stock_change_and_then_the_availability():
    decision = announce(level(0), AdjustStock(adjustment_id=uuid.UUID(int=7), sku=SKU, delta=5, reason="restock"))
    assert decision.events == [
        StockAdjusted(adjustment_id=uuid.UUID(int=7), sku=SKU, delta=5, reason="restock", on_hand=5, reserved=0),
        AvailabilityChanged(sku=SKU, available=5, in_stock=True),
    ]
    refused = announce(level(1), ReserveStock(order_id=ORDER_A, sku=SKU, quantity=3))
    assert [type(e) for e in refused.events] == [StockReservationRejected]


def test_a_run_of_reservations_announces_only_where_the_sku_goes_out_of_and_back_in_stock():
    # Given MUG-1 restocked to 3 from nothing, then orders A (1), B (2) and C (1) reserving, A released
    steps = [
        AdjustStock(adjustment_id=uuid.UUID(int=7), sku=SKU, delta=3, reason="restock"),
        ReserveStock(order_id=ORDER_A, sku=SKU, quantity=1),
        ReserveStock(order_id=ORDER_B, sku=SKU, quantity=2),
        ReserveStock(order_id=PLEDGE_ORDER, sku=SKU, quantity=1),
        ReleaseStock(order_id=ORDER_A, sku=SKU, reason="cancelled"),
        CommitStock(order_id=ORDER_B, sku=SKU),
    ]
    state, announced = None, []
    for payload in steps:
        decision = announce(state, payload)
        state = decision.state
        announced.append([(e.available, e.in_stock) for e in decision.events if isinstance(e, AvailabilityChanged)])
    # Then: in stock with 3, nothing for A (2 left), out of stock with B, nothing for C's refusal,
    # back in stock with A's unit, nothing for B's sale
    assert announced == [[(3, True)], [], [(0, False)], [], [(1, True)], []]
    assert (state.on_hand, state.reserved, state.available) == (1, 0, 1)
