"""Recommendations on the real stack: confirmed orders (paid with signed Stripe webhooks) feed the
co-purchase counts, and `GET /v1/products/{sku}/recommendations` answers them.

Given the fixture catalog and a few orders of tenant acme confirmed (and one of tenant globex, with
a SKU of the same name), the answers match counts computed here from the fixture orders, by a plain
loop over them (not by the code under test); decay is neutralised by a huge half-life. The counts
stay the same across a SIGKILL of the worker and its restart, an order confirmed across that SIGKILL
is counted once, a product without history gets the tenant's popular ones, a product out of stock
is never recommended, and another tenant's products never appear."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from itertools import groupby, permutations
from typing import Any

import aiohttp
import pytest

from connectors.stripe_webhooks import sign
from devtools.stripe_trigger import build_event
from tests.conftest import Api, token
from tests.harness import WEBHOOK_SECRET, WORKER_READ_HEADERS, Stack, eventually_async

# Decay neutralised: a weight keeps 0.5 ** (elapsed / a million days) of itself, 1 to six decimals.
STACK_ENV = {"FC_RECOMMENDATION_HALF_LIFE_DAYS": "1000000"}

# The fixture orders of acme (all EUR; BAG-1 has no stock, USD-1 is never ordered).
ACME_ORDERS = [
    {"MUG-1": 1, "TEA-1": 2},
    {"MUG-1": 1, "TEA-1": 1, "POT-1": 1},
    {"MUG-1": 2, "CUP-1": 1},
    {"TEA-1": 1},
    {"TEA-1": 1, "POT-1": 1},
]
# Confirmed while the worker is SIGKILLed.
ACROSS_THE_CRASH = {"MUG-1": 1, "TEA-1": 1}
GLOBEX_PRODUCTS = {"MUG-1": "Globex mug", "GLX-1": "Globex gizmo"}
GLOBEX_ORDER = {"MUG-1": 1, "GLX-1": 1}
NAMES = {"MUG-1": "Stoneware mug", "TEA-1": "Green tea 100g", "POT-1": "Cast iron teapot", "CUP-1": "Espresso cup"}


def co_purchases(orders: list[dict[str, int]]) -> dict[str, Counter[str]]:
    """Per SKU, in how many orders each other SKU was bought with it."""
    counts: dict[str, Counter[str]] = {}
    for order in orders:
        for sku, other in permutations(order, 2):
            counts.setdefault(sku, Counter())[other] += 1
    return counts


def popularity(orders: list[dict[str, int]]) -> Counter[str]:
    return Counter(sku for order in orders for sku in order)


def expected(counts: Counter[str], limit: int, exclude: set[str] = frozenset()) -> list[tuple[str, float]]:
    ranked = sorted(((sku, float(n)) for sku, n in counts.items() if sku not in exclude), key=lambda i: (-i[1], i[0]))
    return ranked[:limit]


@pytest.fixture
def api(seeded_api: Api) -> Api:
    return seeded_api


async def confirmed(api: Api, tenant: str, sub: str, lines: dict[str, int], *, kill: Stack | None = None) -> str:
    """Place an order, pay it with a signed Stripe webhook and wait until it is confirmed; with
    `kill`, SIGKILL the worker right after the webhook is accepted and start it again."""
    who = token("customer", tenant=tenant, sub=sub)
    reply = await api.post("/v1/orders", who, {"lines": [{"sku": s, "quantity": q} for s, q in lines.items()]})
    assert reply.status == 202, reply.body
    path = f"/v1/orders/{reply.body['order_id']}"
    order = await api.poll_past(path, who, {"pending", "reserved"}, 60, appear_wait=20)
    assert order["status"] == "payment_pending", order
    event = build_event("payment_intent.amount_capturable_updated", order_id=uuid.UUID(order["order_id"]),
                        tenant=tenant, intent_id=order["payment"]["intent_id"], amount=order["total"]["amount"],
                        currency=order["total"]["currency"])
    body = json.dumps(event).encode()
    webhook = await api.post("/v1/payments/webhook", None, raw=body,
                             headers={"Stripe-Signature": sign(body, WEBHOOK_SECRET), "Content-Type": "application/json"})
    assert webhook.status == 200, webhook.body
    if kill is not None:
        kill.workers[0].kill()
        await asyncio.to_thread(kill.start_worker, 0)
        await asyncio.to_thread(kill.wait_ready)
    done = await api.poll_past(path, who, {"pending", "reserved", "payment_pending", "paid"}, 90, appear_wait=20)
    assert done["status"] == "confirmed", done
    return str(order["order_id"])


async def recommended(api: Api, sku: str, limit: int = 5, tenant: str = "acme") -> dict[str, Any]:
    reply = await api.get(f"/v1/products/{sku}/recommendations?limit={limit}", token("customer", tenant=tenant))
    assert reply.status == 200, reply.body
    return dict(reply.body)


def shown(answer: dict[str, Any]) -> list[tuple[str, float]]:
    """The answer's SKUs and scores (to six decimals), neighbours of equal score by SKU: the decay,
    tiny here, still ranks the later of two equal counts first."""
    found = [(item["sku"], round(item["score"], 6)) for item in answer["recommendations"]]
    return [pair for _, tied in groupby(found, key=lambda pair: pair[1]) for pair in sorted(tied)]


async def table(stack: Stack, key: str) -> dict[str, Any] | None:
    """The recommendations table's committed value of `key`, from the worker (one worker: it owns all)."""
    async with aiohttp.ClientSession(headers=WORKER_READ_HEADERS) as session:
        async with session.get(f"{stack.workers[0].url}/state/recommendations", params={"key": key}) as response:
            if response.status == 404:
                return None
            assert response.status == 200, await response.text()
            return dict(await response.json())


