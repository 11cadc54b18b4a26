"""Checks that a burst of orders settled exactly once: every accepted order ends reserved or
rejected, exactly the reserved orders hold units, and each status change was published once.
Shared by the crash, fault and scaling tests."""

from __future__ import annotations

import asyncio
import json
import random
from collections import defaultdict
from typing import Any

import aiohttp

from tests.conftest import Api, read_topic
from tests.harness import WORKER_READ_HEADERS, Stack
from tests.integration.orders_api import settled, stock

SKUS = ("MUG-1", "POT-1", "CUP-1")


def burst(seed: int, orders: int) -> list[dict[str, int]]:
    rng = random.Random(seed)
    return [{sku: rng.randint(1, 2) for sku in rng.sample(SKUS, rng.randint(1, 2))} for _ in range(orders)]


async def levels(stack: Stack, api: Api) -> dict[str, tuple[dict[str, Any], dict[str, int]]]:
    """Each SKU's stock and holds before a test (the module's stack serves several tests)."""
    return {sku: (await stock(api, sku), await held_by_order(stack, sku)) for sku in SKUS}


async def each_settled_once(api: Api, stack: Stack, accepted: list[tuple[str, str]],
                            opening: dict[str, tuple[dict[str, Any], dict[str, int]]]) -> None:
    # Then every accepted order ends reserved (and waits for its payment) or rejected ...
    orders = await asyncio.gather(*(settled(api, order_id, customer) for order_id, customer in accepted))
    assert len(orders) == len(accepted)
    assert {o["status"] for o in orders} <= {"payment_pending", "rejected"}
    assert any(o["status"] == "payment_pending" for o in orders) and any(o["status"] == "rejected" for o in orders)
    # (a rejected order's releases may still be on their way to the SKUs: let the agents finish)
    await asyncio.to_thread(stack.wait_drained)
    # ... for every SKU exactly the reserved orders hold units, with their quantities; stock is untouched ...
    expected_holds: dict[str, dict[str, int]] = {sku: dict(opening[sku][1]) for sku in SKUS}
    for o in orders:
        if o["status"] == "payment_pending":
            for line in o["lines"]:
                expected_holds[line["sku"]][o["order_id"]] = line["quantity"]
    for sku in SKUS:
        level = await stock(api, sku)
        holds = await held_by_order(stack, sku)
        assert holds == expected_holds[sku], (sku, describe_hold_difference(holds, expected_holds[sku], orders))
        assert (level["on_hand"], level["reserved"]) == (opening[sku][0]["on_hand"], sum(holds.values())), sku
        assert level["available"] >= 0
    # ... and each order's status changes were published once each, never twice
    events = read_topic(stack.bootstrap, stack.topic("orders.events"))
    ours = {order_id for order_id, _ in accepted}
    transitions: dict[str, list[str]] = defaultdict(list)
    for message in events:
        payload = json.loads(message.value())["payload"]
        if payload["order_id"] in ours:
            transitions[payload["order_id"]].append(payload["status"])
    assert len(transitions) == len(accepted)
    for o in orders:
        expected = ["pending", "reserved", "payment_pending"] if o["status"] == "payment_pending" else ["pending", "rejected"]
        assert transitions[o["order_id"]] == expected, o["order_id"]


async def held_by_order(stack: Stack, sku: str) -> dict[str, int]:
    """The SKU's holds (order id -> units) as the inventory table stores them, read from the worker
    that owns the SKU (the others answer 421)."""
    answers = []
    async with aiohttp.ClientSession(headers=WORKER_READ_HEADERS) as session:
        for worker in [w for w in stack.workers.values() if w.running]:
            async with session.get(f"{worker.url}/state/inventory", params={"key": f"acme/{sku}"}) as reply:
                if reply.status == 200:
                    return dict((await reply.json())["holds"])
                answers.append((worker.url, reply.status, await reply.text()))
    raise AssertionError(f"no worker served acme/{sku}: {answers}")


def describe_hold_difference(holds: dict[str, int], expected: dict[str, int], orders: list[dict[str, Any]]) -> str:
    by_id = {o["order_id"]: o for o in orders}
    unexpected = {order_id: (units, by_id.get(order_id, {}).get("status")) for order_id, units in holds.items()
                  if expected.get(order_id) != units}
    missing = {order_id: units for order_id, units in expected.items() if holds.get(order_id) != units}
    return f"held but not by a reserved order (units, order status): {unexpected}; reserved but not held: {missing}"
