"""Idempotency-Key on the real stack, with Stripe's semantics: a retry with the same body gets the
first answer and acts once; another body under the key is a 409 and writes no second effect; and
concurrent requests with one key and different bodies, sent through two gateway processes, get
exactly one 2xx, the others 409, with one effect. Effects are counted on the topics and read back
from the stock, never taken from a status alone."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import Api, Reply, read_topic, token
from tests.harness import Process, Stack, eventually, free_port, http_status
from tests.integration.orders_api import VENDOR, settled, stock

GROUP_PRICE = {"amount": 999, "currency": "EUR"}
CONCURRENT = 6


@pytest.fixture
def api(seeded_api: Api) -> Api:
    return seeded_api


@pytest.fixture(scope="module")
def second_gateway(stack: Stack) -> Iterator[str]:
    """A second gateway process on the same workers: a race with one key spans two gateways."""
    port = free_port()
    gateway = Process(name="gateway-2", command=[*stack.gateway.command], env=stack.env(GATEWAY_PORT=str(port)),  # type: ignore[union-attr]
                      log_path=stack.base_dir / "gateway-2.log", port=port).start()
    try:
        eventually(lambda: http_status(f"{gateway.url}/readyz") == 200, 90, "the second gateway becoming ready")
        yield gateway.url
    finally:
        gateway.stop()


@pytest.fixture
def apis(api: Api, second_gateway: str) -> tuple[Api, Api]:
    return api, Api(second_gateway, api.session)


def keyed(key: str | None) -> dict[str, str] | None:
    return None if key is None else {"Idempotency-Key": key}


async def adjust(api: Api, sku: str, delta: int, key: str | None, who: str = VENDOR, reason: str = "restock") -> Reply:
    return await api.post(f"/v1/inventory/{sku}/adjustments", who, {"delta": delta, "reason": reason},
                          headers=keyed(key))


async def order(api: Api, customer: str, lines: dict[str, int], key: str) -> Reply:
    body = {"lines": [{"sku": sku, "quantity": quantity} for sku, quantity in lines.items()]}
    return await api.post("/v1/orders", token("customer", sub=customer), body, headers=keyed(key))


def campaign_body(sku: str, maximum: int, campaign_id: str | None = None) -> dict[str, Any]:
    ends_at = (datetime.now(UTC) + timedelta(minutes=30)).isoformat()
    body = {"sku": sku, "group_price": GROUP_PRICE, "target_quantity": 1, "max_quantity": maximum, "ends_at": ends_at}
    return body if campaign_id is None else {"campaign_id": campaign_id, **body}


async def open_campaign(api: Api, body: dict[str, Any], key: str | None = None, who: str = VENDOR) -> Reply:
    return await api.post("/v1/campaigns", who, body, headers=keyed(key))


async def pledge(api: Api, campaign_id: str, customer: str, quantity: int, key: str | None) -> Reply:
    return await api.post(f"/v1/campaigns/{campaign_id}/pledges", token("customer", sub=customer),
                          {"quantity": quantity}, headers=keyed(key))


async def withdraw(api: Api, campaign_id: str, customer: str, key: str | None) -> Reply:
    return await api.call("DELETE", f"/v1/campaigns/{campaign_id}/pledges", token("customer", sub=customer),
                          headers=keyed(key))


async def records(stack: Stack, topic: str, kind: str, **fields: Any) -> list[dict[str, Any]]:
    """The committed events of `kind` on `topic` whose payload has these fields, once the agents
    have processed everything written so far."""
    await asyncio.to_thread(stack.wait_drained)
    messages = await asyncio.to_thread(read_topic, stack.bootstrap, stack.topic(topic))
    events = [json.loads(m.value()) for m in messages]
    return [e for e in events
            if e["type"] == kind and all(e["payload"].get(name) == value for name, value in fields.items())]


async def quiet_stock(stack: Stack, api: Api, sku: str) -> dict[str, Any]:
    """The SKU's stock once everything written before has been processed (a cancel's release, say)."""
    await asyncio.to_thread(stack.wait_drained)
    return await stock(api, sku)


def refused_as_reused(replies: list[Reply]) -> bool:
    return all(r.status == 409 and r.body["error"]["code"] == "idempotency_key_reused" for r in replies)


async def race(apis: tuple[Api, Api], send: Any, bodies: list[Any]) -> tuple[int, Reply, list[Reply]]:
    """Send one request per body at once, alternately through the two gateways; the index and reply
    of the one 2xx, and the others."""
    replies = await asyncio.gather(*(send(apis[n % 2], body) for n, body in enumerate(bodies)))
    winners = [n for n, reply in enumerate(replies) if 200 <= reply.status < 300]
    assert len(winners) == 1, [(r.status, r.body) for r in replies]
    return winners[0], replies[winners[0]], [r for n, r in enumerate(replies) if n != winners[0]]


# --- stock adjustments ---------------------------------------------------------------------------


async def test_an_adjustment_retried_with_its_key_is_applied_once_and_answered_as_the_first_time(
        api: Api, stack: Stack) -> None:
    # Given MUG-1's stock, restocked by 7 under a key
    before = await quiet_stock(stack, api, "MUG-1")
    first = await adjust(api, "MUG-1", 7, "delivery-0042")
    assert first.status == 202 and first.body["status"] == "applied", first.body
    assert (first.body["on_hand"], first.body["reserved"]) == (before["on_hand"] + 7, before["reserved"])
    # ... and an order holding a unit since
    held = await order(api, "mug-buyer", {"MUG-1": 1}, "mug-cart")
    assert (await settled(api, held.body["order_id"], "mug-buyer"))["status"] == "payment_pending"

    # When the restock is retried with the same body, and once with another
    again = await adjust(api, "MUG-1", 7, "delivery-0042")
    other = await adjust(api, "MUG-1", 70, "delivery-0042")

    # Then the retry gets the first answer (the stock right after the restock, not now), the other body a 409
    assert (again.status, again.body) == (first.status, first.body)
    assert refused_as_reused([other]) and other.body["error"]["details"] == {"adjustment_id": first.body["adjustment_id"]}
    # And the stock moved by 7 once: one StockAdjusted for the adjustment
    adjusted = await records(stack, "inventory.stock-changes", "StockAdjusted", adjustment_id=first.body["adjustment_id"])
    assert [e["payload"]["delta"] for e in adjusted] == [7]
    after = await stock(api, "MUG-1")
    assert (after["on_hand"], after["reserved"]) == (before["on_hand"] + 7, before["reserved"] + 1)


async def test_a_refused_adjustment_retried_with_its_key_is_refused_the_same_way(api: Api, stack: Stack) -> None:
    before = await quiet_stock(stack, api, "TEA-1")
    first = await adjust(api, "TEA-1", -(before["on_hand"] + 1), "write-off-9", reason="loss")
    assert first.status == 409 and first.body["error"]["code"] == "insufficient_stock", first.body
    # The same request again: the same refusal; the key with a write-off that would fit: still refused, as reused
    again = await adjust(api, "TEA-1", -(before["on_hand"] + 1), "write-off-9", reason="loss")
    other = await adjust(api, "TEA-1", -1, "write-off-9", reason="loss")
    assert (again.status, again.body) == (first.status, first.body)
    assert refused_as_reused([other])
    adjustment_id = first.body["error"]["details"]["adjustment_id"]
    assert len(await records(stack, "inventory.stock-changes", "StockAdjustmentRejected", adjustment_id=adjustment_id)) == 1
    assert await records(stack, "inventory.stock-changes", "StockAdjusted", adjustment_id=adjustment_id) == []
    assert (await stock(api, "TEA-1"))["on_hand"] == before["on_hand"]


async def test_concurrent_adjustments_with_one_key_and_different_bodies_apply_one(
        apis: tuple[Api, Api], stack: Stack) -> None:
    # Given CUP-1's stock
    before = await quiet_stock(stack, apis[0], "CUP-1")
    deltas = list(range(1, CONCURRENT + 1))

    # When restocks of 1 to 6 units are sent at once under one key, through two gateways
    winner, applied, refused = await race(apis, lambda api, delta: adjust(api, "CUP-1", delta, "recount-7"), deltas)

    # Then one is applied and answered with the stock right after it, the others are refused as reused
    assert applied.status == 202 and applied.body["on_hand"] == before["on_hand"] + deltas[winner], applied.body
    assert refused_as_reused(refused)
    assert {r.body["error"]["details"]["adjustment_id"] for r in refused} == {applied.body["adjustment_id"]}
    # And the stock moved once, by the winner's delta
    adjusted = await records(stack, "inventory.stock-changes", "StockAdjusted", adjustment_id=applied.body["adjustment_id"])
    assert [e["payload"]["delta"] for e in adjusted] == [deltas[winner]]
    assert (await stock(apis[0], "CUP-1"))["on_hand"] == before["on_hand"] + deltas[winner]


async def test_a_key_belongs_to_its_principal_and_has_1_to_255_characters(api: Api, stack: Stack) -> None:
    before = await quiet_stock(stack, api, "USD-1")
    mine = await adjust(api, "USD-1", 1, "shared-key")
    theirs = await adjust(api, "USD-1", 2, "shared-key", who=token("vendor", sub="another-vendor"))
    assert mine.status == theirs.status == 202 and mine.body["adjustment_id"] != theirs.body["adjustment_id"]
    too_long = await adjust(api, "USD-1", 5, "k" * 256)
    assert too_long.status == 422 and too_long.body["error"]["code"] == "invalid_idempotency_key"
    assert (await adjust(api, "USD-1", 5, "k" * 255)).status == 202
    await asyncio.to_thread(stack.wait_drained)
    assert (await stock(api, "USD-1"))["on_hand"] == before["on_hand"] + 1 + 2 + 5


# --- orders ----------------------------------------------------------------------------------------


async def test_an_order_retried_with_its_key_reserves_once(api: Api, stack: Stack) -> None:
    before = await quiet_stock(stack, api, "TEA-1")
    first = await order(api, "tea-lover", {"TEA-1": 2}, "tea-cart")
    assert first.status == 202
    assert (await settled(api, first.body["order_id"], "tea-lover"))["status"] == "payment_pending"
    again = await order(api, "tea-lover", {"TEA-1": 2}, "tea-cart")
    other = await order(api, "tea-lover", {"TEA-1": 3}, "tea-cart")
    assert (again.status, again.body) == (first.status, first.body)
    assert refused_as_reused([other]) and other.body["error"]["details"] == {"order_id": first.body["order_id"]}
    reserved = await records(stack, "inventory.reservations", "StockReserved", order_id=first.body["order_id"])
    assert [e["payload"]["quantity"] for e in reserved] == [2]
    assert (await stock(api, "TEA-1"))["reserved"] == before["reserved"] + 2


async def test_concurrent_orders_with_one_key_and_different_bodies_make_one_order(
        apis: tuple[Api, Api], stack: Stack) -> None:
    # Given TEA-1's stock
    before = await quiet_stock(stack, apis[0], "TEA-1")
    quantities = list(range(1, CONCURRENT + 1))

    # When one customer's orders of 1 to 6 units are sent at once under one key, through two gateways
    winner, accepted, refused = await race(
        apis, lambda api, quantity: order(api, "double-clicker", {"TEA-1": quantity}, "cart-race"), quantities)

    # Then one is accepted, the others are refused as reused, all naming the one order
    assert accepted.status == 202
    order_id = accepted.body["order_id"]
    assert refused_as_reused(refused) and {r.body["error"]["details"]["order_id"] for r in refused} == {order_id}
    placed = await settled(apis[0], order_id, "double-clicker")
    assert placed["status"] == "payment_pending" and placed["lines"][0]["quantity"] == quantities[winner]
    # And there is one order, which held the winner's units once
    pending = await records(stack, "orders.events", "OrderStatusChanged", order_id=order_id, status="pending")
    assert len(pending) == 1
    reserved = await records(stack, "inventory.reservations", "StockReserved", order_id=order_id)
    assert [e["payload"]["quantity"] for e in reserved] == [quantities[winner]]
    assert (await stock(apis[0], "TEA-1"))["reserved"] == before["reserved"] + quantities[winner]


# --- campaigns ---------------------------------------------------------------------------------------


async def test_a_campaign_opened_with_a_key_is_opened_once(api: Api, stack: Stack) -> None:
    # Given POT-1's stock and a campaign for 2 of its units opened under a key, without a campaign id
    before = await quiet_stock(stack, api, "POT-1")
    body = campaign_body("POT-1", 2)
    first = await open_campaign(api, body, "spring-pots")
    assert first.status == 202 and first.body["status"] == "open", first.body
    campaign_id = first.body["campaign_id"]

    # When it is retried, once with the same body and once with another
    again = await open_campaign(api, body, "spring-pots")
    other = await open_campaign(api, {**body, "max_quantity": 3}, "spring-pots")

    # Then the retry answers the same campaign, the other body is refused as reused
    assert (again.status, again.body, again.headers["Location"]) == (202, first.body, f"/v1/campaigns/{campaign_id}")
    assert refused_as_reused([other]) and other.body["error"]["details"] == {"campaign_id": campaign_id}
    # And the campaign was opened once: one hold of 2 units
    assert len(await records(stack, "campaigns.events", "CampaignOpened", campaign_id=campaign_id)) == 1
    assert len(await records(stack, "inventory.commands", "HoldForCampaign", campaign_id=campaign_id)) == 1
    assert (await stock(api, "POT-1"))["reserved"] == before["reserved"] + 2
    # (its units go back for the next tests)
    assert (await api.call("DELETE", f"/v1/campaigns/{campaign_id}", VENDOR)).status == 202


async def test_concurrent_campaigns_with_one_key_and_different_bodies_open_one(
        apis: tuple[Api, Api], stack: Stack) -> None:
    before = await quiet_stock(stack, apis[0], "POT-1")
    maxima = list(range(1, CONCURRENT + 1))
    winner, opened, refused = await race(
        apis, lambda api, maximum: open_campaign(api, campaign_body("POT-1", maximum), "autumn-pots"), maxima)
    assert opened.status == 202 and opened.body["status"] == "open" and opened.body["max_quantity"] == maxima[winner]
    campaign_id = opened.body["campaign_id"]
    assert refused_as_reused(refused) and {r.body["error"]["details"]["campaign_id"] for r in refused} == {campaign_id}
    assert len(await records(stack, "campaigns.events", "CampaignOpened", campaign_id=campaign_id)) == 1
    assert (await stock(apis[0], "POT-1"))["reserved"] == before["reserved"] + maxima[winner]
    assert (await apis[0].call("DELETE", f"/v1/campaigns/{campaign_id}", VENDOR)).status == 202


async def test_a_campaign_id_of_the_body_is_the_key(apis: tuple[Api, Api], stack: Stack) -> None:
    # Given a campaign opened with its own id
    api = apis[0]
    before = await quiet_stock(stack, api, "POT-1")
    body = campaign_body("POT-1", 1, campaign_id="pot-duo")
    first = await open_campaign(api, body)
    assert first.status == 202 and first.body["status"] == "open", first.body
    # Then the same request from the same vendor is answered again, any other request for the id is refused
    again = await open_campaign(api, body)
    assert (again.status, again.body) == (first.status, first.body)
    for refused in (await open_campaign(api, {**body, "max_quantity": 2}),
                    await open_campaign(api, body, who=token("vendor", sub="another-vendor"))):
        assert refused.status == 409 and refused.body["error"]["code"] == "campaign_exists"
    # And concurrent openings of one new id with different bodies, through two gateways, open one
    winner, opened, lost = await race(
        apis, lambda api, maximum: open_campaign(api, campaign_body("POT-1", maximum, campaign_id="pot-trio")), [1, 2, 3])
    assert opened.body["max_quantity"] == winner + 1
    assert all(r.status == 409 and r.body["error"]["code"] == "campaign_exists" for r in lost)
    for campaign_id in ("pot-duo", "pot-trio"):
        assert len(await records(stack, "campaigns.events", "CampaignOpened", campaign_id=campaign_id)) == 1
    assert (await stock(api, "POT-1"))["reserved"] == before["reserved"] + 1 + winner + 1
    for campaign_id in ("pot-duo", "pot-trio"):
        assert (await api.call("DELETE", f"/v1/campaigns/{campaign_id}", VENDOR)).status == 202


# --- pledges -----------------------------------------------------------------------------------------


async def test_a_pledge_or_withdrawal_retried_with_its_key_counts_once(api: Api, stack: Stack) -> None:
    # Given a campaign and a customer's pledge of 2 under a key
    assert (await open_campaign(api, campaign_body("MUG-1", 10, campaign_id="mug-keys"))).body["status"] == "open"
    first = await pledge(api, "mug-keys", "kim", 2, "pledge-a")
    assert first.status == 200 and first.body["quantity"] == 2, first.body

    # When it is retried with the same body, and with another
    again = await pledge(api, "mug-keys", "kim", 2, "pledge-a")
    other = await pledge(api, "mug-keys", "kim", 3, "pledge-a")

    # Then the retry gets the first answer, the other body a 409
    assert (again.status, again.body) == (first.status, first.body)
    assert refused_as_reused([other]) and other.body["error"]["details"] == {"pledge_id": first.body["pledge_id"]}

    # When she changes her pledge to 4 and the first one's retry arrives late
    assert (await pledge(api, "mug-keys", "kim", 4, "pledge-b")).body["quantity"] == 4
    late = await pledge(api, "mug-keys", "kim", 2, "pledge-a")
    # Then it gets the first verdict and does not take her pledge back to 2
    assert (late.status, late.body["pledge_id"], late.body["quantity"]) == (200, first.body["pledge_id"], 2)
    mine = (await api.get("/v1/campaigns/mug-keys/pledges/mine", token("customer", sub="kim"))).body
    assert mine["quantity"] == 4 and "request_hash" not in mine["latest"]

    # And a withdrawal retried gets its first answer, not a "nothing to withdraw"; its key sent as a pledge is refused
    withdrawn = await withdraw(api, "mug-keys", "kim", "withdraw-a")
    assert withdrawn.status == 200 and withdrawn.body["quantity"] == 0, withdrawn.body
    again_withdrawn = await withdraw(api, "mug-keys", "kim", "withdraw-a")
    assert (again_withdrawn.status, again_withdrawn.body) == (withdrawn.status, withdrawn.body)
    assert refused_as_reused([await pledge(api, "mug-keys", "kim", 1, "withdraw-a")])
    assert refused_as_reused([await withdraw(api, "mug-keys", "kim", "pledge-a")])

    # And on the funnel: two pledges and one withdrawal, nothing counted twice
    assert [e["payload"]["quantity"] for e in
            await records(stack, "campaigns.events", "PledgeAccepted", campaign_id="mug-keys", customer="kim")] == [2, 4]
    assert len(await records(stack, "campaigns.events", "PledgeWithdrawn", campaign_id="mug-keys", customer="kim")) == 1
    campaign = (await api.get("/v1/campaigns/mug-keys", VENDOR)).body
    assert campaign["pledged_quantity"] == 0


async def test_concurrent_pledges_with_one_key_and_different_bodies_count_one(
        apis: tuple[Api, Api], stack: Stack) -> None:
    assert (await open_campaign(apis[0], campaign_body("MUG-1", 10, campaign_id="mug-race"))).body["status"] == "open"
    quantities = list(range(1, CONCURRENT + 1))
    winner, accepted, refused = await race(
        apis, lambda api, quantity: pledge(api, "mug-race", "lee", quantity, "lee-pledge"), quantities)
    assert accepted.status == 200 and accepted.body["quantity"] == quantities[winner]
    assert refused_as_reused(refused)
    assert {r.body["error"]["details"]["pledge_id"] for r in refused} == {accepted.body["pledge_id"]}
    pledged = await records(stack, "campaigns.events", "PledgeAccepted", campaign_id="mug-race", customer="lee")
    assert [e["payload"]["quantity"] for e in pledged] == [quantities[winner]]
    assert (await apis[0].get("/v1/campaigns/mug-race", VENDOR)).body["pledged_quantity"] == quantities[winner]