async def seed_globex(api: Api) -> None:
    vendor = token("vendor", tenant="globex", sub="gus")
    for sku, name in GLOBEX_PRODUCTS.items():
        reply = await api.post("/v1/products", vendor, {"sku": sku, "name": name,
                                                        "price": {"amount": 700, "currency": "EUR"}})
        assert reply.status == 202, reply.body

        async def served(sku: str = sku) -> bool:
            return (await api.get(f"/v1/products/{sku}", vendor)).status == 200

        await eventually_async(served, 30, f"globex's {sku} in the catalog")
        reply = await api.post(f"/v1/inventory/{sku}/adjustments", vendor, {"delta": 20, "reason": "opening stock"})
        assert reply.status == 202, reply.body


async def test_recommendations_match_the_orders_across_a_sigkill_and_stay_in_their_tenant(
        api: Api, stack: Stack) -> None:
    # Given acme's fixture orders and globex's order (same SKU name MUG-1) confirmed
    await seed_globex(api)
    await asyncio.gather(*(confirmed(api, "acme", f"reco-{n}", lines) for n, lines in enumerate(ACME_ORDERS)),
                         confirmed(api, "globex", "gina", GLOBEX_ORDER))
    await asyncio.to_thread(stack.wait_drained)
    counts, popular = co_purchases(ACME_ORDERS), popularity(ACME_ORDERS)

    # Then MUG-1's recommendations are what it was bought with, by count: TEA-1 2, CUP-1 1, POT-1 1
    mug = await recommended(api, "MUG-1")
    assert shown(mug) == expected(counts["MUG-1"], 5) == [("TEA-1", 2.0), ("CUP-1", 1.0), ("POT-1", 1.0)]
    assert mug["source"] == "co_purchase"
    assert {item["sku"]: (item["name"], item["price"]["currency"]) for item in mug["recommendations"]} == {
        sku: (NAMES[sku], "EUR") for sku, _ in shown(mug)}
    # And a product never ordered gets the tenant's most ordered ones
    kettle = await recommended(api, "USD-1", limit=3)
    assert (shown(kettle), kettle["source"]) == (expected(popular, 3), "popularity")
    # And a product bought with one other is filled up with the popular ones
    cup = await recommended(api, "CUP-1", limit=3)
    assert shown(cup) == [("MUG-1", 1.0), *expected(popular, 2, exclude={"CUP-1", "MUG-1"})]
    assert cup["source"] == "mixed"
    # And globex's MUG-1 knows only globex's order; acme never sees GLX-1, and cannot ask for it
    assert shown(await recommended(api, "MUG-1", tenant="globex")) == [("GLX-1", 1.0)]
    assert (await api.get("/v1/products/GLX-1/recommendations", token("customer"))).status == 404
    before = {sku: await table(stack, f"acme/{sku}") for sku in (*NAMES, "*")}
    assert before["MUG-1"] is not None and before["MUG-1"]["orders"] == 3

    # When the worker is SIGKILLed and restarted, and then SIGKILLed again right after an order's capture
    stack.workers[0].kill()
    await asyncio.to_thread(stack.start_worker, 0)
    await asyncio.to_thread(stack.wait_ready)
    after_restart = {sku: await table(stack, f"acme/{sku}") for sku in (*NAMES, "*")}
    await confirmed(api, "acme", "reco-crash", ACROSS_THE_CRASH, kill=stack)
    await asyncio.to_thread(stack.wait_drained)

    # Then the restart changed no count, and the order across the second SIGKILL counted once
    assert after_restart == before
    everything = [*ACME_ORDERS, ACROSS_THE_CRASH]
    counts, popular = co_purchases(everything), popularity(everything)
    mug = await recommended(api, "MUG-1")
    assert shown(mug) == expected(counts["MUG-1"], 5) == [("TEA-1", 3.0), ("CUP-1", 1.0), ("POT-1", 1.0)]
    mug_state = await table(stack, "acme/MUG-1")
    assert mug_state is not None and mug_state["orders"] == 4 and len(set(mug_state["counted"])) == 4
    assert shown(await recommended(api, "USD-1", limit=4)) == expected(popular, 4)
    assert "GLX-1" not in (await table(stack, "acme/*") or {}).get("scores", {})

    # And a product out of stock is no longer recommended
    vendor = token("vendor", sub="vera")
    left = (await api.get("/v1/inventory/CUP-1", vendor)).body["available"]
    assert (await api.post("/v1/inventory/CUP-1/adjustments", vendor,
                           {"delta": -left, "reason": "sold out"})).status == 202

    async def cup_gone() -> bool:
        return "CUP-1" not in [sku for sku, _ in shown(await recommended(api, "MUG-1"))]

    await eventually_async(cup_gone, 30, "CUP-1, sold out, left out of MUG-1's recommendations")
    assert shown(await recommended(api, "MUG-1")) == [("TEA-1", 3.0), ("POT-1", 1.0)]
