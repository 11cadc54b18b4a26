"""Payment decisions (streams/tables/payments.py): one PaymentIntent per order, its calls and its webhooks."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from streams.models import (
    CancelOrder,
    CancelPayment,
    CapturePayment,
    CommitStock,
    Money,
    OrderLine,
    Payment,
    PaymentAuthorized,
    PaymentCanceled,
    PaymentCaptured,
    PaymentFailed,
    PaymentIntentCreated,
    PaymentPartiallyRefunded,
    PaymentRefunded,
    PaymentStatus,
    PlaceOrder,
    RefundedCharge,
    RefundPayment,
    RequestPayment,
    StockReserved,
    StripeEventReceived,
)
from streams.tables import payments
from streams.tables.decision import Decision, UnhandledEvent
from streams.tables.payments import REMEMBERED_STRIPE_EVENTS, StripeCall, StripeOutcome

TENANT = "acme"
ORDER_ID = uuid.UUID(int=11)
AMOUNT = Money(amount=2598, currency="EUR")
INTENT = "pi_order11"
SECRET = "pi_order11_secret_xyz"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
DECLINED = "Your card was declined."
CANCEL_REASON = "cancelled by cust-1"
REFUND_REASON = "cancelled by cust-1 after the capture"

CAPTURABLE = "payment_intent.amount_capturable_updated"
SUCCEEDED = "payment_intent.succeeded"
FAILED = "payment_intent.payment_failed"
CANCELED = "payment_intent.canceled"
REFUNDED = "charge.refunded"
PROCESSING = "payment_intent.processing"  # a type the decision does not act on
WEBHOOK_KINDS = [CAPTURABLE, SUCCEEDED, FAILED, CANCELED, REFUNDED, PROCESSING]

STATUSES = [
    PaymentStatus.AWAITING_PAYMENT,
    PaymentStatus.AUTHORIZED,
    PaymentStatus.CAPTURED,
    PaymentStatus.PARTIALLY_REFUNDED,
    PaymentStatus.REFUNDED,
    PaymentStatus.FAILED,
    PaymentStatus.CANCELED,
]


def payment(status: str, *, intent_id: str | None = INTENT, seen: tuple[str, ...] = (),
            refunded: Money | None = None) -> Payment:
    return Payment(
        order_id=ORDER_ID, tenant=TENANT, amount=AMOUNT, status=status, intent_id=intent_id, seen_stripe_events=seen,
        refunded=refunded,
    )


def webhook(kind: str, event_id: str = "evt_1", *, intent_id: str | None = INTENT,
            failure_message: str | None = None, charge: RefundedCharge | None = None) -> StripeEventReceived:
    return StripeEventReceived(order_id=ORDER_ID, stripe_event_id=event_id, stripe_type=kind, intent_id=intent_id,
                               failure_message=failure_message, charge=charge)


def failed(action: str, reason: str, intent_id: str | None = INTENT) -> PaymentFailed:
    return PaymentFailed(order_id=ORDER_ID, intent_id=intent_id, action=action, reason=reason)


def canceled(reason: str) -> PaymentCanceled:
    return PaymentCanceled(order_id=ORDER_ID, intent_id=INTENT, reason=reason)


AUTHORIZED_EVENT = PaymentAuthorized(order_id=ORDER_ID, intent_id=INTENT, amount=AMOUNT)
CAPTURED_EVENT = PaymentCaptured(order_id=ORDER_ID, intent_id=INTENT, amount=AMOUNT)
REFUNDED_EVENT = PaymentRefunded(order_id=ORDER_ID, intent_id=INTENT, amount=AMOUNT)


COMMANDS = {
    "request": RequestPayment(order_id=ORDER_ID, customer="cust-1", amount=AMOUNT),
    "capture": CapturePayment(order_id=ORDER_ID),
    "cancel": CancelPayment(order_id=ORDER_ID, reason=CANCEL_REASON),
    "refund": RefundPayment(order_id=ORDER_ID, reason=REFUND_REASON),
    "webhook": webhook(SUCCEEDED),
}
# Every state a payment can be in; a create that failed left no intent.
STATES = {
    "none": None,
    **{status: payment(status) for status in STATUSES},
    "failed-at-create": payment(PaymentStatus.FAILED, intent_id=None),
}
OK = StripeOutcome(intent_id=INTENT, client_secret=SECRET)
REFUSED = StripeOutcome(error=DECLINED)


@pytest.fixture
def decide(make_envelope):
    """payments.decide for one event, with the outcome of the Stripe call if one was made."""

    def run(state: Payment | None, payload, outcome: StripeOutcome | None = None) -> Decision[Payment | None]:
        return payments.decide(state, make_envelope(payload, tenant=TENANT, at=NOW), NOW, outcome=outcome)

    return run


@pytest.fixture
def plan(make_envelope):
    def run(state: Payment | None, payload) -> StripeCall | None:
        return payments.plan(state, make_envelope(payload, tenant=TENANT, at=NOW))

    return run


# --- plan: which Stripe call each command needs ---------------------------------------------------

PLANS = {
    ("none", "request"): StripeCall("create"),
    (PaymentStatus.AWAITING_PAYMENT, "cancel"): StripeCall("cancel", INTENT),
    (PaymentStatus.AUTHORIZED, "capture"): StripeCall("capture", INTENT),
    (PaymentStatus.AUTHORIZED, "cancel"): StripeCall("cancel", INTENT),
    (PaymentStatus.CAPTURED, "refund"): StripeCall("refund", INTENT),
    # The order was cancelled while paid but its capture, queued first, won: voiding the money is a refund.
    (PaymentStatus.CAPTURED, "cancel"): StripeCall("refund", INTENT),
    # Part of it was refunded in Stripe: the refund (or a late cancel) gives back the rest.
    (PaymentStatus.PARTIALLY_REFUNDED, "refund"): StripeCall("refund", INTENT),
    (PaymentStatus.PARTIALLY_REFUNDED, "cancel"): StripeCall("refund", INTENT),
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("state", STATES)
def test_plan_for_every_status_and_command(plan, state, command):
    # Given a payment in `state` (or none yet)
    # When the agent asks which Stripe call `command` needs
    call = plan(STATES[state], COMMANDS[command])

    # Then only the table's pairs call Stripe (a webhook never does); every other pair needs no call
    assert call == PLANS.get((state, command))


def test_the_plan_table_lists_only_states_and_commands_that_exist():
    assert {state for state, _ in PLANS} <= set(STATES)
    assert {command for _, command in PLANS} <= set(COMMANDS)


# --- decide: create ----------------------------------------------------------------------------


def test_a_created_intent_awaits_the_customer(decide):
    # Given no payment for the order
    # When its RequestPayment is decided with the intent Stripe created
    decision = decide(None, COMMANDS["request"], OK)

    # Then the payment awaits the customer under the event's tenant, and the secret goes to the order
    assert decision.state == Payment(
        order_id=ORDER_ID, tenant=TENANT, amount=AMOUNT, status=PaymentStatus.AWAITING_PAYMENT, intent_id=INTENT
    )
    assert decision.events == [
        PaymentIntentCreated(order_id=ORDER_ID, intent_id=INTENT, client_secret=SECRET, amount=AMOUNT)
    ]


@pytest.mark.parametrize(
    ("outcome", "reason"),
    [
        (REFUSED, DECLINED),  # Stripe's message becomes the reason
        (StripeOutcome(error="payment provider unavailable: timeout"), "payment provider unavailable: timeout"),
        (StripeOutcome(), "Stripe returned no PaymentIntent"),
    ],
    ids=["refused", "unavailable", "no-intent"],
)
def test_a_create_that_failed_fails_the_payment_with_the_reason(decide, outcome, reason):
    # Given no payment for the order
    # When its RequestPayment is decided with a create that Stripe refused or did not answer
    decision = decide(None, COMMANDS["request"], outcome)

    # Then the payment failed with that reason and no intent, and the order is told so
    assert decision.state == Payment(
        order_id=ORDER_ID, tenant=TENANT, amount=AMOUNT, status=PaymentStatus.FAILED, reason=reason
    )
    assert decision.events == [failed("create", reason, intent_id=None)]


@pytest.mark.parametrize("state", [name for name in STATES if name != "none"])
def test_a_second_request_is_a_no_op_without_an_outcome(decide, state):
    # Given a payment already requested for the order, in any status
    existing = STATES[state]

    # When a RequestPayment arrives again, even for another amount, and no Stripe call was made for it
    again = RequestPayment(order_id=ORDER_ID, customer="cust-2", amount=Money(amount=1, currency="USD"))
    decision = decide(existing, again)

    # Then the first intent stands and nothing is emitted
    assert decision == Decision(existing)


def test_a_first_request_without_the_create_outcome_is_an_error(decide):
    with pytest.raises(ValueError, match="outcome of its create call"):
        decide(None, COMMANDS["request"])


# --- decide: capture, cancel and refund -----------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "command", "outcome", "expected_status", "expected_reason", "expected_event"),
    [
        (PaymentStatus.AUTHORIZED, "capture", OK, PaymentStatus.CAPTURED, None, CAPTURED_EVENT),
        (PaymentStatus.AUTHORIZED, "capture", REFUSED, PaymentStatus.AUTHORIZED, DECLINED, failed("capture", DECLINED)),
        (PaymentStatus.AWAITING_PAYMENT, "cancel", OK, PaymentStatus.CANCELED, CANCEL_REASON, canceled(CANCEL_REASON)),
        (PaymentStatus.AUTHORIZED, "cancel", OK, PaymentStatus.CANCELED, CANCEL_REASON, canceled(CANCEL_REASON)),
        (PaymentStatus.AUTHORIZED, "cancel", REFUSED, PaymentStatus.AUTHORIZED, DECLINED, failed("cancel", DECLINED)),
        (PaymentStatus.CAPTURED, "refund", OK, PaymentStatus.REFUNDED, REFUND_REASON, REFUNDED_EVENT),
        (PaymentStatus.CAPTURED, "refund", REFUSED, PaymentStatus.CAPTURED, DECLINED, failed("refund", DECLINED)),
        (PaymentStatus.CAPTURED, "cancel", OK, PaymentStatus.REFUNDED, CANCEL_REASON, REFUNDED_EVENT),
        (PaymentStatus.CAPTURED, "cancel", REFUSED, PaymentStatus.CAPTURED, DECLINED, failed("refund", DECLINED)),
        (PaymentStatus.PARTIALLY_REFUNDED, "refund", OK, PaymentStatus.REFUNDED, REFUND_REASON, REFUNDED_EVENT),
        (PaymentStatus.PARTIALLY_REFUNDED, "refund", REFUSED, PaymentStatus.PARTIALLY_REFUNDED, DECLINED,
         failed("refund", DECLINED)),
    ],
    ids=[
        "capture", "capture-refused", "cancel-awaiting", "cancel-authorized", "cancel-refused", "refund",
        "refund-refused", "cancel-captured-refunds", "cancel-captured-refund-refused", "refund-the-rest",
        "refund-the-rest-refused",
    ],
)
def test_a_call_outcome_moves_the_payment(decide, status, command, outcome, expected_status, expected_reason,
                                          expected_event):
    # Given a payment whose status needs a Stripe call for `command`
    state = payment(status, seen=("evt_earlier",))

    # When the command is decided with what Stripe answered
    decision = decide(state, COMMANDS[command], outcome)

    # Then the payment moves (or, refused, stays with Stripe's message as reason) and says what happened; a
    # refund shows the whole amount back
    refunded = AMOUNT if expected_status == PaymentStatus.REFUNDED else None
    assert decision.state == state.model_copy(
        update={"status": expected_status, "reason": expected_reason, "refunded": refunded})
    assert decision.events == [expected_event]


@pytest.mark.parametrize(
    ("state", "command"),
    [
        (state, command)
        for state in STATES
        for command in ["capture", "cancel", "refund"]
        if state != "none" and (state, command) not in PLANS
    ],
)
def test_a_command_that_needs_no_call_is_a_no_op(decide, state, command):
    # Given a payment for which `command` is already done or no longer possible
    existing = STATES[state]

    # When the command is decided, even with an outcome at hand
    decision = decide(existing, COMMANDS[command], OK)

    # Then nothing changes and nothing is emitted
    assert decision == Decision(existing)


@pytest.mark.parametrize("command", ["capture", "cancel", "refund"])
def test_a_command_that_needs_a_call_without_its_outcome_is_an_error(decide, command):
    state = payment(PaymentStatus.CAPTURED if command == "refund" else PaymentStatus.AUTHORIZED)
    with pytest.raises(ValueError, match="needs the outcome"):
        decide(state, COMMANDS[command])


@pytest.mark.parametrize("command", ["capture", "cancel", "refund", "webhook"])
def test_commands_and_webhooks_for_an_order_without_payment_carry_nothing(decide, command):
    # Given no payment was ever requested for the order
    # When a command or a webhook arrives for it
    decision = decide(None, COMMANDS[command], OK)

    # Then there is still no payment and nothing is emitted
    assert decision == Decision(None)


# --- webhooks --------------------------------------------------------------------------------

STRIPE_CANCELED = "the PaymentIntent was canceled in Stripe"
# Forward only: awaiting_payment -> authorized -> captured -> refunded, or to failed / canceled before a capture.
WEBHOOK_MOVES = {
    (PaymentStatus.AWAITING_PAYMENT, CAPTURABLE): (PaymentStatus.AUTHORIZED, None, AUTHORIZED_EVENT),
    (PaymentStatus.AWAITING_PAYMENT, SUCCEEDED): (PaymentStatus.CAPTURED, None, CAPTURED_EVENT),
    (PaymentStatus.AUTHORIZED, SUCCEEDED): (PaymentStatus.CAPTURED, None, CAPTURED_EVENT),
    (PaymentStatus.AWAITING_PAYMENT, FAILED): (PaymentStatus.FAILED, DECLINED, failed("authorize", DECLINED)),
    **{
        (status, CANCELED): (PaymentStatus.CANCELED, STRIPE_CANCELED, canceled(STRIPE_CANCELED))
        for status in (PaymentStatus.AWAITING_PAYMENT, PaymentStatus.AUTHORIZED)
    },
    # A charge.refunded without the charge's amounts (written before they were carried) is a full refund.
    **{(status, REFUNDED): (PaymentStatus.REFUNDED, "refunded in Stripe", REFUNDED_EVENT)
       for status in (PaymentStatus.CAPTURED, PaymentStatus.PARTIALLY_REFUNDED)},
}


@pytest.mark.parametrize("kind", WEBHOOK_KINDS)
@pytest.mark.parametrize("status", STATUSES)
def test_every_webhook_from_every_status_moves_only_forward(decide, status, kind):
    # Given a payment in `status` that has seen one earlier webhook
    state = payment(status, seen=("evt_0",))

    # When a new webhook of `kind` for its intent arrives
    decision = decide(state, webhook(kind, "evt_1", failure_message=DECLINED))

    # Then its id is remembered; only the table's moves change the status and say so, the rest change nothing else
    seen = state.model_copy(update={"seen_stripe_events": ("evt_0", "evt_1")})
    if (status, kind) not in WEBHOOK_MOVES:
        assert decision == Decision(seen)
        return
    new_status, reason, event = WEBHOOK_MOVES[(status, kind)]
    refunded = AMOUNT if new_status == PaymentStatus.REFUNDED else None
    assert decision.state == seen.model_copy(update={"status": new_status, "reason": reason, "refunded": refunded})
    assert decision.events == [event]


def test_a_payment_failure_without_a_message_gets_a_generic_reason(decide):
    decision = decide(payment(PaymentStatus.AWAITING_PAYMENT), webhook(FAILED))
    assert decision.state.reason == "the payment failed"
    assert decision.events == [failed("authorize", "the payment failed")]


@pytest.mark.parametrize("kind", [CAPTURABLE, SUCCEEDED, FAILED, CANCELED])
def test_a_webhook_seen_before_is_a_no_op(decide, kind):
    # Given a payment still awaiting the customer that has already applied Stripe event evt_dup
    state = payment(PaymentStatus.AWAITING_PAYMENT, seen=("evt_a", "evt_dup", "evt_b"))

    # When evt_dup is delivered again (at least once), as a type that would move the payment
    decision = decide(state, webhook(kind, "evt_dup"))

    # Then it is not applied a second time: nothing changes, not even the remembered ids
    assert decision == Decision(state)


@pytest.mark.parametrize(
    ("state", "intent_id"),
    [
        (payment(PaymentStatus.AWAITING_PAYMENT), "pi_another"),
        (payment(PaymentStatus.AWAITING_PAYMENT), None),  # an event that names no intent
        (payment(PaymentStatus.CAPTURED), "pi_another"),
        (payment(PaymentStatus.FAILED, intent_id=None), "pi_another"),  # the create failed
    ],
    ids=["another-intent", "no-intent", "captured-another-intent", "no-intent-of-ours"],
)
@pytest.mark.parametrize("kind", WEBHOOK_KINDS)
def test_a_webhook_for_another_intent_only_records_its_id(decide, state, intent_id, kind):
    # Given a payment
    # When a webhook arrives for another intent than the order's
    decision = decide(state, webhook(kind, "evt_other", intent_id=intent_id))

    # Then its id is remembered and nothing else changes
    assert decision == Decision(state.model_copy(update={"seen_stripe_events": ("evt_other",)}))


@pytest.mark.parametrize(
    "count",
    [REMEMBERED_STRIPE_EVENTS - 1, REMEMBERED_STRIPE_EVENTS, REMEMBERED_STRIPE_EVENTS + 1,
     2 * REMEMBERED_STRIPE_EVENTS + 7],
)
def test_the_seen_events_keep_only_the_newest(decide, count):
    # Given a payment and `count` distinct webhooks for its intent
    ids = [f"evt_{n}" for n in range(count)]
    state = payment(PaymentStatus.AWAITING_PAYMENT)

    # When they are applied one after another
    for event_id in ids:
        state = decide(state, webhook(PROCESSING, event_id)).state

    # Then only the latest REMEMBERED_STRIPE_EVENTS ids are kept, oldest first
    assert state.seen_stripe_events == tuple(ids[-REMEMBERED_STRIPE_EVENTS:])


def test_a_forgotten_webhook_delivered_again_cannot_move_the_payment_back(decide):
    # Given a payment authorized by evt_auth, then captured, then REMEMBERED_STRIPE_EVENTS more webhooks later
    state = decide(payment(PaymentStatus.AWAITING_PAYMENT), webhook(CAPTURABLE, "evt_auth")).state
    state = decide(state, COMMANDS["capture"], OK).state
    for n in range(REMEMBERED_STRIPE_EVENTS):
        state = decide(state, webhook(PROCESSING, f"evt_{n}")).state
    assert "evt_auth" not in state.seen_stripe_events

    # When evt_auth is delivered once more
    decision = decide(state, webhook(CAPTURABLE, "evt_auth"))

    # Then the forward-only rule still keeps the capture
    assert decision.state.status == PaymentStatus.CAPTURED
    assert decision.events == []


# --- refunds as Stripe reports them: charge.refunded with the charge's amount_refunded so far -------------


def eur(amount: int) -> Money:
    return Money(amount=amount, currency="EUR")


def refund_news(so_far: int, event_id: str, *, refunded: bool | None = None, currency: str = "EUR",
                charge_amount: int = 2598) -> StripeEventReceived:
    """Stripe's charge.refunded for the 2598 EUR charge of the order, `so_far` of it refunded (cumulative)."""
    charge = RefundedCharge(charge_id="ch_order11", amount=charge_amount, amount_refunded=so_far, currency=currency,
                            refunded=so_far >= charge_amount if refunded is None else refunded)
    return webhook(REFUNDED, event_id, charge=charge)


