"""Payments: one Stripe PaymentIntent per order, keyed by order id.

A command may need a call to Stripe. The agent asks `plan(state, event)` which call, makes it
through the Stripe connector and hands the outcome to `decide(state, event, now, outcome)`; both
are pure. Every call carries an idempotency key derived from the order and the action, so an event
reprocessed after a crash repeats the call harmlessly: Stripe answers with the same intent.

Webhooks (`StripeEventReceived`) come at least once and in any order. Each Stripe event id is
applied once, a webhook for another intent than the order's is ignored, and the status only moves
forward (awaiting_payment -> authorized -> captured [-> partially_refunded] -> refunded, or to
failed / canceled), so a late or repeated webhook never undoes a later state.

Refunds as Stripe has them: every refund of a charge, partial or full, sends `charge.refunded` with
the charge's `amount_refunded` so far (cumulative). The payment keeps the largest such figure: a
partial refund (less than the charge) records it, `partially_refunded`, and says how much it added
(`PaymentPartiallyRefunded`; no stock moves); the refund that completes the charge (Stripe's
`refunded` flag, or `amount_refunded` reaching the amount) is the full refund, `PaymentRefunded`, on
which the order restocks. Taking the maximum, not a sum, makes a redelivered or late event (an
earlier, smaller figure) change nothing even once its id is no longer remembered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from streams.models import (
    CancelPayment,
    CapturePayment,
    Envelope,
    Money,
    Payload,
    Payment,
    PaymentAuthorized,
    PaymentCanceled,
    PaymentCaptured,
    PaymentFailed,
    PaymentIntentCreated,
    PaymentPartiallyRefunded,
    PaymentRefunded,
    PaymentStatus,
    RefundPayment,
    RequestPayment,
    StripeEventReceived,
)
from streams.tables.decision import Decision, UnhandledEvent

REMEMBERED_STRIPE_EVENTS = 50
CANCELLABLE = (PaymentStatus.AWAITING_PAYMENT, PaymentStatus.AUTHORIZED)
# The money was taken and not all of it went back yet: a refund can still be made or reported.
REFUNDABLE = (PaymentStatus.CAPTURED, PaymentStatus.PARTIALLY_REFUNDED)


@dataclass(frozen=True)
class StripeCall:
    """A call the event needs: create, capture, cancel or refund (of `intent_id`)."""

    action: str
    intent_id: str | None = None


@dataclass(frozen=True)
class StripeOutcome:
    """What Stripe answered: the intent, or `error` with Stripe's message when it refused."""

    intent_id: str | None = None
    client_secret: str | None = None
    error: str | None = None


def plan(state: Payment | None, event: Envelope) -> StripeCall | None:
    payload = event.payload
    if isinstance(payload, RequestPayment):
        return StripeCall("create") if state is None else None
    if state is None or state.intent_id is None:
        return None
    if isinstance(payload, CapturePayment) and state.status == PaymentStatus.AUTHORIZED:
        return StripeCall("capture", state.intent_id)
    if isinstance(payload, CancelPayment) and state.status in CANCELLABLE:
        return StripeCall("cancel", state.intent_id)
    if isinstance(payload, CancelPayment) and state.status in REFUNDABLE:
        # The order was cancelled while paid, but its CapturePayment was queued first and won: the money
        # was taken for an order that gave its stock back, so voiding it means refunding it.
        return StripeCall("refund", state.intent_id)
    if isinstance(payload, RefundPayment) and state.status in REFUNDABLE:
        return StripeCall("refund", state.intent_id)
    return None


def _failed(state: Payment, action: str, reason: str) -> PaymentFailed:
    return PaymentFailed(order_id=state.order_id, intent_id=state.intent_id, action=action, reason=reason)


def _moved(state: Payment, status: str, event: Payload, **changes: object) -> Decision[Payment]:
    return Decision(state.model_copy(update={"status": status, **changes}), [event])


def request(event: Envelope, command: RequestPayment, outcome: StripeOutcome) -> Decision[Payment]:
    payment = Payment(
        order_id=command.order_id, tenant=event.tenant, amount=command.amount, status=PaymentStatus.AWAITING_PAYMENT
    )
    if outcome.error is not None or outcome.intent_id is None:
        reason = outcome.error or "Stripe returned no PaymentIntent"
        return _moved(payment, PaymentStatus.FAILED, _failed(payment, "create", reason), reason=reason)
    created = PaymentIntentCreated(
        order_id=command.order_id, intent_id=outcome.intent_id, client_secret=outcome.client_secret,
        amount=command.amount,
    )
    return Decision(payment.model_copy(update={"intent_id": outcome.intent_id}), [created])


