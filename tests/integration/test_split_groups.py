"""Payments split from reservations: one worker runs `--agents catalog,inventory,orders,campaigns`,
another `--agents payments`, each its own consumer group. An order is reserved by the first,
gets its PaymentIntent from the second, and the gateway reads it from the worker that owns it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import Api
from tests.harness import Stack
from tests.integration.conftest import WEBHOOK_SECRET
from tests.integration.orders_api import place, settled


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, stripe_mock: str) -> Iterator[Stack]:
    started = Stack(bootstrap=kafka_bootstrap, name="split",
                    extra_env={"STRIPE_API_BASE": stripe_mock, "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET})
    try:
        started.start_worker(0, agents="catalog,inventory,orders,campaigns")
        started.start_worker(1, agents="payments")
        started.start_gateway()
        yield started
    finally:
        started.stop()


@pytest.fixture
def api(seeded_api: Api) -> Api:
    return seeded_api


async def test_an_order_is_reserved_by_one_group_and_paid_through_the_other(api: Api, stack: Stack) -> None:
    order_id = await place(api, "split-alice", {"MUG-1": 1})
    order = await settled(api, order_id, "split-alice")
    assert order["status"] == "payment_pending" and order["payment"]["intent_id"]
    assert f"group {stack.app_id}-payments)" in stack.workers[1].log_path.read_text()