def partial(added: int, so_far: int) -> PaymentPartiallyRefunded:
    return PaymentPartiallyRefunded(order_id=ORDER_ID, intent_id=INTENT, amount=eur(added), refunded=eur(so_far))


def test_a_partial_refund_is_recorded_as_partial(decide):
    # Given a payment of 2598 EUR, captured
    state = payment(PaymentStatus.CAPTURED)

    # When Stripe refunds 500 of it
    decision = decide(state, refund_news(500, "evt_r1"))

    # Then the payment is partially refunded with 500 EUR back, says that 500 were added, and is not refunded
    assert decision.state == state.model_copy(update={
        "status": PaymentStatus.PARTIALLY_REFUNDED, "refunded": eur(500), "seen_stripe_events": ("evt_r1",),
    })
    assert decision.events == [partial(500, 500)]


def test_several_partial_refunds_add_up(decide):
    # Given a captured payment of 2598 EUR
    state = payment(PaymentStatus.CAPTURED)

    # When Stripe refunds 500, then 300 more (its charge then says 800 refunded), then 1000 more (1800)
    emitted = []
    for so_far, event_id in [(500, "evt_r1"), (800, "evt_r2"), (1800, "evt_r3")]:
        decision = decide(state, refund_news(so_far, event_id))
        state, emitted = decision.state, [*emitted, *decision.events]

    # Then 1800 EUR are back, in three steps of 500, 300 and 1000, and the payment is still partially refunded
    assert state.status == PaymentStatus.PARTIALLY_REFUNDED and state.refunded == eur(1800)
    assert emitted == [partial(500, 500), partial(300, 800), partial(1000, 1800)]


