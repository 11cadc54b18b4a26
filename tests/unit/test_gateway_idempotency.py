"""Idempotency-Key at the gateway, without Kafka: the real views and the real pure decisions, with a
tiny aiohttp server posing as the worker. Commands written by the gateway are applied in the order
written by the decision of their context, as the single writer of each key does; the worker serves
the result as it renders it. Holding the commands back until every request of a burst has written
makes every request take the racy path: nothing to find before writing, a verdict after it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.auth import auth_middleware
from gateway.errors import error_middleware
from gateway.routes import setup_routes
from gateway.services import SERVICES, Services
from gateway.tokens import mint
from gateway.workers import TABLES, WorkerReads
from streams.agents import campaigns as campaigns_agent
from streams.agents import inventory as inventory_agent
from streams.models import (
    AdjustStock,
    Campaign,
    CampaignStockHeld,
    Envelope,
    HoldForCampaign,
    Money,
    OpenCampaign,
    Order,
    PlaceOrder,
    PledgeToCampaign,
    Product,
    StockLevel,
    WithdrawPledge,
)
from streams.settings import Settings
from streams.tables import campaigns, inventory, orders

PARTITIONS = 4
JWT_SECRET = "idempotency-tests-secret-of-at-least-32-bytes"
TENANT = "acme"
SKU = "MUG-1"
NOW = datetime(2030, 1, 1, tzinfo=UTC)
ENDS_AT = "2099-01-01T00:00:00Z"
BURST = 5


class Agents:
    """The single writers of orders, stock and campaigns, as workers run them, and the worker's
    read endpoint over what they decided (the gateway's writer is `write`)."""

    def __init__(self) -> None:
        self.written: list[Envelope] = []
        self.pending: list[Envelope] = []
        self.release_at: int | None = None  # hold commands back until this many were written
        self.states: dict[str, dict[str, Any]] = {table: {} for table in TABLES}
        self.url = ""
        product = Product(tenant=TENANT, sku=SKU, name="Mug", price=Money(amount=1299, currency="EUR"), updated_at=NOW)
        self.product = product
        self.states["catalog"][f"{TENANT}/{SKU}"] = product  # served like any table: the gateway checks the SKU
        self.apply(Envelope.new(TENANT, AdjustStock(adjustment_id=uuid.uuid4(), sku=SKU, delta=50, reason="opening")))

    async def write(self, event: Envelope) -> tuple[str, int]:
        self.written.append(event)
        self.pending.append(event)
        if self.release_at is None or len(self.written) >= self.release_at:
            for held in self.pending:
                self.apply(held)
            self.pending.clear()
        return "commands", 0

    def apply(self, event: Envelope) -> None:
        payload = event.payload
        if isinstance(payload, PlaceOrder):
            key = str(payload.order_id)
            decision = orders.decide(self.states["orders"].get(key), event, NOW, hold_ttl=timedelta(minutes=15))
            self.states["orders"][key] = decision.state
        elif isinstance(payload, AdjustStock):
            key = f"{event.tenant}/{payload.sku}"
            self.states["inventory"][key] = inventory.decide(self.states["inventory"].get(key), event, NOW,
                                                             product=self.product).state
        elif isinstance(payload, (OpenCampaign, PledgeToCampaign, WithdrawPledge, CampaignStockHeld)):
            key = f"{event.tenant}/{payload.campaign_id}"
            decision = campaigns.decide(self.states["campaigns"].get(key), event, NOW)
            self.states["campaigns"][key] = decision.state
            for hold in (e for e in decision.events if isinstance(e, HoldForCampaign)):
                self.apply(event.derive(CampaignStockHeld(campaign_id=hold.campaign_id, sku=hold.sku,
                                                          quantity=hold.quantity), 0))

    def render(self, table: str, state: Any) -> dict[str, Any]:
        if isinstance(state, StockLevel):
            return inventory_agent.render(state)
        if isinstance(state, Campaign):
            return campaigns_agent.render(state)
        assert isinstance(state, Order | Product), table
        return state.model_dump(mode="json")

    def app(self) -> web.Application:
        async def assignment(request: web.Request) -> web.Response:
            return web.json_response({"url": self.url, "ready": True, "partitions": PARTITIONS,
                                      "tables": {table: list(range(PARTITIONS)) for table in TABLES}})

        async def state(request: web.Request) -> web.Response:
            table, key = request.match_info["table"], request.query["key"]
            deadline = asyncio.get_running_loop().time() + float(request.query.get("wait", "0"))
            while (found := self.states[table].get(key)) is None and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.01)
            if found is None:
                return web.json_response({"error": "not found"}, status=404)
            return web.json_response(self.render(table, found))

        app = web.Application()
        app.router.add_get("/fc/assignment", assignment)
        app.router.add_get("/state/{table}", state)
        return app


