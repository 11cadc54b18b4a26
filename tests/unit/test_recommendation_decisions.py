"""Co-purchase counts (streams/tables/recommendations.py): expected scores worked out by hand below,
independently of the code: each order weighs 1 at its confirmation, halved every half-life."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from streams.models import (
    POPULARITY,
    CoPurchases,
    CountCoPurchase,
    Envelope,
    OrderLine,
    OrderStatusChanged,
    ProductUpserted,
    Money,
)
from streams.tables import recommendations
from streams.tables.decision import UnhandledEvent

TENANT = "acme"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
DAYS_30 = timedelta(days=30)
DAYS_10 = timedelta(days=10)


def order(n: int) -> uuid.UUID:
    return uuid.UUID(int=n)


def command(sku: str, bought_with: tuple[str, ...], n: int, at: datetime) -> Envelope:
    return Envelope.new(TENANT, CountCoPurchase(sku=sku, bought_with=bought_with, order_id=order(n), confirmed_at=at),
                        event_id=uuid.UUID(int=1000 + n), occurred_at=at)


def apply(commands: list[Envelope], half_life: timedelta, state: CoPurchases | None = None) -> CoPurchases:
    # `now` far from every event: the decision must use the command's own time, never the clock
    now = datetime(2030, 1, 1, tzinfo=UTC)
    for event in commands:
        state = recommendations.decide(state, event, now, half_life=half_life).state
    assert state is not None
    return state


# -- decay ------------------------------------------------------------------------------------


def test_two_orders_a_half_life_apart_give_one_and_a_half():
    # Given two orders of A with B, 30 days apart, half-life 30 days
    state = apply([command("A", ("B",), 1, T0), command("A", ("B",), 2, T0 + DAYS_30)], DAYS_30)
    # Then the first weighs 0.5 at the second's time: 0.5 + 1 = 1.5
    assert state.scores == {"B": pytest.approx(1.5)}
    assert state.decayed_at == T0 + DAYS_30 and state.orders == 2


def test_an_order_counted_after_a_later_one_weighs_the_same():
    # Given the later order first, then the earlier one (orders arrive in any order)
    state = apply([command("A", ("B",), 2, T0 + DAYS_30), command("A", ("B",), 1, T0)], DAYS_30)
    # Then 1 + 0.5 = 1.5 as of the later time
    assert state.scores == {"B": pytest.approx(1.5)}
    assert state.decayed_at == T0 + DAYS_30


def test_three_orders_ten_days_apart_with_a_ten_day_half_life():
    # 0.25 + 0.5 + 1 = 1.75 for B; C only in the middle order: 0.5
    state = apply([command("A", ("B",), 1, T0), command("A", ("B", "C"), 2, T0 + DAYS_10),
                   command("A", ("B",), 3, T0 + 2 * DAYS_10)], DAYS_10)
    assert state.scores == {"B": pytest.approx(1.75), "C": pytest.approx(0.5)}
    assert list(state.scores) == ["B", "C"]  # highest first


def test_the_time_that_counts_is_the_orders_not_the_clock():
    events = [command("A", ("B",), 1, T0), command("A", ("B",), 2, T0 + DAYS_30)]
    early = recommendations.decide(None, events[0], T0, half_life=DAYS_30).state
    late = recommendations.decide(None, events[0], T0 + 100 * DAYS_30, half_life=DAYS_30).state
    assert early == late


# -- exactly once -----------------------------------------------------------------------------


def test_a_replayed_command_counts_nothing_twice():
    # Given A counted for orders 1 and 2
    state = apply([command("A", ("B",), 1, T0), command("A", ("C",), 2, T0 + DAYS_10)], DAYS_30)
    # When order 1's command comes again (a replay after a crash, or a second writer)
    again = apply([command("A", ("B",), 1, T0)], DAYS_30, state)
    # Then nothing changes
    assert again == state
    assert state.counted == (str(order(1)), str(order(2)))


def test_only_the_latest_orders_are_remembered(monkeypatch):
    monkeypatch.setattr(recommendations, "REMEMBERED_ORDERS", 2)
    state = apply([command("A", ("B",), n, T0) for n in (1, 2, 3)], DAYS_30)
    assert state.counted == (str(order(2)), str(order(3)))
    assert state.scores == {"B": pytest.approx(3.0)}


# -- bounds and keys --------------------------------------------------------------------------


def test_only_the_top_fifty_are_kept_ties_by_sku():
    # Given 50 SKUs bought twice with A, at T0
    skus = tuple(f"S{i:02d}" for i in range(50))
    state = apply([command("A", skus, 1, T0), command("A", skus, 2, T0)], DAYS_30)
    assert len(state.scores) == 50 and set(state.scores.values()) == {2.0}
    # When a new SKU is bought once with A, at the same time
    state = apply([command("A", ("NEW", "S00"), 3, T0)], DAYS_30, state)
    # Then it scores 1, below the 50 others (S00 now 3): it is not kept
    assert "NEW" not in state.scores and len(state.scores) == 50
    assert next(iter(state.scores.items())) == ("S00", pytest.approx(3.0))


def test_among_equal_scores_the_first_skus_by_name_are_kept():
    skus = tuple(f"S{i:02d}" for i in range(51))
    state = apply([command("A", skus, 1, T0)], DAYS_30)
    assert list(state.scores) == list(skus[:50])


def test_a_sku_never_scores_with_itself():
    state = apply([command("A", ("A", "B"), 1, T0)], DAYS_30)
    assert state.scores == {"B": 1.0}


def test_the_popularity_entry_counts_every_sku_of_each_order():
    # Orders {A, B} at T0 and {A} 30 days later, half-life 30 days: A 0.5 + 1, B 0.5
    state = apply([command(POPULARITY, ("A", "B"), 1, T0), command(POPULARITY, ("A",), 2, T0 + DAYS_30)], DAYS_30)
    assert state.scores == {"A": pytest.approx(1.5), "B": pytest.approx(0.5)}
    assert (state.tenant, state.sku) == (TENANT, "*")


def test_another_command_is_not_handled():
    event = Envelope.new(TENANT, ProductUpserted(sku="A", name="Mug", price=Money(amount=1, currency="USD")))
    with pytest.raises(UnhandledEvent):
        recommendations.decide(None, event, T0, half_life=DAYS_30)


# -- the split of a confirmed order -----------------------------------------------------------


def confirmed(lines: tuple[tuple[str, int], ...] | None, status: str = "confirmed") -> Envelope:
    return Envelope.new(TENANT, OrderStatusChanged(
        order_id=order(7), customer="c", status=status, previous_status="paid",
        lines=None if lines is None else tuple(OrderLine(sku=sku, quantity=qty) for sku, qty in lines)),
        event_id=uuid.UUID(int=77), occurred_at=T0)


def test_a_confirmed_order_asks_one_count_per_sku_and_one_for_the_popularity():
    split = recommendations.split(confirmed((("B", 1), ("A", 2), ("C", 1))))
    assert split == [
        CountCoPurchase(sku="A", bought_with=("B", "C"), order_id=order(7), confirmed_at=T0),
        CountCoPurchase(sku="B", bought_with=("A", "C"), order_id=order(7), confirmed_at=T0),
        CountCoPurchase(sku="C", bought_with=("A", "B"), order_id=order(7), confirmed_at=T0),
        CountCoPurchase(sku="*", bought_with=("A", "B", "C"), order_id=order(7), confirmed_at=T0),
    ]


def test_an_order_of_one_sku_counts_for_the_popularity_only():
    assert recommendations.split(confirmed((("A", 3),))) == [
        CountCoPurchase(sku="*", bought_with=("A",), order_id=order(7), confirmed_at=T0)]


@pytest.mark.parametrize("status", ["pending", "reserved", "paid", "refunded", "confirmed"])
def test_an_order_event_without_lines_asks_nothing(status):
    # (a refund that failed back to `confirmed` carries no lines: the order was counted at its capture)
    assert recommendations.split(confirmed(None, status)) == []


def test_ranked_reads_a_table_value_highest_first_without_the_sku_itself():
    value = {"scores": {"B": 1.0, "A": 3.0, "C": 1.0}}
    assert recommendations.ranked(value, exclude="A") == [("B", 1.0), ("C", 1.0)]
    assert recommendations.ranked(None, exclude="A") == []