def test_the_refund_that_completes_partial_ones_is_the_full_refund(decide):
    # Given a payment of 2598 EUR with 800 refunded
    state = payment(PaymentStatus.PARTIALLY_REFUNDED, refunded=eur(800))

    # When Stripe refunds the remaining 1798 (its charge then says 2598 refunded, refunded: true)
    decision = decide(state, refund_news(2598, "evt_rest"))

    # Then the payment is refunded with the whole 2598 EUR back, announced as the full refund
    assert decision.state == state.model_copy(update={
        "status": PaymentStatus.REFUNDED, "refunded": eur(2598), "reason": "refunded in Stripe",
        "seen_stripe_events": ("evt_rest",),
    })
    assert decision.events == [REFUNDED_EVENT]


@pytest.mark.parametrize(
    ("so_far", "flag", "charge_amount", "expected_back"),
    [
        (2598, True, 2598, 2598),  # the whole charge in one refund
        (2598, False, 2598, 2598),  # amount_refunded reaching the amount is full, whatever the flag says
        (2000, True, 2598, 2000),  # Stripe's flag: refunded in full (of a charge captured for 2000)
    ],
    ids=["in-one-go", "amount-reached", "stripe-says-refunded"],
)
def test_a_full_refund_refunds_the_payment(decide, so_far, flag, charge_amount, expected_back):
    state = payment(PaymentStatus.CAPTURED)
    decision = decide(state, refund_news(so_far, "evt_full", refunded=flag, charge_amount=charge_amount))
    assert decision.state.status == PaymentStatus.REFUNDED and decision.state.refunded == eur(expected_back)
    assert decision.events == [REFUNDED_EVENT]


