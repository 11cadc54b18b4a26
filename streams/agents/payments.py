"""Payments agent: the one place that calls Stripe about an order's PaymentIntent.

Inputs: `payments.commands` (RequestPayment, CapturePayment, CancelPayment, RefundPayment, from the
orders agent) and `payments.webhooks` (StripeEventReceived, from the gateway), both keyed by order
id and co-partitioned, so one worker owns an order's payment and everything said about it.
State: table `payments` (Payment), same key and partitions.
Outputs: `payments.events` (PaymentIntentCreated, PaymentAuthorized, PaymentCaptured, PaymentFailed,
PaymentCanceled, PaymentRefunded; key order id).

The Stripe call is made while the event is processed, before its transaction commits. A worker
killed after the call and before the commit reprocesses the event and repeats the call with the
same idempotency key (`order-<id>-<action>`), and Stripe answers with the intent it already made.
A call that Stripe refuses, or that still fails after the retries, fails that payment step with
the reason; the orders agent then cancels the order and gives the stock back.
"""

from __future__ import annotations

from datetime import datetime

from connectors.stripe import PaymentProvider, PaymentRejected, StripeUnavailable
from streams import topics
from streams.models import Envelope, Payment
from streams.processing import Processor, StateTable
from streams.tables import payments
from streams.tables.decision import Decision
from streams.tables.payments import StripeCall, StripeOutcome
from streams.worker import Worker


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


def register(worker: Worker, provider: PaymentProvider) -> StateTable[Payment]:
    table = StateTable(worker.table("payments"), Payment)

    async def decide(state: Payment | None, event: Envelope, now: datetime) -> Decision[Payment | None]:
        call = payments.plan(state, event)
        outcome = None if call is None else await call_stripe(provider, call, event)
        return payments.decide(state, event, now, outcome=outcome)

    sources = (topics.PAYMENTS_COMMANDS, topics.PAYMENTS_WEBHOOKS)
    processor = Processor(worker.binder, sources, table, decide, worker.watchers)

    @worker.app.agent(worker.binder.source(*sources), name="payments")
    async def payments_agent(stream):  # type: ignore[no-untyped-def]
        async for event in stream.events():
            await processor.handle(event)

    worker.serve_state(table)
    return table
