"""Payments split from reservations: one worker runs `--agents
catalog,inventory,orders,campaigns,shipping,co_purchases,recommendations`, another `--agents payments`,
each its own consumer group. An order is reserved by the first,
gets its PaymentIntent from the second, and the gateway reads it from the worker that owns it."""

from __future__ import annotations

import pytest

from tests.conftest import Api
from tests.harness import Stack
from tests.integration.orders_api import place, settled


STACK_WORKERS = [{"agents": "catalog,inventory,orders,campaigns,shipping,co_purchases,recommendations"},
                 {"agents": "payments"}]


@pytest.fixture
def api(seeded_api: Api) -> Api:
    return seeded_api


async def test_an_order_is_reserved_by_one_group_and_paid_through_the_other(api: Api, stack: Stack) -> None:
    order_id = await place(api, "split-alice", {"MUG-1": 1})
    order = await settled(api, order_id, "split-alice")
    assert order["status"] == "payment_pending" and order["payment"]["intent_id"]
    assert f"group {stack.app_id}-payments)" in stack.workers[1].log_path.read_text()