def test_a_refund_event_delivered_twice_counts_once(decide):
    # Given a captured payment to which Stripe's evt_r1 (500 refunded) was applied
    state = decide(payment(PaymentStatus.CAPTURED), refund_news(500, "evt_r1")).state

    # When evt_r1 is delivered again
    decision = decide(state, refund_news(500, "evt_r1"))

    # Then nothing changes: still 500 back, nothing announced
    assert decision == Decision(state)
    assert state.refunded == eur(500)


def test_an_earlier_refund_event_arriving_late_changes_only_the_seen_ids(decide):
    # Given a payment whose charge said 800 refunded (evt_r2)
    state = decide(payment(PaymentStatus.CAPTURED), refund_news(800, "evt_r2")).state

    # When the event of the first refund (500 so far, evt_r1) arrives after it
    decision = decide(state, refund_news(500, "evt_r1"))

    # Then 800 stay back, nothing is announced, and evt_r1 is remembered
    assert decision == Decision(state.model_copy(update={"seen_stripe_events": ("evt_r2", "evt_r1")}))


def test_a_forgotten_refund_event_delivered_again_adds_nothing(decide):
    # Given a payment with 500 and then 800 refunded, and REMEMBERED_STRIPE_EVENTS webhooks since
    state = decide(payment(PaymentStatus.CAPTURED), refund_news(500, "evt_r1")).state
    state = decide(state, refund_news(800, "evt_r2")).state
    for n in range(REMEMBERED_STRIPE_EVENTS):
        state = decide(state, webhook(PROCESSING, f"evt_{n}")).state
    assert "evt_r1" not in state.seen_stripe_events and "evt_r2" not in state.seen_stripe_events

    # When both are delivered once more
    for event in (refund_news(500, "evt_r1"), refund_news(800, "evt_r2")):
        decision = decide(state, event)
        # Then each is only remembered: the figures are totals, not additions, so 800 stay back
        assert decision.events == [] and decision.state.refunded == eur(800)
        state = decision.state