@pytest.fixture
async def agents(serve_app: Callable[[web.Application], Awaitable[str]]) -> Agents:
    agents = Agents()
    agents.url = await serve_app(agents.app())
    return agents


@pytest.fixture
async def client(agents: Agents) -> AsyncIterator[TestClient]:
    async with aiohttp.ClientSession() as session:
        settings = Settings(jwt_secret=JWT_SECRET)
        app = web.Application(middlewares=[error_middleware, auth_middleware(settings.jwt_secret)])
        setup_routes(app)
        app[SERVICES] = Services(settings=settings, writer=agents, reads=WorkerReads(session, (agents.url,), PARTITIONS),  # type: ignore[arg-type]
                                 stripe=None, admin=None)  # type: ignore[arg-type]
        client = TestClient(TestServer(app, host="127.0.0.1", port=0))
        await client.start_server()
        yield client
        await client.close()


def bearer(role: str, sub: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(JWT_SECRET, sub, role, TENANT)}"}


Send = Callable[[Any, str | None], Awaitable[tuple[int, Any]]]


def sender(client: TestClient, method: str, path: str, role: str, sub: str = "someone") -> Send:
    async def send(body: Any, key: str | None) -> tuple[int, Any]:
        headers = bearer(role, sub) | ({"Idempotency-Key": key} if key is not None else {})
        async with client.request(method, path, json=body, headers=headers) as reply:
            return reply.status, await reply.json()

    return send


def place(client: TestClient) -> Send:
    return sender(client, "POST", "/v1/orders", "customer", "alice")


def adjust(client: TestClient) -> Send:
    return sender(client, "POST", f"/v1/inventory/{SKU}/adjustments", "vendor", "vera")


def open_campaign(client: TestClient) -> Send:
    return sender(client, "POST", "/v1/campaigns", "vendor", "vera")


def order_body(quantity: int) -> dict[str, Any]:
    return {"lines": [{"sku": SKU, "quantity": quantity}]}


def adjustment_body(delta: int) -> dict[str, Any]:
    return {"delta": delta, "reason": "restock"}


def campaign_body(maximum: int, campaign_id: str | None = None) -> dict[str, Any]:
    body = {"sku": SKU, "group_price": {"amount": 999, "currency": "EUR"}, "target_quantity": 1,
            "max_quantity": maximum, "ends_at": ENDS_AT}
    return body if campaign_id is None else {"campaign_id": campaign_id, **body}


def reused(reply: tuple[int, Any]) -> bool:
    return reply[0] == 409 and reply[1]["error"]["code"] == "idempotency_key_reused"


async def burst(agents: Agents, send: Send, bodies: list[Any], key: str) -> list[tuple[int, Any]]:
    """All at once, the commands applied only once every request has written its own."""
    agents.release_at = len(agents.written) + len(bodies)
    replies = await asyncio.gather(*(send(body, key) for body in bodies))
    agents.release_at = None
    return list(replies)


# --- orders ------------------------------------------------------------------------------------------


