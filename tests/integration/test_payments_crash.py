"""One PaymentIntent per order, even when the payment step is reprocessed after a worker SIGKILL."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import defaultdict

import pytest

from tests.conftest import Api, read_topic
from tests.harness import RUNS_DIR, Stack
from tests.integration.orders_api import place, settled

ORDERS = 60
CALL_LOG = RUNS_DIR / f"stripe-calls-{uuid.uuid4().hex[:8]}.jsonl"
STACK_ENV = {"FC_STRIPE_CALL_LOG": str(CALL_LOG)}


@pytest.fixture
def api(seeded_api: Api) -> Api:
    return seeded_api


async def test_a_sigkill_during_the_payment_step_makes_no_second_intent(api: Api, stack: Stack) -> None:
    # Given a burst of orders that all get their stock
    gate = asyncio.Semaphore(8)

    async def order(n: int) -> tuple[str, str]:
        async with gate:
            return await place(api, f"payer-{n}", {"TEA-1": 1}), f"payer-{n}"

    # When the worker is SIGKILLed while the first third's payment intents are being created
    accepted = await asyncio.gather(*(order(n) for n in range(ORDERS // 3)))
    stack.workers[0].kill()
    rest = asyncio.gather(*(order(n) for n in range(ORDERS // 3, ORDERS)))
    await asyncio.to_thread(stack.start_worker, 0)
    accepted += await rest
    await asyncio.to_thread(stack.wait_ready)

    # Then every order waits for its payment with an intent ...
    orders = await asyncio.gather(*(settled(api, order_id, customer) for order_id, customer in accepted))
    assert [o["status"] for o in orders] == ["payment_pending"] * ORDERS
    await asyncio.to_thread(stack.wait_drained)
    # ... that was recorded once per order, and is the one the order shows
    created: dict[str, list[str]] = defaultdict(list)
    for message in read_topic(stack.bootstrap, stack.topic("payments.events")):
        event = json.loads(message.value())
        if event["type"] == "PaymentIntentCreated":
            created[event["payload"]["order_id"]].append(event["payload"]["intent_id"])
    assert {o["order_id"]: [o["payment"]["intent_id"]] for o in orders} == created
    # ... and every create call the connector made for an order, repeated or not, carried the same
    # idempotency key, so Stripe made one intent per order
    keys: dict[str, set[str]] = defaultdict(set)
    calls = [json.loads(line) for line in CALL_LOG.read_text().splitlines()]
    for call in calls:
        if call["action"] == "create":
            keys[call["order_id"]].add(call["idempotency_key"])
    assert keys == {o["order_id"]: {f"order-{o['order_id']}-create"} for o in orders}
    repeated = sum(1 for call in calls if call["action"] == "create") - ORDERS
    print(f"{repeated} create calls were repeats of an earlier call with the same idempotency key")