def test_a_refund_of_a_charge_in_another_currency_is_not_this_payments(decide):
    state = payment(PaymentStatus.CAPTURED)
    decision = decide(state, refund_news(500, "evt_usd", currency="USD"))
    assert decision == Decision(state.model_copy(update={"seen_stripe_events": ("evt_usd",)}))


def test_partial_refunds_then_our_own_refund_of_the_rest_then_its_webhook(decide, plan):
    # Given a captured payment with 500 refunded in Stripe
    state = decide(payment(PaymentStatus.CAPTURED), refund_news(500, "evt_r1")).state

    # When the order is cancelled (our refund of the rest: Stripe's default), then Stripe reports it (2598 so far)
    assert plan(state, COMMANDS["refund"]) == StripeCall("refund", INTENT)
    ours = decide(state, COMMANDS["refund"], OK)
    late = decide(ours.state, refund_news(2598, "evt_rest"))

    # Then the payment is refunded once, the whole 2598 back; Stripe's report of it adds nothing
    assert ours.state.status == PaymentStatus.REFUNDED and ours.state.refunded == eur(2598)
    assert ours.events == [REFUNDED_EVENT]
    assert late.events == [] and late.state.status == PaymentStatus.REFUNDED


# --- out-of-order and overlapping sequences --------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "expected_status", "expected_events"),
    [
        # succeeded delivered before amount_capturable_updated: captured once, the late one changes nothing
        ([SUCCEEDED, CAPTURABLE], PaymentStatus.CAPTURED, [PaymentCaptured]),
        # a payment_failed delivered after the authorization is stale
        ([CAPTURABLE, FAILED], PaymentStatus.AUTHORIZED, [PaymentAuthorized]),
        # a refund webhook before the capture is refunding nothing; the capture then goes through
        ([CAPTURABLE, REFUNDED, "capture"], PaymentStatus.CAPTURED, [PaymentAuthorized, PaymentCaptured]),
        ([CAPTURABLE, CANCELED, SUCCEEDED], PaymentStatus.CANCELED, [PaymentAuthorized, PaymentCanceled]),
        # our own call's webhook afterwards is no second event
        ([CAPTURABLE, "capture", SUCCEEDED], PaymentStatus.CAPTURED, [PaymentAuthorized, PaymentCaptured]),
        ([CAPTURABLE, "cancel", CANCELED], PaymentStatus.CANCELED, [PaymentAuthorized, PaymentCanceled]),
        ([CAPTURABLE, "capture", "refund", REFUNDED, SUCCEEDED], PaymentStatus.REFUNDED,
         [PaymentAuthorized, PaymentCaptured, PaymentRefunded]),
        # a cancel after the capture (the order's cancel lost the race) gives the money back, announced once
        ([CAPTURABLE, "capture", "cancel"], PaymentStatus.REFUNDED,
         [PaymentAuthorized, PaymentCaptured, PaymentRefunded]),
        ([CAPTURABLE, "capture", "cancel", REFUNDED], PaymentStatus.REFUNDED,
         [PaymentAuthorized, PaymentCaptured, PaymentRefunded]),
    ],
    ids=[
        "succeeded-first", "failed-after-authorized", "refund-before-capture", "canceled-then-succeeded",
        "capture-then-webhook", "cancel-then-webhook", "refund-then-webhooks", "cancel-after-capture",
        "cancel-after-capture-then-webhook",
    ],
)
def test_sequences_in_any_order_leave_a_sensible_payment(decide, plan, steps, expected_status, expected_events):
    # Given a payment awaiting the customer
    state = payment(PaymentStatus.AWAITING_PAYMENT)
    emitted = []

    # When webhooks (each with its own id) and commands (with Stripe's answer when a call is made) arrive in this order
    for n, step in enumerate(steps):
        event = COMMANDS[step] if step in COMMANDS else webhook(step, f"evt_{n}")
        outcome = OK if plan(state, event) is not None else None
        decision = decide(state, event, outcome)
        state, emitted = decision.state, [*emitted, *decision.events]

    # Then the payment ends where the table says, having announced each move exactly once
    assert state.status == expected_status
    assert [type(event) for event in emitted] == expected_events


# --- foreign events --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        PlaceOrder(order_id=ORDER_ID, customer="c", lines=(OrderLine(sku="A", quantity=1),), request_hash="h"),
        CancelOrder(order_id=ORDER_ID, requested_by="c"),
        StockReserved(order_id=ORDER_ID, sku="A", quantity=1, unit_price=AMOUNT),
        CommitStock(order_id=ORDER_ID, sku="A"),
        CAPTURED_EVENT,  # the payments agent's own output
        PaymentIntentCreated(order_id=ORDER_ID, intent_id=INTENT, client_secret=SECRET, amount=AMOUNT),
    ],
    ids=lambda payload: type(payload).__name__,
)
@pytest.mark.parametrize("state", [None, payment(PaymentStatus.AUTHORIZED)], ids=["no-payment", "authorized"])
def test_events_payments_do_not_handle_raise_unhandled_event(decide, state, payload):
    # Given no payment, or an authorized one
    # When an event of another context reaches the payment decision
    # Then it is refused as unhandled (the agent dead-letters it)
    with pytest.raises(UnhandledEvent, match=type(payload).__name__):
        decide(state, payload, OK)
