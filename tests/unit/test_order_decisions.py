"""Order decisions (streams/tables/orders.py): the order side of the reservation and payment sagas."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from streams.models import (
    AdjustStock,
    CancelOrder,
    CancelPayment,
    CapturePayment,
    CommitStock,
    ExpireOrderHold,
    Money,
    Order,
    OrderLine,
    OrderPayment,
    OrderStatus,
    OrderStatusChanged,
    PaymentAuthorized,
    PaymentCanceled,
    PaymentCaptured,
    PaymentFailed,
    PaymentIntentCreated,
    PaymentPartiallyRefunded,
    PaymentRefunded,
    PaymentStatus,
    PlaceOrder,
    ProductUpserted,
    RefundPayment,
    ReleaseStock,
    RequestPayment,
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
T_INTENT = T1 + timedelta(seconds=1)  # PaymentIntentCreated
T_PAID = T0 + timedelta(minutes=1)  # PaymentAuthorized
T_CONFIRMED = T0 + timedelta(minutes=2)  # PaymentCaptured
T2 = T0 + timedelta(minutes=5)  # cancellation
T_REFUNDED = T0 + timedelta(minutes=10)  # PaymentRefunded

PRICES = {
    "A": Money(amount=250, currency="USD"),
    "B": Money(amount=1000, currency="USD"),
    "C": Money(amount=5, currency="USD"),
    "X": Money(amount=700, currency="EUR"),
}
LINES = (("A", 1), ("B", 2), ("C", 3))
TOTAL = Money(amount=1 * 250 + 2 * 1000 + 3 * 5, currency="USD")  # of LINES
INTENT = "pi_order7"
SECRET = "pi_order7_secret_abc"
CANCELLED_REASON = f"cancelled by {CUSTOMER}"
EXPIRED_REASON = "hold_expired: the order was not paid in time"


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


def void(reason: str) -> list[CancelPayment]:
    return [CancelPayment(order_id=ORDER_ID, reason=reason)]


def intent_created() -> PaymentIntentCreated:
    return PaymentIntentCreated(order_id=ORDER_ID, intent_id=INTENT, client_secret=SECRET, amount=TOTAL)


def authorized() -> PaymentAuthorized:
    return PaymentAuthorized(order_id=ORDER_ID, intent_id=INTENT, amount=TOTAL)


def captured() -> PaymentCaptured:
    return PaymentCaptured(order_id=ORDER_ID, intent_id=INTENT, amount=TOTAL)


def payment_failed(action: str, reason: str = "card_declined") -> PaymentFailed:
    return PaymentFailed(order_id=ORDER_ID, intent_id=None if action == "create" else INTENT, action=action,
                         reason=reason)


def payment_canceled() -> PaymentCanceled:
    return PaymentCanceled(order_id=ORDER_ID, intent_id=INTENT, reason="canceled in the Stripe dashboard")


def refunded() -> PaymentRefunded:
    return PaymentRefunded(order_id=ORDER_ID, intent_id=INTENT, amount=TOTAL)


def partially_refunded(added: int, so_far: int) -> PaymentPartiallyRefunded:
    return PaymentPartiallyRefunded(order_id=ORDER_ID, intent_id=INTENT, amount=Money(amount=added, currency="USD"),
                                    refunded=Money(amount=so_far, currency="USD"))


def changed(status: str, previous: str | None, lines=LINES, *, reason=None, total=None,
            bought: bool = False) -> OrderStatusChanged:
    """`bought`: the confirmation by the capture, which carries the order's lines."""
    return OrderStatusChanged(
        order_id=ORDER_ID,
        customer=CUSTOMER,
        status=status,
        previous_status=previous,
        reason=reason,
        total=total,
        item_count=sum(qty for _, qty in lines),
        lines=tuple(OrderLine(sku=sku, quantity=qty) for sku, qty in lines) if bought else None,
    )


@pytest.fixture
def decide(make_envelope):
    """orders.decide for one event handled at time `at`."""

    def run(state: Order | None, payload, at: datetime = T1) -> Decision[Order | None]:
        return orders.decide(state, make_envelope(payload, tenant=TENANT, at=at), at, hold_ttl=TTL)

    return run


