"""Holds expire by timers whose deadlines live in a changelogged table: stock comes back on time,
also when the worker restarted between the reservation and the deadline."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.conftest import Api, read_topic, token
from tests.harness import Stack, eventually_async
from tests.integration.orders_api import place, settled, stock

HOLD_TTL_SECONDS = 8
STACK_ENV = {"FC_HOLD_TTL_SECONDS": str(HOLD_TTL_SECONDS)}


@pytest.fixture
def api(seeded_api: Api) -> Api:
    return seeded_api


async def expired_and_released(api: Api, order_id: str, customer: str, sku: str, reserved_before: int) -> None:
    reply = await api.get(f"/v1/orders/{order_id}?wait=30&known=payment_pending", token("customer", sub=customer))
    assert reply.body["status"] == "expired" and reply.body["reason"].startswith("hold_expired")
    assert [h["status"] for h in reply.body["history"]] == ["pending", "reserved", "payment_pending", "expired"]

    async def released() -> bool:
        return (await stock(api, sku))["reserved"] == reserved_before

    await eventually_async(released, 30, f"{sku}'s held units coming back")


async def test_an_unpaid_hold_expires_and_gives_the_stock_back(api: Api) -> None:
    before = (await stock(api, "MUG-1"))["reserved"]
    order_id = await place(api, "slow-payer", {"MUG-1": 4})
    assert (await settled(api, order_id, "slow-payer"))["status"] == "payment_pending"
    assert (await stock(api, "MUG-1"))["reserved"] == before + 4
    await expired_and_released(api, order_id, "slow-payer", "MUG-1", before)


async def test_a_hold_expires_after_the_worker_restarted_in_between(api: Api, stack: Stack) -> None:
    before = (await stock(api, "CUP-1"))["reserved"]
    order_id = await place(api, "restart-payer", {"CUP-1": 2})
    assert (await settled(api, order_id, "restart-payer"))["status"] == "payment_pending"
    # When the worker dies right after the reservation and comes back
    stack.workers[0].kill()
    await asyncio.to_thread(stack.start_worker, 0)
    await asyncio.to_thread(stack.wait_ready)
    # Then the restored deadline still expires the hold, asked for once
    await expired_and_released(api, order_id, "restart-payer", "CUP-1", before)
    asked = [json.loads(m.value()) for m in read_topic(stack.bootstrap, stack.topic("orders.commands"))]
    assert [a["type"] for a in asked if a["payload"]["order_id"] == order_id] == ["PlaceOrder", "ExpireOrderHold"]