async def test_of_concurrent_orders_with_one_key_the_one_decided_first_is_accepted_and_the_rest_409(client, agents):
    # When orders of 1 to 5 mugs are sent at once under one key, and the agent decides them in the
    # order written
    replies = await burst(agents, place(client), [order_body(q) for q in range(1, BURST + 1)], "cart-1")

    # Then the one written first is accepted and every other request is refused as reused
    first = agents.written[-BURST].payload.lines[0].quantity
    assert [status for status, _ in replies].count(202) == 1
    accepted = replies[first - 1]
    assert accepted[0] == 202 and accepted[1]["status"] == "pending"
    assert all(reused(reply) for n, reply in enumerate(replies) if n != first - 1)
    # ... all naming the one order, which has the first body
    assert {r[1]["error"]["details"]["order_id"] for r in replies if r[0] == 409} == {accepted[1]["order_id"]}
    assert agents.states["orders"][accepted[1]["order_id"]].lines[0].quantity == first


async def test_an_order_replayed_after_it_exists_is_answered_without_writing(client, agents):
    first = await place(client)(order_body(2), "cart-2")
    written = len(agents.written)
    assert await place(client)(order_body(2), "cart-2") == first
    assert reused(await place(client)(order_body(3), "cart-2"))
    assert len(agents.written) == written


# --- stock adjustments -------------------------------------------------------------------------------


async def test_of_concurrent_adjustments_with_one_key_one_is_applied_and_the_rest_409(client, agents):
    replies = await burst(agents, adjust(client), [adjustment_body(d) for d in range(1, BURST + 1)], "delivery-1")
    first = agents.written[-BURST].payload.delta
    assert [status for status, _ in replies].count(202) == 1
    applied = replies[first - 1][1]
    assert applied == {"adjustment_id": applied["adjustment_id"], "status": "applied", "sku": SKU,
                       "on_hand": 50 + first, "reserved": 0, "available": 50 + first}
    assert all(reused(reply) for n, reply in enumerate(replies) if n != first - 1)
    assert agents.states["inventory"][f"{TENANT}/{SKU}"].on_hand == 50 + first


async def test_an_adjustment_replay_gets_the_first_answer_even_after_the_stock_moved(client, agents):
    first = await adjust(client)(adjustment_body(5), "delivery-2")
    assert first[0] == 202 and first[1]["on_hand"] == 55
    assert (await adjust(client)(adjustment_body(-3), None))[1]["on_hand"] == 52  # another adjustment since
    written = len(agents.written)
    assert await adjust(client)(adjustment_body(5), "delivery-2") == first
    assert reused(await adjust(client)(adjustment_body(6), "delivery-2"))
    assert len(agents.written) == written
    assert agents.states["inventory"][f"{TENANT}/{SKU}"].on_hand == 52


async def test_a_refused_adjustment_replay_is_refused_again(client, agents):
    first = await adjust(client)(adjustment_body(-51), "write-off-1")
    assert first[0] == 409 and first[1]["error"]["code"] == "insufficient_stock"
    assert await adjust(client)(adjustment_body(-51), "write-off-1") == first
    assert reused(await adjust(client)(adjustment_body(-1), "write-off-1"))
    assert agents.states["inventory"][f"{TENANT}/{SKU}"].on_hand == 50


# --- campaigns and pledges ---------------------------------------------------------------------------


async def test_of_concurrent_campaigns_with_one_key_one_opens_and_the_rest_409(client, agents):
    replies = await burst(agents, open_campaign(client), [campaign_body(m) for m in range(1, BURST + 1)], "spring")
    first = agents.written[-BURST].payload.max_quantity
    opened = replies[first - 1]
    assert opened[0] == 202 and opened[1]["status"] == "open" and opened[1]["max_quantity"] == first
    assert all(reused(reply) for n, reply in enumerate(replies) if n != first - 1)
    assert await open_campaign(client)(campaign_body(first), "spring") == (202, opened[1])


