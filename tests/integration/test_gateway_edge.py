"""The gateway's edge on a real stack (gateway/edge.py): rate limits per principal and per client
address, the cap on a principal's waiting long-polls, the body size limit and CORS.

Budgets are per hour here, so that no window rolls over inside a test: what a test counts is what
the gateway counted."""

from __future__ import annotations

import asyncio
import json
import uuid

import aiohttp

from streams import topics
from tests.conftest import Api, read_topic, token
from tests.harness import Stack

WRITES_PER_HOUR = 5
ADDRESS_BUDGET = 200
MAX_LONG_POLLS = 2
MAX_BODY = 2048
SHOP = "https://shop.example"
STACK_ENV = {
    "GATEWAY_RATE_LIMIT_WRITES": f"{WRITES_PER_HOUR}/hour",
    "GATEWAY_RATE_LIMIT_READS": "1000/hour",
    "GATEWAY_RATE_LIMIT_LONG_POLLS": "1000/hour",
    "GATEWAY_RATE_LIMIT_PER_ADDRESS": f"{ADDRESS_BUDGET}/hour",
    "GATEWAY_MAX_LONG_POLLS": str(MAX_LONG_POLLS),
    "GATEWAY_MAX_BODY_BYTES": str(MAX_BODY),
    "GATEWAY_CORS_ORIGINS": SHOP,
}


def product(sku: str) -> dict[str, object]:
    return {"sku": sku, "name": sku, "price": {"amount": 100, "currency": "EUR"}}


def from_address(address: str) -> aiohttp.ClientSession:
    """A client whose connections leave from `address` (any 127/8 address reaches the gateway)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0)),
                                 timeout=aiohttp.ClientTimeout(total=60))


def skus_on_topic(stack: Stack, prefix: str) -> list[str]:
    topic = topics.full_name(stack.namespace, topics.CATALOG_PRODUCTS.name)
    values = [json.loads(m.value()) for m in read_topic(stack.bootstrap, topic)]
    return sorted(v["payload"]["sku"] for v in values if v["payload"]["sku"].startswith(prefix))


async def test_a_burst_past_a_principals_write_budget_gets_429_while_another_principal_is_served(
        stack: Stack) -> None:
    assert stack.gateway is not None
    prefix = f"RL{uuid.uuid4().hex[:6]}-"
    async with from_address("127.0.0.2") as session:
        api = Api(stack.gateway.url, session)
        burst = await asyncio.gather(*(api.post("/v1/products", token("vendor", sub="bursty"), product(f"{prefix}{n}"))
                                       for n in range(WRITES_PER_HOUR + 3)))
        other = await api.post("/v1/products", token("vendor", sub="calm"), product(f"{prefix}calm"))

    accepted = [reply for reply in burst if reply.status < 300]
    refused = [reply for reply in burst if reply.status == 429]
    assert len(accepted) == WRITES_PER_HOUR and len(refused) == 3, [r.status for r in burst]
    for reply in refused:
        assert reply.body["error"]["code"] == "rate_limited"
        assert int(reply.headers["Retry-After"]) >= 1
        assert reply.headers["RateLimit-Limit"] == str(WRITES_PER_HOUR)
        assert reply.headers["RateLimit-Remaining"] == "0"
    assert sorted(int(reply.headers["RateLimit-Remaining"]) for reply in accepted) == list(range(WRITES_PER_HOUR))
    assert other.status < 300, other.body
    # The refused writes wrote nothing: the topic holds the accepted products and the other principal's
    written = {f"{prefix}calm"} | {reply.body["sku"] for reply in accepted}
    assert skus_on_topic(stack, prefix) == sorted(written)


async def test_a_spent_address_budget_refuses_that_address_only(stack: Stack) -> None:
    assert stack.gateway is not None
    async with from_address("127.0.0.3") as spender, from_address("127.0.0.4") as bystander:
        spent = Api(stack.gateway.url, spender)
        # Anonymous requests count against their address: the budget is spent before authentication
        statuses = [(await spent.get("/v1/products/ANY-1", None)).status for _ in range(ADDRESS_BUDGET)]
        assert statuses == [401] * ADDRESS_BUDGET
        refused = await spent.get("/v1/products/ANY-1", token("customer", sub="behind-the-same-address"))
        assert refused.status == 429 and int(refused.headers["Retry-After"]) >= 1
        assert (await Api(stack.gateway.url, bystander).get("/v1/products/ANY-1", None)).status == 401


async def test_a_principal_waits_on_at_most_the_capped_number_of_long_polls(stack: Stack) -> None:
    assert stack.gateway is not None
    waiter = token("customer", sub="waiter")
    async with from_address("127.0.0.5") as session:
        api = Api(stack.gateway.url, session)
        # Long-polls for orders that do not exist wait their whole `wait` at the gateway: of these,
        # the cap's number wait and the others are refused at once
        polls = [asyncio.ensure_future(api.get(f"/v1/orders/{uuid.uuid4()}?wait=20", waiter))
                 for _ in range(MAX_LONG_POLLS + 3)]
        first_back = []
        for reply in asyncio.as_completed(polls):
            first_back.append(await reply)
            if len(first_back) == 3:
                break
        assert [(r.status, r.body["error"]["code"]) for r in first_back] == [(429, "too_many_long_polls")] * 3
        assert all(int(r.headers["Retry-After"]) >= 1 for r in first_back)
        # Another customer's long-poll is not held back by this one's
        other = await api.get(f"/v1/orders/{uuid.uuid4()}?wait=1", token("customer", sub="patient"))
        assert other.status == 404, other.body
        statuses = sorted(reply.status for reply in await asyncio.gather(*polls))
        assert statuses == [404] * MAX_LONG_POLLS + [429] * 3


async def test_a_body_over_the_limit_gets_413_and_writes_nothing(stack: Stack) -> None:
    assert stack.gateway is not None
    sku = f"BIG{uuid.uuid4().hex[:6]}"
    body = json.dumps({**product(sku), "name": "x" * MAX_BODY}).encode()
    async with from_address("127.0.0.6") as session:
        reply = await Api(stack.gateway.url, session).post(
            "/v1/products", token("vendor", sub="big"), raw=body, headers={"Content-Type": "application/json"})
    assert reply.status == 413 and reply.body["error"]["code"] == "body_too_large"
    assert skus_on_topic(stack, sku) == []


async def test_cors_answers_the_allowed_origins_preflight_and_refuses_others(stack: Stack) -> None:
    assert stack.gateway is not None
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    async with from_address("127.0.0.7") as session:
        async with session.options(f"{stack.gateway.url}/v1/orders", headers={"Origin": SHOP, **preflight}) as reply:
            assert reply.status == 204
            assert reply.headers["Access-Control-Allow-Origin"] == SHOP
            assert "POST" in reply.headers["Access-Control-Allow-Methods"]
            assert "Idempotency-Key" in reply.headers["Access-Control-Allow-Headers"]
        async with session.options(f"{stack.gateway.url}/v1/orders",
                                   headers={"Origin": "https://evil.example", **preflight}) as reply:
            assert reply.status == 403
            assert "Access-Control-Allow-Origin" not in reply.headers
        # An error answer to the allowed origin is readable by it; one to another origin is not
        async with session.get(f"{stack.gateway.url}/v1/products/X", headers={"Origin": SHOP}) as reply:
            assert reply.status == 401 and reply.headers["Access-Control-Allow-Origin"] == SHOP
        async with session.get(f"{stack.gateway.url}/v1/products/X", headers={"Origin": "https://evil.example"}) as reply:
            assert reply.status == 401 and "Access-Control-Allow-Origin" not in reply.headers