# The happy path and its refund, each step with the event that takes the order there and when.
PATH = [
    (OrderStatus.RESERVED, None, T1),  # every line reserved
    (OrderStatus.PAYMENT_PENDING, intent_created(), T_INTENT),
    (OrderStatus.PAID, authorized(), T_PAID),
    (OrderStatus.CONFIRMED, captured(), T_CONFIRMED),
    (OrderStatus.REFUNDING, cancel_cmd(), T2),
    (OrderStatus.REFUNDED, refunded(), T_REFUNDED),
]
PATH_STATUSES = [status for status, _, _ in PATH]


@pytest.fixture
def order_in(decide):
    """An order brought to `status` through the real transitions (placed at T0, results at T1).

    A cancelled or expired order is closed once it got to `after` on the path (reserved unless given):
    cancelled at T2, expired when its hold ends (T1 + TTL).
    """

    def build(status: str, lines=LINES, *, after: str | None = None) -> Order:
        state = decide(None, place_cmd(lines), T0).state
        if status == OrderStatus.REJECTED:
            state = decide(state, refused_result(*lines[0])).state
        elif status != OrderStatus.PENDING:
            last = status if status in PATH_STATUSES else after or OrderStatus.RESERVED
            for step, event, at in PATH[: PATH_STATUSES.index(last) + 1]:
                if event is None:
                    for line in lines:
                        state = decide(state, reserved_result(*line), at).state
                else:
                    state = decide(state, event, at).state
                assert state.status == step, f"the builder did not reach {step}"
            if status == OrderStatus.CANCELLED:
                state = decide(state, cancel_cmd(), T2).state
            elif status == OrderStatus.EXPIRED:
                state = decide(state, expire_cmd(), T1 + TTL).state
        assert state.status == status, "the builder did not reach the requested status"
        return state

    return build


TERMINAL = [OrderStatus.REJECTED, OrderStatus.CANCELLED, OrderStatus.EXPIRED, OrderStatus.REFUNDED]
ALL_STATUSES = [OrderStatus.PENDING, *PATH_STATUSES, OrderStatus.REJECTED, OrderStatus.CANCELLED, OrderStatus.EXPIRED]


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


