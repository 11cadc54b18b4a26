"""Outbound webhooks on the real stack: a worker of every agent, a webhooks worker in its own group,
and receivers that are test fixtures (aiohttp servers in this process on 127.0.0.1, allowed here by
WEBHOOK_ALLOW_PRIVATE_TARGETS): one that fails its first two requests, one that never answers.

An endpoint that fails twice then succeeds gets each of an order's events once with a valid
signature, and its delivery log says so; an order placed while another endpoint hangs settles, and
another tenant's endpoint gets its deliveries, while that endpoint still holds a request open; the
replay command delivers past events again, marked as replays."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from streams import webhook_replay
from streams.settings import Settings
from tests.conftest import Api, read_topic, token
from tests.harness import Stack, eventually_async
from tests.integration.orders_api import place, settled

# Slot 0: every agent (the app group); slot 1: the three webhooks agents (their own group).
STACK_WORKERS = [{}, {"agents": "webhooks"}]
STACK_ENV = {"WEBHOOK_ALLOW_PRIVATE_TARGETS": "1", "WEBHOOK_RETRY_SCHEDULE": "1s,1s,1s",
             "WEBHOOK_TIMEOUT_SECONDS": "120"}
ADMIN = token("admin", sub="ada")


@dataclass
class Receiver:
    """A test fixture standing in for a tenant's endpoint: answers 500 to the first `failures`
    requests, then 200; on /hang never answers (until the test ends)."""

    failures: int = 0
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    hanging: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append((request.path, dict(request.headers), body))
        if request.path == "/hang":
            self.hanging += 1
            await self.release.wait()
            return web.Response(status=200)
        if len([r for r in self.requests if r[0] == request.path]) <= self.failures:
            return web.Response(status=500, text="not now")
        return web.Response(status=200, text="ok")

    def delivered(self, path: str) -> list[dict[str, Any]]:
        """Bodies of the requests to `path` after its failures (those answered 200)."""
        mine = [r for r in self.requests if r[0] == path]
        return [json.loads(body) for _, _, body in mine[self.failures:]]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver(failures=2)
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", found.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    found.url = f"http://127.0.0.1:{port}"
    try:
        yield found
    finally:
        found.release.set()
        await runner.cleanup()


async def register(api: Api, url: str, events: list[str], admin: str = ADMIN) -> dict[str, Any]:
    reply = await api.post("/v1/webhooks", admin, {"url": url, "events": events})
    assert reply.status == 201, reply.body
    return dict(reply.body)


def signed_by(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Stripe's scheme, computed here: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">."""
    parts = dict(part.split("=", 1) for part in headers["FC-Signature"].split(","))
    expected = hmac.new(secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


async def logged(api: Api, endpoint_id: str, events: set[str]) -> list[dict[str, Any]]:
    """The endpoint's delivery log once it holds a delivery of each of `events`."""
    found: list[dict[str, Any]] = []

    async def enough() -> bool:
        reply = await api.get(f"/v1/webhooks/{endpoint_id}/deliveries", ADMIN)
        assert reply.status == 200, reply.body
        found[:] = reply.body["deliveries"]
        return events <= {line["event_id"] for line in found if line["outcome"] == "delivered"}
    await eventually_async(enough, 30, "the events' deliveries in the endpoint's log")
    return found


def order_events(stack: Stack, order_id: str) -> list[dict[str, Any]]:
    events = [json.loads(m.value()) for m in read_topic(stack.bootstrap, stack.topic("orders.events"))]
    return [e for e in events if e["payload"]["order_id"] == order_id]


async def test_an_endpoint_that_fails_twice_then_succeeds_gets_each_event_once_signed(
        seeded_api: Api, stack: Stack, receiver: Receiver) -> None:
    # Given an endpoint of acme for order status changes that fails its first two requests
    endpoint = await register(seeded_api, f"{receiver.url}/flaky", ["OrderStatusChanged"])
    # When an order is placed and waits for its payment (three status changes)
    order_id = await place(seeded_api, "wendy", {"MUG-1": 1})
    assert (await settled(seeded_api, order_id, "wendy"))["status"] == "payment_pending"
    published = order_events(stack, order_id)
    assert [e["payload"]["status"] for e in published] == ["pending", "reserved", "payment_pending"]

    async def all_delivered() -> bool:
        return {e["event_id"] for e in receiver.delivered("/flaky")} >= {e["event_id"] for e in published}
    await eventually_async(all_delivered, 60, "the order's events delivered after the endpoint's failures")

    # Then the endpoint got each event once after its two failures, as published, each request signed
    delivered = [e for e in receiver.delivered("/flaky") if e["payload"]["order_id"] == order_id]
    assert sorted(e["event_id"] for e in delivered) == sorted(e["event_id"] for e in published)
    assert {json.dumps(e, sort_keys=True) for e in delivered} == {json.dumps(e, sort_keys=True) for e in published}
    flaky = [r for r in receiver.requests if r[0] == "/flaky"]
    assert all(signed_by(endpoint["secret"], headers, body) for _, headers, body in flaky)
    assert not signed_by("whsec_" + "x" * 43, flaky[0][1], flaky[0][2])
    # ... and its delivery log (committed a moment after the answers) shows two failed attempts and
    # three deliveries
    log = await logged(seeded_api, endpoint["endpoint_id"], {e["event_id"] for e in published})
    assert sorted(line["outcome"] for line in log) == ["delivered"] * 3 + ["failed"] * 2


async def test_a_hanging_endpoint_delays_neither_an_order_nor_another_tenants_deliveries(
        seeded_api: Api, stack: Stack, receiver: Receiver) -> None:
    # Given an acme endpoint that never answers, and an endpoint of globex
    await register(seeded_api, f"{receiver.url}/hang", ["*"])
    globex = await register(seeded_api, f"{receiver.url}/globex", ["OrderStatusChanged"],
                            admin=token("admin", tenant="globex", sub="gus"))
    receiver.failures = 0
    first = await place(seeded_api, "hazel", {"POT-1": 1})

    async def held() -> bool:
        return receiver.hanging > 0
    await eventually_async(held, 60, "a delivery held by the hanging endpoint")
    # When an acme order and a globex order (for a SKU globex does not sell: rejected) are placed
    # while that delivery is held
    second = await place(seeded_api, "hazel", {"CUP-1": 1})
    reply = await seeded_api.post("/v1/orders", token("customer", tenant="globex", sub="gil"),
                                  {"lines": [{"sku": "NOPE-1", "quantity": 1}]})
    assert reply.status == 202, reply.body
    rejected = str(reply.body["order_id"])

    # Then both orders settle, and globex's endpoint gets its order's events ...
    assert (await settled(seeded_api, first, "hazel"))["status"] == "payment_pending"
    assert (await settled(seeded_api, second, "hazel"))["status"] == "payment_pending"

    async def globex_told() -> bool:
        return {e["payload"]["status"] for e in receiver.delivered("/globex")
                if e["payload"]["order_id"] == rejected} == {"pending", "rejected"}
    await eventually_async(globex_told, 60, "globex's endpoint told of its rejected order")
    # ... while the hanging endpoint still holds the first request it got, and has had no other
    assert receiver.hanging == 1 and not receiver.release.is_set()
    assert all(e["tenant"] == "globex" for e in receiver.delivered("/globex"))
    assert globex["endpoint_id"]


async def test_the_replay_command_delivers_past_events_again_marked_as_replays(
        seeded_api: Api, stack: Stack, receiver: Receiver) -> None:
    # Given an endpoint registered after an order's events
    receiver.failures = 0
    order_id = await place(seeded_api, "rita", {"MUG-1": 1})
    assert (await settled(seeded_api, order_id, "rita"))["status"] == "payment_pending"
    endpoint = await register(seeded_api, f"{receiver.url}/late", ["OrderStatusChanged"])
    published = order_events(stack, order_id)
    # When the replay command asks for acme's events of the last hour
    settings = Settings(external_bootstrap=stack.bootstrap, topic_namespace=stack.namespace)
    asked = await asyncio.to_thread(webhook_replay.deliveries, settings, "acme", endpoint["endpoint_id"], "1h")
    await webhook_replay.write(settings, asked)

    # Then the endpoint gets the order's events, and its log marks them as replays
    async def replayed() -> bool:
        return {e["event_id"] for e in receiver.delivered("/late")} >= {e["event_id"] for e in published}
    await eventually_async(replayed, 60, "the order's events replayed to the endpoint")
    mine = {e["event_id"] for e in published}
    lines = [line for line in await logged(seeded_api, endpoint["endpoint_id"], mine) if line["event_id"] in mine]
    assert len(lines) == 3 and all(line["replay"] and line["outcome"] == "delivered" for line in lines)