def complete_call(state: Payment, call: StripeCall, outcome: StripeOutcome, reason: str) -> Decision[Payment]:
    """The result of a capture, cancel or refund that `plan` asked for."""
    assert state.intent_id is not None
    if outcome.error is not None:
        return Decision(state.model_copy(update={"reason": outcome.error}), [_failed(state, call.action, outcome.error)])
    if call.action == "capture":
        captured = PaymentCaptured(order_id=state.order_id, intent_id=state.intent_id, amount=state.amount)
        return _moved(state, PaymentStatus.CAPTURED, captured)
    if call.action == "cancel":
        canceled = PaymentCanceled(order_id=state.order_id, intent_id=state.intent_id, reason=reason)
        return _moved(state, PaymentStatus.CANCELED, canceled, reason=reason)
    # Stripe refunds what is left of the charge: with partial refunds before, the whole is back now.
    refunded = PaymentRefunded(order_id=state.order_id, intent_id=state.intent_id, amount=state.amount)
    return _moved(state, PaymentStatus.REFUNDED, refunded, reason=reason, refunded=state.amount)


def charge_refunded(state: Payment, received: StripeEventReceived) -> Decision[Payment]:
    """A `charge.refunded` for the payment's intent, captured and not yet refunded in full."""
    assert state.intent_id is not None
    charge, currency = received.charge, state.amount.currency
    before = state.refunded.amount if state.refunded is not None else 0
    if charge is None:
        # Written before webhooks carried the charge's amounts, when every refund was taken as full.
        refunded_in_full, so_far = True, state.amount.amount
    elif charge.currency != currency:
        return Decision(state)  # not a charge of this payment
    else:
        refunded_in_full = charge.refunded or charge.amount_refunded >= charge.amount
        so_far = max(before, charge.amount_refunded)
    if refunded_in_full:
        refunded = PaymentRefunded(order_id=state.order_id, intent_id=state.intent_id, amount=state.amount)
        return _moved(state, PaymentStatus.REFUNDED, refunded, reason="refunded in Stripe",
                      refunded=Money(amount=so_far, currency=currency))
    if so_far == before:
        return Decision(state)  # an earlier refund's event, late: already counted
    partial = PaymentPartiallyRefunded(
        order_id=state.order_id, intent_id=state.intent_id, amount=Money(amount=so_far - before, currency=currency),
        refunded=Money(amount=so_far, currency=currency),
    )
    return _moved(state, PaymentStatus.PARTIALLY_REFUNDED, partial, refunded=partial.refunded)


def webhook(state: Payment, received: StripeEventReceived) -> Decision[Payment]:
    if received.stripe_event_id in state.seen_stripe_events:
        return Decision(state)
    seen = (*state.seen_stripe_events[-(REMEMBERED_STRIPE_EVENTS - 1):], received.stripe_event_id)
    state = state.model_copy(update={"seen_stripe_events": seen})
    if state.intent_id is None or received.intent_id != state.intent_id:
        return Decision(state)  # not this order's current intent
    intent_id, status, kind = state.intent_id, state.status, received.stripe_type
    if kind == "payment_intent.amount_capturable_updated" and status == PaymentStatus.AWAITING_PAYMENT:
        authorized = PaymentAuthorized(order_id=state.order_id, intent_id=intent_id, amount=state.amount)
        return _moved(state, PaymentStatus.AUTHORIZED, authorized)
    if kind == "payment_intent.succeeded" and status in CANCELLABLE:
        captured = PaymentCaptured(order_id=state.order_id, intent_id=intent_id, amount=state.amount)
        return _moved(state, PaymentStatus.CAPTURED, captured)
    if kind == "payment_intent.payment_failed" and status == PaymentStatus.AWAITING_PAYMENT:
        reason = received.failure_message or "the payment failed"
        return _moved(state, PaymentStatus.FAILED, _failed(state, "authorize", reason), reason=reason)
    if kind == "payment_intent.canceled" and status in CANCELLABLE:
        reason = "the PaymentIntent was canceled in Stripe"
        canceled = PaymentCanceled(order_id=state.order_id, intent_id=intent_id, reason=reason)
        return _moved(state, PaymentStatus.CANCELED, canceled, reason=reason)
    if kind == "charge.refunded" and status in REFUNDABLE:
        return charge_refunded(state, received)
    return Decision(state)


def decide(
    state: Payment | None, event: Envelope, now: datetime, *, outcome: StripeOutcome | None = None
) -> Decision[Payment | None]:
    payload = event.payload
    if isinstance(payload, RequestPayment):
        if state is not None:
            return Decision(state)  # one intent per order, whatever is asked again
        if outcome is None:
            raise ValueError("a payment request needs the outcome of its create call")
        return request(event, payload, outcome)  # type: ignore[return-value]
    if not isinstance(payload, (CapturePayment, CancelPayment, RefundPayment, StripeEventReceived)):
        raise UnhandledEvent(f"payments do not handle {event.type}")
    if state is None:
        return Decision(None)  # nothing was ever requested for this order: nothing to apply
    if isinstance(payload, StripeEventReceived):
        return webhook(state, payload)  # type: ignore[return-value]
    call = plan(state, event)
    if call is None:
        return Decision(state)  # already done, or no longer possible
    if outcome is None:
        raise ValueError(f"{event.type} needs the outcome of its {call.action} call")
    reason = getattr(payload, "reason", "")
    return complete_call(state, call, outcome, reason)  # type: ignore[return-value]
