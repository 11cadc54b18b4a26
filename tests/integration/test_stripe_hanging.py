"""A Stripe that accepts connections and never answers slows payments only: the reservations of
every order settle while their payment calls hang, and each payment step then fails cleanly at the
connector's deadline, cancelling its order and giving its units back."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.conftest import Api, token
from tests.harness import eventually_async
from tests.integration.conftest import WEBHOOK_SECRET
from tests.integration.orders_api import place, settled, stock
from tests.integration.stubs import HangingServer

ORDERS = 12
DEADLINE_SECONDS = 20


@pytest.fixture(scope="module")
def hanging_stripe() -> Iterator[HangingServer]:
    with HangingServer().running() as server:
        yield server


@pytest.fixture(scope="module")
def stack_env(hanging_stripe: HangingServer) -> dict[str, str]:
    return {"STRIPE_API_BASE": hanging_stripe.url, "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET, "FC_STRIPE_ATTEMPTS": "1",
            "FC_STRIPE_TIMEOUT": str(DEADLINE_SECONDS), "FC_STRIPE_CALL_DEADLINE": str(DEADLINE_SECONDS)}


@pytest.fixture
def api(seeded_api: Api) -> Api:
    return seeded_api


async def test_a_hanging_stripe_holds_up_payments_only(api: Api, hanging_stripe: HangingServer) -> None:
    # Given a Stripe that never answers
    before = (await stock(api, "MUG-1"))["reserved"]
    # When a burst of orders comes in
    customers = [f"hang-{n}" for n in range(ORDERS)]
    order_ids = await asyncio.gather(*(place(api, customer, {"MUG-1": 1}) for customer in customers))

    # Then every order is reserved while every payment call still hangs: none has failed yet
    reserved = await asyncio.gather(*(settled(api, order_id, customer, waypoints={"pending"})
                                      for order_id, customer in zip(order_ids, customers, strict=True)))
    assert [order["status"] for order in reserved] == ["reserved"] * ORDERS
    assert (await stock(api, "MUG-1"))["reserved"] == before + ORDERS
    # (every order's payment call is open at once: the calls of different orders do not wait for each other)

    async def every_call_hanging() -> bool:
        return hanging_stripe.accepted == ORDERS

    await eventually_async(every_call_hanging, DEADLINE_SECONDS / 2, "a hanging call per order")
    still = await asyncio.gather(*(api.get(f"/v1/orders/{order_id}", token("customer", sub=customer))
                                   for order_id, customer in zip(order_ids, customers, strict=True)))
    assert [reply.body["status"] for reply in still] == ["reserved"] * ORDERS

    # And then each payment step fails at the deadline: the order is cancelled and its unit comes back
    ended = await asyncio.gather(*(settled(api, order_id, customer, timeout=DEADLINE_SECONDS * 4,
                                           waypoints={"pending", "reserved"})
                                   for order_id, customer in zip(order_ids, customers, strict=True)))
    assert {order["status"] for order in ended} == {"cancelled"}
    assert all("payment provider unavailable" in order["reason"] for order in ended)
    assert hanging_stripe.accepted == ORDERS

    async def units_back() -> bool:
        return (await stock(api, "MUG-1"))["reserved"] == before

    await eventually_async(units_back, 30, "every held unit coming back")
