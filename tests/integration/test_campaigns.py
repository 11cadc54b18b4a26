"""Group-buying campaigns on the real broker: exact counters under concurrency and a SIGKILL,
deadlines that close campaigns (also across a restart), orders at the group price."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import Api, read_topic, token
from tests.harness import Stack
from tests.integration.orders_api import VENDOR, settled, stock

GROUP_PRICE = {"amount": 999, "currency": "EUR"}


@pytest.fixture
def api(seeded_api: Api) -> Api:
    return seeded_api


async def open_campaign(api: Api, campaign_id: str, sku: str, target: int, maximum: int,
                        ends_in: timedelta = timedelta(minutes=10)) -> dict[str, Any]:
    ends_at = (datetime.now(UTC) + ends_in).isoformat()
    reply = await api.post("/v1/campaigns", VENDOR, {
        "campaign_id": campaign_id, "sku": sku, "group_price": GROUP_PRICE, "target_quantity": target,
        "max_quantity": maximum, "ends_at": ends_at,
    })
    assert reply.status == 202 and reply.body["status"] == "open", reply.body
    return dict(reply.body)


async def pledge(api: Api, campaign_id: str, customer: str, quantity: int = 1) -> Any:
    return await api.post(f"/v1/campaigns/{campaign_id}/pledges", token("customer", sub=customer), {"quantity": quantity})


async def closed(api: Api, campaign_id: str, timeout: float = 90.0) -> dict[str, Any]:
    """Long-poll the campaign until it has closed (after a restart it may show an older status first:
    reads see a worker's state before its transaction commits, and a crash rolls that back)."""
    return await api.poll_past(f"/v1/campaigns/{campaign_id}", VENDOR, ("opening", "open", "tipped"), timeout)


async def test_concurrent_pledges_never_pass_max_quantity(api: Api) -> None:
    # Given a campaign for 10 units with a target of 5
    before = await stock(api, "TEA-1")
    await open_campaign(api, "tea-rush", "TEA-1", target=5, maximum=10)
    assert (await stock(api, "TEA-1"))["reserved"] == before["reserved"] + 10
    # When 30 customers pledge a unit each at once
    replies = await asyncio.gather(*(pledge(api, "tea-rush", f"fan-{n}") for n in range(30)))
    # Then exactly 10 are accepted, the rest refused with a reason they can read back
    assert Counter(r.status for r in replies) == {200: 10, 409: 20}
    assert {r.body["error"]["code"] for r in replies if r.status == 409} == {"max_quantity_reached"}
    campaign = (await api.get("/v1/campaigns/tea-rush", VENDOR)).body
    assert (campaign["status"], campaign["pledged_quantity"], campaign["participants"]) == ("tipped", 10, 10)
    refused = next(n for n, r in enumerate(replies) if r.status == 409)
    mine = (await api.get("/v1/campaigns/tea-rush/pledges/mine", token("customer", sub=f"fan-{refused}"))).body
    assert mine["quantity"] == 0 and mine["latest"]["accepted"] is False
    assert mine["latest"]["reason"].startswith("max_quantity_reached")
    # And the campaign is listed for its SKU
    listed = (await api.get("/v1/campaigns?sku=TEA-1", VENDOR)).body
    assert "tea-rush" in [c["campaign_id"] for c in listed["campaigns"]]


async def test_a_campaign_with_bad_terms_is_refused(api: Api) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    future = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    body = {"sku": "MUG-1", "group_price": GROUP_PRICE, "target_quantity": 5, "max_quantity": 3, "ends_at": future}
    assert (await api.post("/v1/campaigns", VENDOR, body)).status == 422
    assert (await api.post("/v1/campaigns", VENDOR, {**body, "target_quantity": 1, "ends_at": past})).status == 422
    assert (await api.post("/v1/campaigns", token("customer"), {**body, "target_quantity": 1})).status == 403
    # A SKU that is not in the catalog, or not available enough, is rejected with the reason
    ghost = await api.post("/v1/campaigns", VENDOR, {**body, "sku": "GHOST-1", "target_quantity": 1})
    assert ghost.status == 202 and ghost.body["status"] == "rejected" and ghost.body["reason"].startswith("unknown_sku")
    greedy = await api.post("/v1/campaigns", VENDOR, {**body, "sku": "POT-1", "target_quantity": 1,
                                                      "max_quantity": 100_000})
    assert greedy.body["status"] == "rejected" and greedy.body["reason"].startswith("insufficient_stock")


async def test_a_tipped_campaign_succeeds_at_its_deadline_with_an_order_per_pledge(api: Api, stack: Stack) -> None:
    # Given a campaign that reaches its target before the deadline
    before = await stock(api, "MUG-1")
    await open_campaign(api, "mug-club", "MUG-1", target=3, maximum=6, ends_in=timedelta(seconds=6))
    pledges = {"ann": 1, "bob": 2, "cy": 1}
    for customer, units in pledges.items():
        assert (await pledge(api, "mug-club", customer, units)).status == 200
    # When the deadline passes
    done = await closed(api, "mug-club")
    # Then it succeeds and each pledge became an order at the group price, waiting for its payment
    assert (done["status"], done["pledged_quantity"], done["participants"]) == ("succeeded", 4, 3)
    for customer, units in pledges.items():
        mine = (await api.get("/v1/campaigns/mug-club/pledges/mine", token("customer", sub=customer))).body
        order = await settled(api, mine["order_id"], customer)
        assert order["status"] == "payment_pending", order
        assert order["lines"] == [{"sku": "MUG-1", "quantity": units, "unit_price": GROUP_PRICE}]
        assert order["total"] == {"amount": units * GROUP_PRICE["amount"], "currency": "EUR"}
    # ... the orders hold the pledged units and the unpledged two went back
    await asyncio.to_thread(stack.wait_drained)
    after = await stock(api, "MUG-1")
    assert (after["on_hand"], after["reserved"]) == (before["on_hand"], before["reserved"] + 4)


async def test_an_untipped_campaign_fails_and_gives_every_unit_back(api: Api, stack: Stack) -> None:
    before = await stock(api, "CUP-1")
    await open_campaign(api, "cup-club", "CUP-1", target=5, maximum=8, ends_in=timedelta(seconds=5))
    assert (await pledge(api, "cup-club", "dee", 2)).status == 200
    done = await closed(api, "cup-club")
    assert done["status"] == "failed" and done["reason"].startswith("target_not_reached")
    mine = (await api.get("/v1/campaigns/cup-club/pledges/mine", token("customer", sub="dee"))).body
    assert mine["order_id"] is None
    await asyncio.to_thread(stack.wait_drained)
    assert await stock(api, "CUP-1") == before


async def test_a_sigkill_mid_burst_of_pledges_neither_loses_nor_doubles_one(api: Api, stack: Stack) -> None:
    # Given a campaign with room for 40 of 60 customers
    await open_campaign(api, "crash-club", "TEA-1", target=10, maximum=40)
    gate = asyncio.Semaphore(8)

    async def one(n: int) -> None:
        async with gate:
            reply = await pledge(api, "crash-club", f"crash-{n}")
            # While no worker can confirm the campaign exists, the gateway writes nothing and says
            # 503 "retry shortly": the storefront retries.
            for _ in range(60):
                if reply.status != 503:
                    break
                await asyncio.sleep(1)
                reply = await pledge(api, "crash-club", f"crash-{n}")
            assert reply.status in (200, 202, 409), reply.body  # 202: the verdict came after the wait

    # When the worker is SIGKILLed after the first 20 pledges and started again
    await asyncio.gather(*(one(n) for n in range(20)))
    stack.workers[0].kill()
    rest = asyncio.gather(*(one(n) for n in range(20, 60)))
    await asyncio.to_thread(stack.start_worker, 0)
    await rest
    await asyncio.to_thread(stack.wait_ready)
    await asyncio.to_thread(stack.wait_drained)
    # Then every pledge was decided once: the counters equal the accepted verdicts, at most max
    campaign = (await api.get("/v1/campaigns/crash-club", VENDOR)).body
    verdicts = [
        (await api.get("/v1/campaigns/crash-club/pledges/mine", token("customer", sub=f"crash-{n}"))).body
        for n in range(60)
    ]
    assert all(v["latest"] is not None for v in verdicts)
    accepted = [v for v in verdicts if v["latest"]["accepted"]]
    assert campaign["pledged_quantity"] == campaign["participants"] == len(accepted) == 40
    assert all(v["quantity"] == 1 for v in accepted)
    events = [json.loads(m.value()) for m in read_topic(stack.bootstrap, stack.topic("campaigns.events"))]
    per_customer = Counter(e["payload"]["customer"] for e in events
                           if e["type"] == "PledgeAccepted" and e["payload"]["campaign_id"] == "crash-club")
    assert set(per_customer.values()) == {1} and len(per_customer) == 40


async def test_a_worker_restarted_before_the_deadline_still_closes_the_campaign(api: Api, stack: Stack) -> None:
    await open_campaign(api, "restart-club", "MUG-1", target=1, maximum=2, ends_in=timedelta(seconds=10))
    assert (await pledge(api, "restart-club", "eve")).status == 200
    # When the worker dies after the last pledge and comes back before the deadline
    stack.workers[0].kill()
    await asyncio.to_thread(stack.start_worker, 0)
    await asyncio.to_thread(stack.wait_ready)
    # Then the restored deadline still closes it
    done = await closed(api, "restart-club")
    assert done["status"] == "succeeded"
    mine = (await api.get("/v1/campaigns/restart-club/pledges/mine", token("customer", sub="eve"))).body
    assert (await settled(api, mine["order_id"], "eve"))["status"] == "payment_pending"


async def test_a_cancelled_campaign_places_no_order_and_gives_every_unit_back(api: Api, stack: Stack) -> None:
    before = await stock(api, "POT-1")
    await open_campaign(api, "pot-club", "POT-1", target=1, maximum=3)
    assert (await pledge(api, "pot-club", "fay", 2)).status == 200
    # Only staff may cancel
    assert (await api.call("DELETE", "/v1/campaigns/pot-club", token("customer", sub="fay"))).status == 403
    reply = await api.call("DELETE", "/v1/campaigns/pot-club", VENDOR)
    assert reply.status == 202 and reply.body["status"] == "cancelled", reply.body
    assert (await pledge(api, "pot-club", "gus")).status == 409
    mine = (await api.get("/v1/campaigns/pot-club/pledges/mine", token("customer", sub="fay"))).body
    assert mine["order_id"] is None and mine["campaign_status"] == "cancelled"
    await asyncio.to_thread(stack.wait_drained)
    assert await stock(api, "POT-1") == before
    again = await api.call("DELETE", "/v1/campaigns/pot-club", VENDOR)
    assert again.status == 409 and again.body["error"]["code"] == "not_cancellable"
