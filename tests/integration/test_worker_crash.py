"""Exactly-once under a crash: a worker SIGKILLed in the middle of a burst of orders and started
again leaves no unit reserved twice and no accepted order lost or doubled."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter, defaultdict

import pytest

from tests.conftest import Api, read_topic
from tests.harness import Stack
from tests.integration.conftest import seed_catalog_and_stock
from tests.integration.orders_api import place, settled, stock

SKUS = ("MUG-1", "POT-1", "CUP-1")
ORDERS = 150


@pytest.fixture
async def api(stack: Stack, http) -> Api:  # type: ignore[no-untyped-def]
    assert stack.gateway is not None
    api = Api(stack.gateway.url, http)
    await seed_catalog_and_stock(stack, api)
    return api


async def test_sigkill_mid_burst_loses_and_doubles_nothing(api: Api, stack: Stack) -> None:
    # Given stock for three SKUs and a burst of orders, more than the stock can serve
    opening = {sku: (await stock(api, sku))["on_hand"] for sku in SKUS}
    rng = random.Random(7)
    wanted = [
        {sku: rng.randint(1, 2) for sku in rng.sample(SKUS, rng.randint(1, 2))} for _ in range(ORDERS)
    ]
    accepted: list[tuple[str, str]] = []
    gate = asyncio.Semaphore(8)

    async def order(n: int) -> None:
        async with gate:
            customer = f"crash-{n}"
            accepted.append((await place(api, customer, wanted[n]), customer))

    # When the worker is SIGKILLed after a third of the orders and started again
    first = asyncio.gather(*(order(n) for n in range(ORDERS // 3)))
    await first
    stack.workers[0].kill()
    rest = asyncio.gather(*(order(n) for n in range(ORDERS // 3, ORDERS)))
    await asyncio.to_thread(stack.start_worker, 0)
    await rest
    await asyncio.to_thread(stack.wait_ready)

    # Then every accepted order ends reserved or rejected ...
    orders = await asyncio.gather(*(settled(api, order_id, customer) for order_id, customer in accepted))
    assert len(orders) == ORDERS
    assert {o["status"] for o in orders} <= {"reserved", "rejected"}
    assert any(o["status"] == "reserved" for o in orders) and any(o["status"] == "rejected" for o in orders)
    # ... for every SKU the units held equal the quantities of the reserved orders, stock is untouched ...
    held: Counter[str] = Counter()
    for o in orders:
        if o["status"] == "reserved":
            held.update({line["sku"]: line["quantity"] for line in o["lines"]})
    for sku in SKUS:
        level = await stock(api, sku)
        assert (level["on_hand"], level["reserved"]) == (opening[sku], held[sku]), sku
        assert level["available"] >= 0
    # ... and each order's status changes were published once each, never twice
    events = read_topic(stack.bootstrap, stack.topic("orders.events"))
    transitions: dict[str, list[str]] = defaultdict(list)
    for message in events:
        payload = json.loads(message.value())["payload"]
        transitions[payload["order_id"]].append(payload["status"])
    assert len(transitions) == ORDERS
    for o in orders:
        assert transitions[o["order_id"]] == ["pending", o["status"]], o["order_id"]
