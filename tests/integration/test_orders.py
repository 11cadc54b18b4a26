"""Orders and inventory against the real broker: no oversell under a burst, all-or-nothing across
SKUs, idempotent placement, cancellation, visibility."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import Api, token
from tests.harness import eventually_async
from tests.integration.orders_api import VENDOR, place, settled, stock


@pytest.fixture
def api(seeded_api: Api) -> Api:
    return seeded_api


async def test_a_burst_of_orders_sells_the_last_units_exactly_once(api: Api) -> None:
    # Given POT-1 with 10 units and 40 customers who each want one
    assert (await stock(api, "POT-1"))["available"] == 10
    readings: list[int] = []
    burst_over = asyncio.Event()

    async def watch_stock() -> None:
        while not burst_over.is_set():
            readings.append((await stock(api, "POT-1"))["available"])

    watcher = asyncio.create_task(watch_stock())
    # When they all order at once
    customers = [f"burst-{n}" for n in range(40)]
    order_ids = await asyncio.gather(*(place(api, c, {"POT-1": 1}) for c in customers))
    orders = await asyncio.gather(*(settled(api, o, c) for o, c in zip(order_ids, customers, strict=True)))
    burst_over.set()
    await watcher
    # Then exactly 10 are reserved (and wait for payment), the rest rejected for lack of stock, and no
    # read ever saw less than 0
    statuses = [o["status"] for o in orders]
    assert statuses.count("payment_pending") == 10 and statuses.count("rejected") == 30
    assert all("insufficient_stock" in o["reason"] for o in orders if o["status"] == "rejected")
    assert await stock(api, "POT-1") == {"sku": "POT-1", "on_hand": 10, "reserved": 10, "available": 0}
    assert readings and min(readings) >= 0


async def test_an_order_with_one_short_line_reserves_nothing(api: Api) -> None:
    # Given CUP-1 in stock and BAG-1 in the catalog with no stock
    before = await stock(api, "CUP-1")
    # When an order asks for both
    order = await settled(api, await place(api, "multi", {"CUP-1": 2, "BAG-1": 1}), "multi")
    # Then it is rejected because of BAG-1, and CUP-1's hold is given back
    assert order["status"] == "rejected" and order["reason"].startswith("BAG-1: insufficient_stock")

    async def cup_restored() -> bool:
        return await stock(api, "CUP-1") == before

    await eventually_async(cup_restored, 30, "CUP-1's units coming back")


@pytest.mark.parametrize(
    ("lines", "reason"),
    [
        ({"NOPE-1": 1}, "NOPE-1: unknown_sku"),
        ({"MUG-1": 1, "USD-1": 1}, "mixed_currency"),
    ],
)
async def test_orders_that_cannot_be_priced_are_rejected(api: Api, lines: dict[str, int], reason: str) -> None:
    order = await settled(api, await place(api, "pricing", lines), "pricing")
    assert order["status"] == "rejected" and order["reason"].startswith(reason)


async def test_a_reserved_order_is_priced_from_the_catalog(api: Api) -> None:
    order = await settled(api, await place(api, "pricy", {"MUG-1": 2, "TEA-1": 3}), "pricy")
    assert order["status"] == "payment_pending"
    assert order["total"] == {"amount": 2 * 1299 + 3 * 450, "currency": "EUR"}
    assert [h["status"] for h in order["history"]] == ["pending", "reserved", "payment_pending"]
    assert {line["sku"]: line["unit_price"]["amount"] for line in order["lines"]} == {"MUG-1": 1299, "TEA-1": 450}


@pytest.mark.parametrize(
    "body",
    [
        {"lines": []},
        {"lines": [{"sku": "MUG-1", "quantity": 0}]},
        {"lines": [{"sku": "MUG-1", "quantity": 1}, {"sku": "MUG-1", "quantity": 2}]},
        {"items": []},
    ],
)
async def test_invalid_orders_are_refused_with_422(api: Api, body: object) -> None:
    reply = await api.post("/v1/orders", token("customer"), body)
    assert reply.status == 422 and reply.body["error"]["code"] == "invalid_body"


async def test_only_customers_place_orders(api: Api) -> None:
    reply = await api.post("/v1/orders", VENDOR, {"lines": [{"sku": "MUG-1", "quantity": 1}]})
    assert reply.status == 403


async def test_an_idempotency_key_replay_returns_the_same_order(api: Api) -> None:
    who = token("customer", sub="replayer")
    body = {"lines": [{"sku": "TEA-1", "quantity": 1}]}
    first = await api.post("/v1/orders", who, body, headers={"Idempotency-Key": "cart-42"})
    await settled(api, first.body["order_id"], "replayer")
    # When the same request comes again, and once more with another body
    again = await api.post("/v1/orders", who, body, headers={"Idempotency-Key": "cart-42"})
    changed = await api.post(
        "/v1/orders", who, {"lines": [{"sku": "TEA-1", "quantity": 2}]}, headers={"Idempotency-Key": "cart-42"}
    )
    # Then the replay is the same order with the same response, the changed body is refused
    assert (again.status, again.body) == (first.status, first.body)
    assert changed.status == 409 and changed.body["error"]["code"] == "idempotency_key_reused"
    # And another customer's identical key is another order
    other = await api.post("/v1/orders", token("customer", sub="someone-else"), body, headers={"Idempotency-Key": "cart-42"})
    assert other.body["order_id"] != first.body["order_id"]


async def test_concurrent_replays_of_one_key_make_one_order(api: Api) -> None:
    before = await stock(api, "CUP-1")
    order_ids = await asyncio.gather(*(place(api, "hasty", {"CUP-1": 1}, key="double-click") for _ in range(5)))
    assert len(set(order_ids)) == 1
    assert (await settled(api, order_ids[0], "hasty"))["status"] == "payment_pending"
    assert (await stock(api, "CUP-1"))["reserved"] == before["reserved"] + 1


async def test_cancel_gives_the_units_back(api: Api) -> None:
    order_id = await place(api, "canceller", {"MUG-1": 3})
    assert (await settled(api, order_id, "canceller"))["status"] == "payment_pending"
    held = await stock(api, "MUG-1")
    # Another customer and a vendor may not cancel it
    assert (await api.post(f"/v1/orders/{order_id}/cancel", token("customer", sub="stranger"))).status == 404
    assert (await api.post(f"/v1/orders/{order_id}/cancel", VENDOR)).status == 403
    # The customer may
    reply = await api.post(f"/v1/orders/{order_id}/cancel", token("customer", sub="canceller"))
    assert reply.status == 202
    done = await api.get(f"/v1/orders/{order_id}?wait=20&known=payment_pending", token("customer", sub="canceller"))
    assert done.body["status"] == "cancelled"

    async def released() -> bool:
        return (await stock(api, "MUG-1"))["reserved"] == held["reserved"] - 3

    await eventually_async(released, 30, "MUG-1's 3 units coming back")
    again = await api.post(f"/v1/orders/{order_id}/cancel", token("customer", sub="canceller"))
    assert again.status == 409 and again.body["error"]["code"] == "not_cancellable"


async def test_orders_are_visible_to_their_customer_and_the_tenant_staff_only(api: Api) -> None:
    order_id = await place(api, "owner", {"TEA-1": 1})
    await settled(api, order_id, "owner")
    assert (await api.get(f"/v1/orders/{order_id}", token("customer", sub="owner"))).status == 200
    assert (await api.get(f"/v1/orders/{order_id}", VENDOR)).status == 200
    assert (await api.get(f"/v1/orders/{order_id}", token("admin"))).status == 200
    assert (await api.get(f"/v1/orders/{order_id}", token("customer", sub="other"))).status == 404
    assert (await api.get(f"/v1/orders/{order_id}", token("vendor", tenant="globex"))).status == 404
    assert (await api.get("/v1/orders/not-a-uuid", VENDOR)).status == 404


async def test_stock_adjustments_that_would_go_negative_are_refused(api: Api) -> None:
    before = await stock(api, "TEA-1")
    reply = await api.post("/v1/inventory/TEA-1/adjustments", VENDOR, {"delta": -(before["on_hand"] + 1), "reason": "loss"})
    assert reply.status == 409 and reply.body["error"]["code"] == "insufficient_stock"
    assert await stock(api, "TEA-1") == before
    unknown = await api.post("/v1/inventory/GHOST-1/adjustments", VENDOR, {"delta": 5, "reason": "restock"})
    assert unknown.status == 404 and unknown.body["error"]["code"] == "unknown_sku"
    customer = await api.post("/v1/inventory/TEA-1/adjustments", token("customer"), {"delta": 5, "reason": "x"})
    assert customer.status == 403
