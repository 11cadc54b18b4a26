"""Order helpers shared by the order tests: place, wait for a terminal status, read stock."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api, token

# On the way to a resting status: a reserved order asks for its payment at once.
WAYPOINTS = {"pending", "reserved"}
VENDOR = token("vendor")


async def place(api: Api, customer: str, lines: dict[str, int], key: str | None = None) -> str:
    headers = {"Idempotency-Key": key} if key else None
    reply = await api.post(
        "/v1/orders", token("customer", sub=customer), {"lines": [{"sku": s, "quantity": q} for s, q in lines.items()]},
        headers=headers,
    )
    assert reply.status == 202, reply.body
    return str(reply.body["order_id"])


async def settled(api: Api, order_id: str, customer: str, timeout: float = 60.0,
                  waypoints: frozenset[str] | set[str] = WAYPOINTS) -> dict[str, Any]:
    """Long-poll the order until its status is none of `waypoints` (by default: until it waits for
    payment or has ended), the storefront's way, without a polling loop."""
    # An accepted order may still be in the topic behind a restarting worker: wait for it to appear.
    return await api.poll_past(f"/v1/orders/{order_id}", token("customer", sub=customer), waypoints, timeout,
                               appear_wait=20)


async def stock(api: Api, sku: str) -> dict[str, Any]:
    reply = await api.get(f"/v1/inventory/{sku}", VENDOR)
    assert reply.status == 200, reply.body
    return dict(reply.body)