async def test_a_campaign_id_of_the_body_answers_its_opener_s_replay_and_refuses_the_rest(client, agents):
    first = await open_campaign(client)(campaign_body(3, "duo"), None)
    assert first[0] == 202 and first[1]["campaign_id"] == "duo"
    assert await open_campaign(client)(campaign_body(3, "duo"), None) == first
    other_body = await open_campaign(client)(campaign_body(4, "duo"), None)
    other_vendor = await sender(client, "POST", "/v1/campaigns", "vendor", "victor")(campaign_body(3, "duo"), None)
    for refused in (other_body, other_vendor):
        assert refused[0] == 409 and refused[1]["error"]["code"] == "campaign_exists"
    replies = await burst(agents, open_campaign(client), [campaign_body(m, "trio") for m in range(1, BURST + 1)], "k")
    assert [status for status, _ in replies].count(202) == 1
    assert all(r[1]["error"]["code"] == "campaign_exists" for r in replies if r[0] != 202)


async def test_of_concurrent_pledges_with_one_key_one_counts_and_the_rest_409(client, agents):
    assert (await open_campaign(client)(campaign_body(20, "pledges"), None))[1]["status"] == "open"
    send = sender(client, "POST", "/v1/campaigns/pledges/pledges", "customer", "kim")
    replies = await burst(agents, send, [{"quantity": q} for q in range(1, BURST + 1)], "pledge-1")
    first = agents.written[-BURST].payload.quantity
    accepted = replies[first - 1]
    assert accepted[0] == 200 and accepted[1]["quantity"] == first and accepted[1]["campaign"]["pledged_quantity"] == first
    assert all(reused(reply) for n, reply in enumerate(replies) if n != first - 1)
    # A later pledge, then the first one's late replay: its first verdict, and the later pledge stands
    assert (await send({"quantity": 7}, "pledge-2"))[1]["quantity"] == 7
    late = await send({"quantity": first}, "pledge-1")
    assert (late[0], late[1]["pledge_id"], late[1]["quantity"]) == (200, accepted[1]["pledge_id"], first)
    assert agents.states["campaigns"][f"{TENANT}/pledges"].pledges == {"kim": 7}
    # The key of a pledge sent to withdraw is another request
    withdraw = sender(client, "DELETE", "/v1/campaigns/pledges/pledges", "customer", "kim")
    assert reused(await withdraw(None, "pledge-1"))
    assert (await withdraw(None, "withdraw-1"))[1]["quantity"] == 0
    assert (await withdraw(None, "withdraw-1"))[0] == 200


# --- the key itself ----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["", "k" * 256])
async def test_a_key_of_0_or_more_than_255_characters_is_refused_before_anything_is_written(client, agents, key):
    assert (await open_campaign(client)(campaign_body(1, "keys"), None))[0] == 202
    written = len(agents.written)
    for send, body in ((place(client), order_body(1)), (adjust(client), adjustment_body(1)),
                       (open_campaign(client), campaign_body(1)),
                       (sender(client, "POST", "/v1/campaigns/keys/pledges", "customer"), {"quantity": 1}),
                       (sender(client, "DELETE", "/v1/campaigns/keys/pledges", "customer"), None)):
        status, reply = await send(body, key)
        assert (status, reply["error"]["code"]) == (422, "invalid_idempotency_key")
    assert len(agents.written) == written


async def test_keys_belong_to_their_principal(client, agents):
    mine = await adjust(client)(adjustment_body(1), "shared")
    theirs = await sender(client, "POST", f"/v1/inventory/{SKU}/adjustments", "vendor", "victor")(adjustment_body(2), "shared")
    assert mine[0] == theirs[0] == 202 and mine[1]["adjustment_id"] != theirs[1]["adjustment_id"]
    assert agents.states["inventory"][f"{TENANT}/{SKU}"].on_hand == 53