def test_a_campaign_order_asks_for_its_units_from_the_campaign_at_the_group_price(decide):
    # Given no order yet
    group_price = Money(amount=200, currency="USD")
    command = place_cmd((("A", 3),)).model_copy(update={"campaign": "spring-mugs", "unit_price": group_price})

    # When a succeeded campaign places the order of a pledge
    decision = decide(None, command, T0)

    # Then its reservation names the campaign and the group price, so the SKU's owner draws on the campaign's hold
    assert decision.state.status == "pending"
    assert decision.events == [
        changed("pending", None, (("A", 3),)),
        ReserveStock(order_id=ORDER_ID, sku="A", quantity=3, campaign="spring-mugs", unit_price=group_price),
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


@pytest.mark.parametrize("first", ["one-a", "nine-c"])
def test_of_two_placements_with_one_id_the_first_one_s_hash_is_kept(decide, first):
    # Given two requests with one Idempotency-Key (one order id) and different bodies, in either order
    bodies = {"one-a": place_cmd((("A", 1),)), "nine-c": place_cmd((("C", 9),))}
    hashes = {"one-a": "hash-1", "nine-c": "hash-2"}
    commands = {name: command.model_copy(update={"request_hash": hashes[name]}) for name, command in bodies.items()}
    second = "nine-c" if first == "one-a" else "one-a"

    # When the orders agent decides them in that order
    state = decide(None, commands[first], T0).state
    decision = decide(state, commands[second], T1)

    # Then the order is the first one, with its hash: the gateway answers the other request 409
    assert decision.state == state and decision.events == []
    assert state.request_hash == hashes[first]
    assert [(line.sku, line.quantity) for line in state.lines] == {"one-a": [("A", 1)], "nine-c": [("C", 9)]}[first]


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

    # Then the order is reserved, totalled at the reserved prices, held for the TTL, and asks for the payment
    order = decision.state
    total = Money(amount=expected_total, currency="USD")
    assert order.status == "reserved"
    assert order.total == total
    assert order.hold_expires_at == T1 + TTL
    assert order.payment is None
    assert all(line.reserved and line.unit_price == PRICES[line.sku] for line in order.lines)
    assert order.history[-1] == StatusEntry(status="reserved", at=T1)
    assert decision.events == [
        changed("reserved", "pending", lines, total=total),
        RequestPayment(order_id=ORDER_ID, customer=CUSTOMER, amount=total),
    ]


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
@pytest.mark.parametrize("status", ALL_STATUSES[1:])
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


@pytest.mark.parametrize(
    ("status", "voids_the_intent"),
    [
        (OrderStatus.PENDING, False),  # no payment asked for yet
        (OrderStatus.RESERVED, True),  # RequestPayment is on its way
        (OrderStatus.PAYMENT_PENDING, True),
        (OrderStatus.PAID, True),  # authorized, not yet captured
    ],
)
def test_cancel_of_an_open_order_cancels_and_releases_every_line(decide, order_in, status, voids_the_intent):
    # Given an open order
    order = order_in(status)

    # When the customer cancels it
    decision = decide(order, cancel_cmd(), T2)

    # Then it is cancelled, its hold is dropped, every line is released and a requested intent is voided
    cancelled = decision.state
    assert cancelled.status == "cancelled"
    assert cancelled.reason == CANCELLED_REASON
    assert cancelled.hold_expires_at is None
    assert cancelled.history[-1] == StatusEntry(status="cancelled", at=T2)
    assert decision.events == [
        changed("cancelled", status, reason=CANCELLED_REASON, total=order.total),
        *releases(LINES, CANCELLED_REASON),
        *(void(CANCELLED_REASON) if voids_the_intent else []),
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
@pytest.mark.parametrize("status", [OrderStatus.RESERVED, OrderStatus.PAYMENT_PENDING])
def test_expire_ends_an_unpaid_order_only_once_its_hold_is_over(decide, order_in, status, at, expires):
    # Given a reserved order, or one whose intent waits for the customer, with a hold ending at T1 + TTL
    order = order_in(status)
    assert order.hold_expires_at == T1 + TTL

    # When the hold-expiry timer fires at `at`
    decision = decide(order, expire_cmd(), at)

    # Then the order expires, releases every line and voids the intent, only if the hold is over
    if not expires:
        assert decision == Decision(order)
        return
    expired = decision.state
    assert expired.status == "expired"
    assert expired.reason == EXPIRED_REASON
    assert expired.hold_expires_at is None
    assert expired.history[-1] == StatusEntry(status="expired", at=at)
    assert decision.events == [
        changed("expired", status, reason=EXPIRED_REASON, total=order.total),
        *releases(LINES, EXPIRED_REASON),
        *void(EXPIRED_REASON),
    ]


def test_expire_of_a_pending_order_is_a_no_op(decide, order_in):
    # Given a pending order (it has no hold yet)
    order = order_in("pending")

    # When the hold-expiry timer fires long after placement
    decision = decide(order, expire_cmd(), T0 + 10 * TTL)

    # Then it stays pending
    assert decision == Decision(order)


# --- payment: every payment event, cancel and expiry from every status ----------------------------

T_EVENT = T1 + 2 * TTL  # after any hold, so that an expiry applies wherever it can
PAYMENT_FAILED_REASON = "payment_failed: card_declined"
STRIPE_CANCELED_REASON = "payment_canceled: canceled in the Stripe dashboard"
KEEP = "as it was"

EVENTS = {
    "created": intent_created(),
    "authorized": authorized(),
    "captured": captured(),
    "failed-create": payment_failed("create"),
    "failed-authorize": payment_failed("authorize"),
    "failed-capture": payment_failed("capture"),
    "failed-cancel": payment_failed("cancel"),
    "failed-refund": payment_failed("refund"),
    "canceled": payment_canceled(),
    "refunded": refunded(),
    "partially-refunded": partially_refunded(300, 300),
    "cancel": cancel_cmd(),
    "expire": expire_cmd(),
}
# Every status an order is stored in (payment_failed never is: the same decision cancels the order),
# as (status, the status on the path it was closed from).
STATES = {
    **{status: (status, None) for status in [OrderStatus.PENDING, *PATH_STATUSES, OrderStatus.REJECTED]},
    "cancelled": (OrderStatus.CANCELLED, OrderStatus.RESERVED),  # before its intent existed
    "cancelled-when-paid": (OrderStatus.CANCELLED, OrderStatus.PAID),
    "expired": (OrderStatus.EXPIRED, OrderStatus.RESERVED),
    "expired-when-payment-pending": (OrderStatus.EXPIRED, OrderStatus.PAYMENT_PENDING),
}


@dataclass(frozen=True)
class Moves:
    """What one event does to an order: the statuses it enters (each one a history entry at the event's time
    and an OrderStatusChanged), what it then asks of other contexts, its reason and its payment afterwards."""

    to: tuple[str, ...] = ()
    asks: tuple[str, ...] = ()
    reason: str = KEEP
    payment: str | OrderPayment = KEEP  # the payment status (if the order has a payment), or the new payment


NO_CHANGE = Moves()
OPEN_WITH_INTENT = [OrderStatus.RESERVED, OrderStatus.PAYMENT_PENDING, OrderStatus.PAID]
UNPAID = [OrderStatus.RESERVED, OrderStatus.PAYMENT_PENDING]
FAILS = Moves(
    to=(OrderStatus.PAYMENT_FAILED, OrderStatus.CANCELLED), asks=("release",), reason=PAYMENT_FAILED_REASON,
    payment=PaymentStatus.FAILED,
)
TRANSITIONS = {
    ("reserved", "created"): Moves(
        to=(OrderStatus.PAYMENT_PENDING,),
        payment=OrderPayment(intent_id=INTENT, client_secret=SECRET, status=PaymentStatus.AWAITING_PAYMENT),
    ),
    **{(s, "authorized"): Moves(to=(OrderStatus.PAID,), asks=("capture",), payment=PaymentStatus.AUTHORIZED)
       for s in UNPAID},
    **{(s, "captured"): Moves(to=(OrderStatus.CONFIRMED,), asks=("commit",), payment=PaymentStatus.CAPTURED)
       for s in OPEN_WITH_INTENT},
    **{(s, "failed-create"): FAILS for s in OPEN_WITH_INTENT},
    **{(s, "failed-authorize"): FAILS for s in OPEN_WITH_INTENT},
    # Only a failed capture leaves an authorized intent, holding the customer's money, to void.
    **{(s, "failed-capture"): replace(FAILS, asks=("release", "void")) for s in OPEN_WITH_INTENT},
    ("refunding", "failed-refund"): Moves(to=(OrderStatus.CONFIRMED,), reason="refund_failed: card_declined"),
    **{(s, "canceled"): Moves(to=(OrderStatus.CANCELLED,), asks=("release",), reason=STRIPE_CANCELED_REASON,
                              payment=PaymentStatus.CANCELED) for s in OPEN_WITH_INTENT},
    # The order's own void coming back: only the payment it shows changes.
    ("cancelled-when-paid", "canceled"): Moves(payment=PaymentStatus.CANCELED),
    ("expired-when-payment-pending", "canceled"): Moves(payment=PaymentStatus.CANCELED),
    **{(s, "refunded"): Moves(
        to=(OrderStatus.REFUNDED,), asks=("restock",),
        payment=OrderPayment(intent_id=INTENT, client_secret=SECRET, status=PaymentStatus.REFUNDED, refunded=TOTAL),
    ) for s in (OrderStatus.CONFIRMED, OrderStatus.REFUNDING)},
    # Part of a sold order refunded in Stripe: recorded on its payment; the status stays, no unit moves.
    **{(s, "partially-refunded"): Moves(payment=OrderPayment(
        intent_id=INTENT, client_secret=SECRET, status=PaymentStatus.PARTIALLY_REFUNDED,
        refunded=Money(amount=300, currency="USD"),
    )) for s in (OrderStatus.CONFIRMED, OrderStatus.REFUNDING)},
    ("pending", "cancel"): Moves(to=(OrderStatus.CANCELLED,), asks=("release",), reason=CANCELLED_REASON),
    **{(s, "cancel"): Moves(to=(OrderStatus.CANCELLED,), asks=("release", "void"), reason=CANCELLED_REASON)
       for s in OPEN_WITH_INTENT},
    ("confirmed", "cancel"): Moves(to=(OrderStatus.REFUNDING,), asks=("refund",), reason=CANCELLED_REASON),
    **{(s, "expire"): Moves(to=(OrderStatus.EXPIRED,), asks=("release", "void"), reason=EXPIRED_REASON)
       for s in UNPAID},
}


def restock() -> list[AdjustStock]:
    """The refund's AdjustStock per line: its id is fixed by the order and the SKU, so a replay repeats it."""
    return [
        AdjustStock(adjustment_id=uuid.uuid5(ORDER_ID, f"refund:{sku}"), sku=sku, delta=qty,
                    reason=f"order {ORDER_ID} refunded")
        for sku, qty in LINES
    ]


def expected_events(before: Order, moves: Moves, reason: str | None) -> list:
    statuses = [before.status, *moves.to]
    asks = {
        "capture": lambda: [CapturePayment(order_id=ORDER_ID)],
        "commit": lambda: [CommitStock(order_id=ORDER_ID, sku=sku) for sku, _ in LINES],
        "release": lambda: releases(LINES, reason),
        "void": lambda: void(reason),
        "refund": lambda: [RefundPayment(order_id=ORDER_ID, reason=reason)],
        "restock": restock,
    }
    return [
        # Only the capture's confirmation carries the lines (not a refund that failed back to `confirmed`).
        *(changed(new, old, reason=reason, total=before.total, bought="commit" in moves.asks)
          for old, new in zip(statuses, statuses[1:])),
        *(event for ask in moves.asks for event in asks[ask]()),
    ]


def expected_payment(before: OrderPayment | None, moves: Moves) -> OrderPayment | None:
    if isinstance(moves.payment, OrderPayment):
        return moves.payment
    if moves.payment == KEEP or before is None:
        return before
    return before.model_copy(update={"status": moves.payment})


@pytest.mark.parametrize(
    ("state", "event"),
    [
        pytest.param(state, event, id=f"{state}-{event}")
        for state in STATES
        for event in EVENTS
    ],
)
def test_every_event_from_every_status(decide, order_in, state, event):
    # Given an order in `state`
    status, after = STATES[state]
    order = order_in(status, after=after)
    moves = TRANSITIONS.get((state, event), NO_CHANGE)

    # When a payment event, a cancel or a hold expiry arrives (late enough for any hold to be over)
    decision = decide(order, EVENTS[event], T_EVENT)

    # Then the order enters exactly the table's statuses, in its history and each one announced, with the
    # table's reason; it asks for what the table says; it keeps its intent and secret, and its hold only
    # while it is unpaid; anything the table does not list changes nothing and emits nothing
    reason = order.reason if moves.reason == KEEP else moves.reason
    final = moves.to[-1] if moves.to else order.status
    assert decision.state == order.model_copy(update={
        "status": final,
        "history": (*order.history, *(StatusEntry(status=s, at=T_EVENT) for s in moves.to)),
        "reason": reason,
        "hold_expires_at": T1 + TTL if final in UNPAID else None,
        "payment": expected_payment(order.payment, moves),
        # A captured order awaits shipment (streams/tables/shipping.py).
        "fulfilment": "awaiting_shipment" if final == OrderStatus.CONFIRMED and order.status != final else order.fulfilment,
    })
    assert decision.events == expected_events(order, moves, reason)


def test_the_table_lists_only_states_and_events_that_exist():
    # Given the transition table above
    # When its keys are checked against the states and events the table test runs
    # Then a typo cannot silently turn a transition into an expected no-change
    assert {state for state, _ in TRANSITIONS} <= set(STATES)
    assert {event for _, event in TRANSITIONS} <= set(EVENTS)


@pytest.mark.parametrize(
    ("status", "payment_status"),
    [
        (OrderStatus.PAYMENT_PENDING, PaymentStatus.AWAITING_PAYMENT),
        (OrderStatus.PAID, PaymentStatus.AUTHORIZED),
        (OrderStatus.CONFIRMED, PaymentStatus.CAPTURED),
        (OrderStatus.REFUNDING, PaymentStatus.CAPTURED),  # the refund is asked for, not done
        (OrderStatus.REFUNDED, PaymentStatus.REFUNDED),
    ],
)
def test_the_order_shows_its_intent_status_and_keeps_the_client_secret(order_in, status, payment_status):
    # Given an order taken along the payment path
    # When it reaches `status`
    order = order_in(status)

    # Then it shows the intent's status, still with the secret the customer pays with, and no hold once paid
    refunded_amount = TOTAL if status == OrderStatus.REFUNDED else None
    assert order.payment == OrderPayment(intent_id=INTENT, client_secret=SECRET, status=payment_status,
                                         refunded=refunded_amount)
    assert order.hold_expires_at == (T1 + TTL if status == OrderStatus.PAYMENT_PENDING else None)


def test_refund_restock_ids_are_fixed_by_order_and_sku(decide, order_in):
    # Given a refunding order, and the same order under another id
    order = order_in(OrderStatus.REFUNDING)
    other_id = uuid.UUID(int=8)
    other = order.model_copy(update={"order_id": other_id})

    # When its refund is decided twice (a replay: another time, another envelope) and the other order's once
    first = decide(order, refunded(), T_REFUNDED).events[1:]
    again = decide(order, refunded(), T_EVENT).events[1:]
    elsewhere = decide(other, PaymentRefunded(order_id=other_id, intent_id=INTENT, amount=TOTAL)).events[1:]

    # Then the replay repeats the same adjustment ids (inventory applies them once), every SKU has its own,
    # and another order's refund never reuses them (it would be dropped as a repeat)
    ids = [event.adjustment_id for event in first]
    assert again == first
    assert len(set(ids)) == len(LINES)
    assert [event.sku for event in elsewhere] == [sku for sku, _ in LINES]
    assert not {event.adjustment_id for event in elsewhere} & set(ids)


# --- refunds made in Stripe: partial, several, then the rest ------------------------------------


def test_partial_refunds_add_up_on_the_order_and_move_no_stock(decide, order_in):
    # Given a confirmed order of 2265 USD (1 x 250 + 2 x 1000 + 3 x 5)
    order = order_in(OrderStatus.CONFIRMED)

    # When Stripe refunds 300 of it, then 500 more (800 so far), the second told twice
    first = decide(order, partially_refunded(300, 300), T_EVENT)
    second = decide(first.state, partially_refunded(500, 800), T_EVENT)
    replayed = decide(second.state, partially_refunded(500, 800), T_EVENT)

    # Then the order stays confirmed with no new history, shows 300 and then 800 USD refunded, and
    # nothing is asked of inventory or anyone else; the repeat changes nothing
    assert first.state.status == second.state.status == OrderStatus.CONFIRMED
    assert second.state.history == order.history
    assert first.state.payment == OrderPayment(intent_id=INTENT, client_secret=SECRET,
                                               status=PaymentStatus.PARTIALLY_REFUNDED,
                                               refunded=Money(amount=300, currency="USD"))
    assert second.state.payment.refunded == Money(amount=800, currency="USD")
    assert first.events == second.events == []
    assert replayed == Decision(second.state)


def test_an_earlier_partial_refund_arriving_late_does_not_lower_the_amount(decide, order_in):
    # Given a confirmed order that shows 800 USD refunded
    order = decide(order_in(OrderStatus.CONFIRMED), partially_refunded(800, 800), T_EVENT).state

    # When the news of the first 300 arrives after it
    decision = decide(order, partially_refunded(300, 300), T_EVENT)

    # Then nothing changes
    assert decision == Decision(order)


def test_the_refund_that_completes_partial_ones_restocks_every_unit_once(decide, order_in):
    # Given a confirmed order with 800 of its 2265 USD refunded
    order = decide(order_in(OrderStatus.CONFIRMED), partially_refunded(800, 800), T_EVENT).state

    # When the rest is refunded (Stripe's refund of the whole charge), and that news arrives twice
    done = decide(order, refunded(), T_REFUNDED)
    again = decide(done.state, refunded(), T_EVENT)

    # Then the order is refunded, shows the whole 2265 USD back, and puts back 1 A, 2 B and 3 C, once
    assert done.state.status == OrderStatus.REFUNDED
    assert done.state.payment.refunded == Money(amount=2265, currency="USD")
    assert done.state.payment.status == PaymentStatus.REFUNDED
    assert done.events == [changed(OrderStatus.REFUNDED, OrderStatus.CONFIRMED, total=TOTAL), *restock()]
    assert [(e.sku, e.delta) for e in done.events[1:]] == [("A", 1), ("B", 2), ("C", 3)]
    assert again == Decision(done.state)
    # ... and a partial refund's news arriving after it changes nothing either
    assert decide(done.state, partially_refunded(300, 300), T_EVENT) == Decision(done.state)


def test_a_partially_refunded_order_can_still_be_cancelled_for_the_rest(decide, order_in):
    # Given a confirmed order with 300 USD refunded in Stripe
    order = decide(order_in(OrderStatus.CONFIRMED), partially_refunded(300, 300), T_EVENT).state

    # When the customer cancels it
    decision = decide(order, cancel_cmd(), T_EVENT)

    # Then it asks for the refund (of what is left, Stripe's default) as any confirmed order does
    assert decision.state.status == OrderStatus.REFUNDING
    assert decision.events[1:] == [RefundPayment(order_id=ORDER_ID, reason=CANCELLED_REASON)]


# --- history ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "after", "expected"),
    [
        ("pending", None, [("pending", T0)]),
        ("rejected", None, [("pending", T0), ("rejected", T1)]),
        ("reserved", None, [("pending", T0), ("reserved", T1)]),
        ("cancelled", "reserved", [("pending", T0), ("reserved", T1), ("cancelled", T2)]),
        ("expired", "reserved", [("pending", T0), ("reserved", T1), ("expired", T1 + TTL)]),
        ("payment_pending", None, [("pending", T0), ("reserved", T1), ("payment_pending", T_INTENT)]),
        ("paid", None, [("pending", T0), ("reserved", T1), ("payment_pending", T_INTENT), ("paid", T_PAID)]),
        (
            "cancelled",
            "paid",
            [("pending", T0), ("reserved", T1), ("payment_pending", T_INTENT), ("paid", T_PAID), ("cancelled", T2)],
        ),
        (
            "expired",
            "payment_pending",
            [("pending", T0), ("reserved", T1), ("payment_pending", T_INTENT), ("expired", T1 + TTL)],
        ),
        (
            "refunded",
            None,
            [
                ("pending", T0), ("reserved", T1), ("payment_pending", T_INTENT), ("paid", T_PAID),
                ("confirmed", T_CONFIRMED), ("refunding", T2), ("refunded", T_REFUNDED),
            ],
        ),
    ],
)
def test_history_records_each_status_with_its_time(order_in, status, after, expected):
    # Given an order brought through its transitions at known times
    # When its history is read
    # Then it lists each status it went through, when it got there
    order = order_in(status, after=after)
    assert order.history == tuple(StatusEntry(status=s, at=at) for s, at in expected)


# --- unknown orders and foreign events ---------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        reserved_result("A", 1), refused_result("A", 1), released_result("A", 1), cancel_cmd(), expire_cmd(),
        *(EVENTS[name] for name in ["created", "authorized", "captured", "failed-capture", "canceled", "refunded"]),
    ],
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
        # the payment commands the orders agent writes, and inventory's commit
        RequestPayment(order_id=ORDER_ID, customer=CUSTOMER, amount=TOTAL),
        CapturePayment(order_id=ORDER_ID),
        CancelPayment(order_id=ORDER_ID, reason="r"),
        RefundPayment(order_id=ORDER_ID, reason="r"),
        CommitStock(order_id=ORDER_ID, sku="A"),
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
