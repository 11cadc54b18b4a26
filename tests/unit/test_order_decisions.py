"""Order decisions (streams/tables/orders.py): the order side of the reservation saga."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from streams.models import (
    AdjustStock,
    CancelOrder,
    ExpireOrderHold,
    Money,
    Order,
    OrderLine,
    OrderStatus,
    OrderStatusChanged,
    PlaceOrder,
    ProductUpserted,
    ReleaseStock,
    ReserveStock,
    StatusEntry,
    StockReleased,
    StockReservationRejected,
    StockReserved,
)
from streams.tables import orders
from streams.tables.decision import Decision, UnhandledEvent

TENANT = "acme"
ORDER_ID = uuid.UUID(int=7)
CUSTOMER = "cust-1"
TTL = timedelta(minutes=15)
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)  # placed
T1 = T0 + timedelta(seconds=2)  # reservation results
T2 = T0 + timedelta(minutes=5)  # cancellation

PRICES = {
    "A": Money(amount=250, currency="USD"),
    "B": Money(amount=1000, currency="USD"),
    "C": Money(amount=5, currency="USD"),
    "X": Money(amount=700, currency="EUR"),
}
LINES = (("A", 1), ("B", 2), ("C", 3))


def place_cmd(lines=LINES, customer: str = CUSTOMER) -> PlaceOrder:
    return PlaceOrder(
        order_id=ORDER_ID,
        customer=customer,
        lines=tuple(OrderLine(sku=sku, quantity=qty) for sku, qty in lines),
        request_hash=f"hash-of-{customer}",
    )


def reserved_result(sku: str, quantity: int) -> StockReserved:
    return StockReserved(order_id=ORDER_ID, sku=sku, quantity=quantity, unit_price=PRICES[sku])


def refused_result(sku: str, quantity: int) -> StockReservationRejected:
    return StockReservationRejected(
        order_id=ORDER_ID, sku=sku, quantity=quantity, reason="insufficient_stock: 0 available"
    )


def released_result(sku: str, quantity: int) -> StockReleased:
    return StockReleased(order_id=ORDER_ID, sku=sku, quantity=quantity, reason="order cancelled")


def cancel_cmd() -> CancelOrder:
    return CancelOrder(order_id=ORDER_ID, requested_by=CUSTOMER)


def expire_cmd() -> ExpireOrderHold:
    return ExpireOrderHold(order_id=ORDER_ID)


def releases(lines, reason: str) -> list[ReleaseStock]:
    return [ReleaseStock(order_id=ORDER_ID, sku=sku, reason=reason) for sku, _ in lines]


def changed(status: str, previous: str | None, lines=LINES, *, reason=None, total=None) -> OrderStatusChanged:
    return OrderStatusChanged(
        order_id=ORDER_ID,
        customer=CUSTOMER,
        status=status,
        previous_status=previous,
        reason=reason,
        total=total,
        item_count=sum(qty for _, qty in lines),
    )


@pytest.fixture
def decide(make_envelope):
    """orders.decide for one event handled at time `at`."""

    def run(state: Order | None, payload, at: datetime = T1) -> Decision[Order | None]:
        return orders.decide(state, make_envelope(payload, tenant=TENANT, at=at), at, hold_ttl=TTL)

    return run


@pytest.fixture
def order_in(decide):
    """An order brought to `status` through the real transitions (placed at T0, results at T1)."""

    def build(status: str, lines=LINES) -> Order:
        state = decide(None, place_cmd(lines), T0).state
        if status == OrderStatus.REJECTED:
            state = decide(state, refused_result(*lines[0])).state
        elif status != OrderStatus.PENDING:
            for line in lines:
                state = decide(state, reserved_result(*line)).state
            if status == OrderStatus.CANCELLED:
                state = decide(state, cancel_cmd(), T2).state
            elif status == OrderStatus.EXPIRED:
                state = decide(state, expire_cmd(), T1 + TTL).state
        assert state.status == status, "the builder did not reach the requested status"
        return state

    return build


TERMINAL = [OrderStatus.REJECTED, OrderStatus.CANCELLED, OrderStatus.EXPIRED]
ALL_STATUSES = [OrderStatus.PENDING, OrderStatus.RESERVED, *TERMINAL]


# --- placing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("lines", [(("A", 1),), LINES, (("B", 100), ("A", 1))], ids=["one", "three", "two"])
def test_place_emits_pending_and_one_reserve_per_line(decide, lines):
    # Given no order yet
    # When the order is placed
    decision = decide(None, place_cmd(lines), T0)

    # Then it is pending and asks each line's SKU owner for a hold, in line order
    order = decision.state
    assert (order.order_id, order.tenant, order.customer, order.status) == (ORDER_ID, TENANT, CUSTOMER, "pending")
    assert order.history == (StatusEntry(status="pending", at=T0),)
    assert [(line.sku, line.quantity, line.reserved) for line in order.lines] == [(s, q, False) for s, q in lines]
    assert decision.events == [
        changed("pending", None, lines),
        *(ReserveStock(order_id=ORDER_ID, sku=sku, quantity=qty) for sku, qty in lines),
    ]


@pytest.mark.parametrize(
    ("lines", "reason_prefix"),
    [
        ((("A", 1), ("A", 2)), "duplicate_sku: A"),
        ((("A", 1), ("B", 1), ("A", 1)), "duplicate_sku: A"),
        ((("A", 0),), "invalid_quantity: A has quantity 0"),
        ((("A", 1), ("B", -2)), "invalid_quantity: B has quantity -2"),
    ],
    ids=["duplicate-adjacent", "duplicate-apart", "zero", "negative"],
)
def test_place_with_bad_lines_is_rejected_at_once(decide, lines, reason_prefix):
    # Given no order yet
    # When an order with a duplicate SKU or a quantity below 1 is placed
    decision = decide(None, place_cmd(lines), T0)

    # Then it is rejected on the spot: no stock is asked for, so none is released
    order = decision.state
    assert order.status == "rejected"
    assert order.reason.startswith(reason_prefix)
    assert order.history == (StatusEntry(status="pending", at=T0), StatusEntry(status="rejected", at=T0))
    assert decision.events == [
        changed("pending", None, lines),
        changed("rejected", "pending", lines, reason=order.reason),
    ]


@pytest.mark.parametrize("status", ALL_STATUSES)
def test_second_place_order_is_a_no_op(decide, order_in, status):
    # Given an order that exists in any status
    existing = order_in(status)

    # When a PlaceOrder for the same id arrives again, even with another body
    decision = decide(existing, place_cmd((("C", 9),), customer="someone-else"), T2)

    # Then the first placement stands and nothing is emitted
    assert decision.state == existing
    assert decision.events == []


# --- reservation results ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "result_order", "expected_total"),
    [
        ((("A", 1),), [0], 250),
        ((("A", 2), ("B", 3)), [0, 1], 2 * 250 + 3 * 1000),
        (LINES, [2, 0, 1], 1 * 250 + 2 * 1000 + 3 * 5),  # results arrive in any order
    ],
    ids=["one-line", "two-lines", "three-lines-shuffled"],
)
def test_all_lines_reserved_makes_the_order_reserved(decide, lines, result_order, expected_total):
    # Given a pending order
    state = decide(None, place_cmd(lines), T0).state

    # When every line's reservation succeeds (the last one at T1)
    for index in result_order[:-1]:
        state = decide(state, reserved_result(*lines[index]), T0).state
    decision = decide(state, reserved_result(*lines[result_order[-1]]), T1)

    # Then the order is reserved, totalled at the reserved prices, and held for the TTL
    order = decision.state
    total = Money(amount=expected_total, currency="USD")
    assert order.status == "reserved"
    assert order.total == total
    assert order.hold_expires_at == T1 + TTL
    assert all(line.reserved and line.unit_price == PRICES[line.sku] for line in order.lines)
    assert order.history[-1] == StatusEntry(status="reserved", at=T1)
    assert decision.events == [changed("reserved", "pending", lines, total=total)]


@pytest.mark.parametrize("reserved_count", [0, 1, 2])
def test_partial_reservation_stays_pending(decide, order_in, reserved_count):
    # Given a pending order of three lines
    state = order_in("pending")

    # When only some lines are reserved
    for line in LINES[:reserved_count]:
        decision = decide(state, reserved_result(*line))
        assert decision.events == []
        state = decision.state

    # Then the order waits, pending, with those lines marked
    assert state.status == "pending"
    assert state.total is None and state.hold_expires_at is None
    assert [line.reserved for line in state.lines] == [n < reserved_count for n in range(len(LINES))]


@pytest.mark.parametrize(
    ("reserved_first", "refused"),
    [
        ([], "A"),  # the first result is a refusal
        (["A"], "B"),
        (["A", "C"], "B"),  # the last missing line is refused
    ],
)
def test_any_refusal_rejects_and_releases_every_line(decide, order_in, reserved_first, refused):
    # Given a pending order of which some lines are already reserved
    state = order_in("pending")
    quantities = dict(LINES)
    for sku in reserved_first:
        state = decide(state, reserved_result(sku, quantities[sku])).state

    # When one line is refused
    decision = decide(state, refused_result(refused, quantities[refused]))

    # Then the order is rejected with that line's reason, and ALL lines are released
    order = decision.state
    assert order.status == "rejected"
    assert order.reason == f"{refused}: insufficient_stock: 0 available"
    assert decision.events == [
        changed("rejected", "pending", reason=order.reason),
        *releases(LINES, "order rejected"),
    ]


@pytest.mark.parametrize(
    "result",
    [reserved_result("A", 1), refused_result("A", 1), released_result("A", 1)],
    ids=["reserved", "refused", "released"],
)
@pytest.mark.parametrize("status", [OrderStatus.RESERVED, *TERMINAL])
def test_results_after_the_order_left_pending_change_nothing(decide, order_in, status, result):
    # Given an order no longer pending
    order = order_in(status)

    # When a (late or replayed) reservation result arrives
    decision = decide(order, result, T2)

    # Then it changes nothing and emits nothing
    assert decision.state == order
    assert decision.events == []


def test_stock_released_for_a_pending_order_changes_nothing(decide, order_in):
    # Given a pending order
    order = order_in("pending")

    # When a release confirmation arrives
    decision = decide(order, released_result("A", 1))

    # Then the order is untouched
    assert decision == Decision(order)


def test_mixed_currencies_reject_the_order_and_release_every_line(decide):
    # Given a pending order of a USD line and a EUR line
    lines = (("A", 1), ("X", 2))
    state = decide(None, place_cmd(lines), T0).state

    # When both lines are reserved
    state = decide(state, reserved_result("A", 1)).state
    decision = decide(state, reserved_result("X", 2))

    # Then the order is rejected for its currencies and both lines are released
    order = decision.state
    assert order.status == "rejected"
    assert order.reason.startswith("mixed_currency: the lines are priced in EUR, USD")
    assert order.total is None and order.hold_expires_at is None
    assert decision.events == [
        changed("rejected", "pending", lines, reason=order.reason),
        *releases(lines, "order rejected"),
    ]


# --- cancel and expire -----------------------------------------------------------------------


@pytest.mark.parametrize("status", [OrderStatus.PENDING, OrderStatus.RESERVED])
def test_cancel_of_an_open_order_cancels_and_releases_every_line(decide, order_in, status):
    # Given an open order
    order = order_in(status)

    # When the customer cancels it
    decision = decide(order, cancel_cmd(), T2)

    # Then it is cancelled, its hold is dropped and every line is released
    cancelled = decision.state
    assert cancelled.status == "cancelled"
    assert cancelled.reason == f"cancelled by {CUSTOMER}"
    assert cancelled.hold_expires_at is None
    assert cancelled.history[-1] == StatusEntry(status="cancelled", at=T2)
    assert decision.events == [
        changed("cancelled", status, reason=cancelled.reason, total=order.total),
        *releases(LINES, "order cancelled"),
    ]


@pytest.mark.parametrize("command", [cancel_cmd(), expire_cmd()], ids=["cancel", "expire"])
@pytest.mark.parametrize("status", TERMINAL)
def test_cancel_or_expire_of_a_finished_order_is_a_no_op(decide, order_in, status, command):
    # Given an order that already ended
    order = order_in(status)

    # When a cancel or an expiry arrives (well after any hold)
    decision = decide(order, command, T1 + 2 * TTL)

    # Then nothing changes and nothing is released again
    assert decision == Decision(order)


@pytest.mark.parametrize(
    ("at", "expires"),
    [
        (T1 + TTL - timedelta(microseconds=1), False),
        (T1 + TTL, True),  # exactly at hold_expires_at
        (T1 + TTL + timedelta(hours=1), True),
        (T1, False),
    ],
    ids=["just-before", "exactly-at", "after", "right-away"],
)
def test_expire_ends_a_reserved_order_only_once_its_hold_is_over(decide, order_in, at, expires):
    # Given a reserved order whose hold ends at T1 + TTL
    order = order_in("reserved")

    # When the hold-expiry timer fires at `at`
    decision = decide(order, expire_cmd(), at)

    # Then the order expires and releases every line only if the hold is over
    if not expires:
        assert decision == Decision(order)
        return
    expired = decision.state
    assert expired.status == "expired"
    assert expired.reason.startswith("hold_expired")
    assert expired.hold_expires_at is None
    assert decision.events == [
        changed("expired", "reserved", reason=expired.reason, total=order.total),
        *releases(LINES, "hold expired"),
    ]


def test_expire_of_a_pending_order_is_a_no_op(decide, order_in):
    # Given a pending order (it has no hold yet)
    order = order_in("pending")

    # When the hold-expiry timer fires long after placement
    decision = decide(order, expire_cmd(), T0 + 10 * TTL)

    # Then it stays pending
    assert decision == Decision(order)


# --- history ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("pending", [("pending", T0)]),
        ("rejected", [("pending", T0), ("rejected", T1)]),
        ("reserved", [("pending", T0), ("reserved", T1)]),
        ("cancelled", [("pending", T0), ("reserved", T1), ("cancelled", T2)]),
        ("expired", [("pending", T0), ("reserved", T1), ("expired", T1 + TTL)]),
    ],
)
def test_history_records_each_status_with_its_time(order_in, status, expected):
    # Given an order brought through its transitions at known times
    # When its history is read
    # Then it lists each status it went through, when it got there
    assert order_in(status).history == tuple(StatusEntry(status=s, at=at) for s, at in expected)


# --- unknown orders and foreign events ---------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [reserved_result("A", 1), refused_result("A", 1), released_result("A", 1), cancel_cmd(), expire_cmd()],
    ids=lambda payload: type(payload).__name__,
)
def test_results_and_commands_for_an_unknown_order_carry_nothing(decide, payload):
    # Given no order with this id on the partition
    # When a result or a cancel/expire arrives for it
    decision = decide(None, payload)

    # Then there is still no order and nothing is emitted
    assert decision == Decision(None)


@pytest.mark.parametrize(
    "payload",
    [
        ReserveStock(order_id=ORDER_ID, sku="A", quantity=1),
        ProductUpserted(sku="A", name="Mug", price=PRICES["A"]),
        AdjustStock(adjustment_id=uuid.UUID(int=9), sku="A", delta=1, reason="count"),
        changed("pending", None),
    ],
    ids=lambda payload: type(payload).__name__,
)
@pytest.mark.parametrize("known", [False, True], ids=["no-order", "pending-order"])
def test_events_orders_do_not_handle_raise_unhandled_event(decide, order_in, known, payload):
    # Given no order, or a pending one
    state = order_in("pending") if known else None

    # When an event of another context reaches the orders decision
    # Then it is refused as unhandled (the agent dead-letters it)
    with pytest.raises(UnhandledEvent, match=type(payload).__name__):
        decide(state, payload)
