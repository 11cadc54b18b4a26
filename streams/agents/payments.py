"""Payments agent: the one place that calls Stripe about an order's PaymentIntent.

Inputs: `payments.commands` (RequestPayment, CapturePayment, CancelPayment, RefundPayment, from the
orders agent) and `payments.webhooks` (StripeEventReceived, from the gateway), both keyed by order
id and co-partitioned, so one worker owns an order's payment and everything said about it.
State: table `payments` (Payment), same key and partitions.
Outputs: `payments.events` (PaymentIntentCreated, PaymentAuthorized, PaymentCaptured, PaymentFailed,
PaymentCanceled, PaymentRefunded, PaymentPartiallyRefunded; key order id).

An event that needs a Stripe call has it run on the worker's event loop, bounded by the
connector's deadline, while events of other orders go on (streams/runtime/task.py, outside
calls); its outcome and outputs commit in a later transaction. A worker killed after the call and
before that commit processes the event again and repeats the call with the same idempotency key
(`order-<id>-<action>`), and Stripe answers with the intent it already made.
A call that Stripe refuses, or that still fails after the retries, fails that payment step with
the reason; the orders agent then cancels the order and gives the stock back.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime

from connectors.stripe import PaymentProvider, PaymentRejected, StripeUnavailable
from streams import topics
from streams.models import Envelope, Payment
from streams.runtime.agent import Agent, Table, Tables
from streams.tables import payments
from streams.tables.decision import Decision
from streams.tables.payments import StripeCall, StripeOutcome

TABLE = Table("payments", Payment)


async def call_stripe(provider: PaymentProvider, call: StripeCall, event: Envelope) -> StripeOutcome:
    order_id = event.payload.order_id  # type: ignore[attr-defined]
    try:
        if call.action == "create":
            amount = event.payload.amount  # type: ignore[attr-defined]
            intent = await provider.create_intent(order_id, event.tenant, amount.amount, amount.currency)
            return StripeOutcome(intent_id=intent.id, client_secret=intent.client_secret)
        assert call.intent_id is not None
        if call.action == "refund":
            await provider.refund(order_id, call.intent_id)
            return StripeOutcome(intent_id=call.intent_id)
        act = provider.capture if call.action == "capture" else provider.cancel
        intent = await act(order_id, call.intent_id)
        return StripeOutcome(intent_id=intent.id, client_secret=intent.client_secret)
    except PaymentRejected as refused:
        return StripeOutcome(error=refused.message)
    except StripeUnavailable as unavailable:
        return StripeOutcome(error=f"payment provider unavailable: {unavailable}")


def agent(provider: PaymentProvider) -> Agent:
    async def decide_after_call(state: Payment | None, event: Envelope, now: datetime,
                                call: StripeCall) -> Decision[Payment | None]:
        outcome = await call_stripe(provider, call, event)
        return payments.decide(state, event, now, outcome=outcome)

    def decide(state: Payment | None, event: Envelope, now: datetime, tables: Tables
               ) -> Decision[Payment | None] | Awaitable[Decision[Payment | None]]:
        call = payments.plan(state, event)
        if call is None:
            return payments.decide(state, event, now)
        return decide_after_call(state, event, now, call)

    return Agent(name="payments", sources=(topics.PAYMENTS_COMMANDS, topics.PAYMENTS_WEBHOOKS), table=TABLE,
                 decide=decide, calls_outside=True)
