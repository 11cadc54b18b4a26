"""Apache Druid ingests the topics: pydruid's and Druid SQL's answers equal the sums of the events
the pipeline committed (real Druid from Maven Central, real broker, real workers: every agent, the
notifications agent with a real SMTP server, the webhooks agents with a fixture endpoint that fails
its first request)."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from aiohttp import web

from connectors.druid import DruidAnalytics
from devtools.druid import DruidCluster, DruidPorts
from devtools.smtp import serve
from streams import analytics, topics
from tests.conftest import Api, read_topic, token
from tests.harness import RUNS_DIR, WEBHOOK_SECRET, Stack, eventually, eventually_async, free_port
from tests.integration.orders_api import VENDOR, place, settled
from tests.integration.payments_api import send_webhook, settled_past
from tests.integration.test_shipping import carrier, confirmed_order, ship

# Slot 0: every agent; slot 1: notifications (its own group); slot 2: the webhooks agents.
STACK_WORKERS = [{}, {"agents": "notifications"}, {"agents": "webhooks"}]


@pytest.fixture(scope="module")
def stack_env(stripe_mock: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    port = free_port()
    smtp = serve(tmp_path_factory.mktemp("mail"), port)
    try:
        yield {"STRIPE_API_BASE": stripe_mock, "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
               "SMTP_URL": f"smtp://127.0.0.1:{port}", "WEBHOOK_ALLOW_PRIVATE_TARGETS": "1",
               "WEBHOOK_RETRY_SCHEDULE": "1s,1s"}
    finally:
        smtp.stop()


@pytest.fixture
async def endpoint() -> AsyncIterator[str]:
    """A test fixture standing in for a tenant's webhook endpoint: 500 to its first request, then 200."""
    requests: list[bytes] = []

    async def receive(request: web.Request) -> web.Response:
        requests.append(await request.read())
        return web.Response(status=500 if len(requests) == 1 else 200)

    app = web.Application()
    app.router.add_post("/hooks", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/hooks"
    finally:
        await runner.cleanup()


@pytest.fixture(scope="module")
def druid() -> Iterator[DruidCluster]:
    data_dir = RUNS_DIR / f"druid-{uuid.uuid4().hex[:8]}"
    cluster = DruidCluster(data_dir=data_dir, ports=DruidPorts(*(free_port() for _ in range(7))))
    cluster.start()
    try:
        print(f"[druid] ready in {cluster.wait_ready():.0f}s")
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def api(seeded_api: Api) -> Api:
    return seeded_api


async def sell(api: Api, customer: str, lines: dict[str, int], outcome: str | None) -> None:
    """One order through the pipeline; `outcome` is the Stripe event that settles its payment, if any."""
    order = await settled(api, await place(api, customer, lines), customer)
    if outcome is not None and order["status"] == "payment_pending":
        await send_webhook(api, outcome, order)
        await settled_past(api, order, customer, "payment_pending", "paid")


async def recommended_skus(api: Api, sku: str) -> list[str]:
    reply = await api.get(f"/v1/products/{sku}/recommendations?limit=3", token("customer", sub="druid-browser"))
    assert reply.status == 200, reply.body
    return [item["sku"] for item in reply.body["recommendations"]]


def minute(occurred_at: str) -> datetime:
    """The minute an event falls in: Druid keeps `recommendations_served` and
    `inventory_stock_changes` at that query granularity."""
    return datetime.fromisoformat(occurred_at).replace(second=0, microsecond=0)


def click_through(served: list[dict[str, Any]], stock_changes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per tenant, from the committed events: each product recommended counts once; it was ordered if
    a line of a confirmed order (StockCommitted) for it fell in or after the minute it was first
    recommended."""
    first_shown: dict[tuple[str, str], datetime] = {}
    for e in served:
        for sku in e["payload"]["recommended"]:
            at = minute(e["occurred_at"])
            first_shown[(e["tenant"], sku)] = min(at, first_shown.get((e["tenant"], sku), at))
    last_ordered: dict[tuple[str, str], datetime] = {}
    for e in stock_changes:
        if e["type"] == "StockCommitted":
            key, at = (e["tenant"], e["payload"]["sku"]), minute(e["occurred_at"])
            last_ordered[key] = max(at, last_ordered.get(key, at))
    answer: dict[str, dict[str, Any]] = {}
    for (tenant, sku), shown_at in first_shown.items():
        counts = answer.setdefault(tenant, {"recommended": 0, "ordered": 0})
        counts["recommended"] += 1
        counts["ordered"] += (tenant, sku) in last_ordered and last_ordered[(tenant, sku)] >= shown_at
    return {tenant: {**counts, "click_through": counts["ordered"] / counts["recommended"]}
            for tenant, counts in answer.items()}


def committed(stack: Stack, topic: str) -> list[dict[str, Any]]:
    return [json.loads(m.value()) for m in read_topic(stack.bootstrap, stack.topic(topic))]


async def test_druid_answers_equal_the_sums_of_the_committed_events(api: Api, stack: Stack, druid: DruidCluster,
                                                                    endpoint: str) -> None:
    analysis = DruidAnalytics(druid.broker_url, druid.overlord_url, namespace=stack.namespace)
    assert len(analysis.submit_supervisors(stack.bootstrap)) == len(analytics.analysed_topics())
    assert analysis.submit_supervisors(stack.bootstrap) == []  # unchanged specs are left running
    # (an acme webhook endpoint for order status changes, which fails its first request)
    registered = await api.post("/v1/webhooks", token("admin", sub="ada"),
                                {"url": endpoint, "events": ["OrderStatusChanged"]})
    assert registered.status == 201, registered.body

    async def listed() -> bool:
        return bool((await api.get("/v1/webhooks", token("admin", sub="ada"))).body["endpoints"])
    await eventually_async(listed, 30, "the endpoint in the registry the dispatcher reads")

    # Given a known mix of events through the real pipeline: paid, declined, unpaid, rejected
    # orders and a campaign that succeeds
    await sell(api, "druid-a", {"MUG-1": 2}, "payment_intent.amount_capturable_updated")
    await sell(api, "druid-b", {"TEA-1": 1, "CUP-1": 3}, "payment_intent.amount_capturable_updated")
    await sell(api, "druid-c", {"POT-1": 1}, "payment_intent.payment_failed")
    await sell(api, "druid-d", {"MUG-1": 1}, None)
    await sell(api, "druid-e", {"BAG-1": 1}, None)
    ends_at = (datetime.now(UTC) + timedelta(seconds=4)).isoformat()
    opened = await api.post("/v1/campaigns", VENDOR, {
        "campaign_id": "druid-club", "sku": "TEA-1", "group_price": {"amount": 350, "currency": "EUR"},
        "target_quantity": 2, "max_quantity": 5, "ends_at": ends_at,
    })
    assert opened.body["status"] == "open", opened.body
    for customer in ("druid-f", "druid-g"):
        reply = await api.post("/v1/campaigns/druid-club/pledges", token("customer", sub=customer), {"quantity": 1})
        assert reply.status == 200, reply.body
    assert (await api.poll_past("/v1/campaigns/druid-club", VENDOR, ("open", "tipped"), 60))["status"] == "succeeded"
    # ... and recommendations served: TEA-1's (bought with CUP-1 in druid-b's paid order) and BAG-1's
    # (never confirmed: the popularity fallback), before the order below buys CUP-1 and MUG-1 again
    async def tea_recommends_cup() -> bool:
        return "CUP-1" in await recommended_skus(api, "TEA-1")
    await eventually_async(tea_recommends_cup, 60, "CUP-1 among TEA-1's recommendations")
    await recommended_skus(api, "BAG-1")
    # ... and a confirmed order shipped in two parcels: one delivered, one met an exception
    shipped = await confirmed_order(api, "druid-h", {"MUG-1": 1, "CUP-1": 1})
    for tracking, sku in (("EZDRUID0001", "MUG-1"), ("EZDRUID0002", "CUP-1")):
        assert (await ship(api, str(shipped["order_id"]), tracking, {sku: 1})).status == 201
    for tracking, status, minutes in (("EZDRUID0001", "in_transit", 1), ("EZDRUID0001", "delivered", 2),
                                      ("EZDRUID0002", "failure", 3)):
        assert (await carrier(api, tracking, status, minutes)).status == 200
    await asyncio.to_thread(stack.wait_drained)

    # ... and what the topics committed
    topics_read = {spec.name: committed(stack, spec.name) for spec in analytics.analysed_topics()}
    orders = topics_read["orders.events"]
    confirmed = [e for e in orders if e["payload"]["status"] == "confirmed"]
    gmv: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for e in confirmed:
        key = (e["tenant"], e["payload"]["total"]["currency"])
        gmv[key][0] += 1
        gmv[key][1] += e["payload"]["total"]["amount"]
    units: dict[str, dict[str, int]] = defaultdict(lambda: {"sold": 0, "reserved": 0})
    for e in topics_read["inventory.stock-changes"]:
        if e["type"] == "StockCommitted":
            units[e["payload"]["sku"]]["sold"] += e["payload"]["quantity"]
    for e in topics_read["inventory.reservations"]:
        if e["type"] == "StockReserved":
            units[e["payload"]["sku"]]["reserved"] += e["payload"]["quantity"]
    payment_types = Counter(e["type"] for e in topics_read["payments.events"])
    funnel = Counter(e["type"] for e in topics_read["campaigns.events"])
    assert len(confirmed) == 3 and payment_types["PaymentFailed"] == 1 and funnel["CampaignSucceeded"] == 1
    fulfilment: dict[str, dict[str, Any]] = defaultdict(lambda: {"shipments": 0, "delivered": 0, "to_ship": 0,
                                                                 "to_deliver": 0})
    exceptions: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: {"exceptions": 0, "returned": 0})
    for e in topics_read["shipments.events"]:
        totals, payload = fulfilment[e["tenant"]], e["payload"]
        if e["type"] == "ShipmentCreated":
            totals["shipments"] += 1
            totals["to_ship"] += payload["since_confirmed_seconds"]
        elif payload["status"] == "delivered":
            totals["delivered"] += 1
            totals["to_deliver"] += payload["since_confirmed_seconds"]
        if e["type"] == "ShipmentStatusChanged":
            counted = exceptions[(e["tenant"], payload["carrier"])]
            counted["exceptions"] += payload["status"] == "exception"
            counted["returned"] += payload["status"] == "returned"
    assert fulfilment["acme"]["shipments"] == 2 and fulfilment["acme"]["delivered"] == 1
    # (the notifications and webhooks groups go at their own pace: their topics are read again
    # until Druid has all they hold)
    late = ("notifications.events", "webhooks.attempts")

    def told() -> bool:
        topics_read.update({name: committed(stack, name) for name in late})
        kinds = {e["payload"]["kind"] for e in topics_read["notifications.events"]}
        outcomes = {e["payload"]["outcome"] for e in topics_read["webhooks.attempts"]}
        return {"order_confirmed", "shipped"} <= kinds and {"failed", "delivered"} <= outcomes
    eventually(told, 120, "notifications sent and webhook deliveries made")

    # When Druid has ingested every committed event
    def behind() -> dict[str, tuple[int, int]]:
        """Datasources whose event count differs from the topic's: (in Druid, on the topic)."""
        topics_read.update({name: committed(stack, name) for name in late})
        counts = {spec.name: (analysis.events_ingested(spec), len(topics_read[spec.name]))
                  for spec in analytics.analysed_topics()}
        return {name: held for name, held in counts.items() if held[0] != held[1]}

    try:
        eventually(lambda: not behind(), 300, "Druid ingesting every committed event", pause=1.0)
    except AssertionError as late_ingest:
        raise AssertionError(f"{late_ingest}; (in Druid, on the topic) where they differ: {behind()}") from None
    mail: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: {"sent": 0, "refused": 0, "attempts": 0})
    for e in topics_read["notifications.events"]:
        counted = mail[(e["tenant"], e["payload"]["kind"])]
        counted[e["payload"]["outcome"]] += 1
        counted["attempts"] += e["payload"]["attempts"]
    hooks: dict[str, dict[str, int]] = defaultdict(lambda: {"attempts": 0, "failed": 0, "given_up": 0})
    for e in topics_read["webhooks.attempts"]:
        outcome = e["payload"]["outcome"]
        hooks[e["tenant"]]["attempts"] += outcome in ("delivered", "failed", "gave_up")
        hooks[e["tenant"]]["failed"] += outcome in ("failed", "gave_up")
        hooks[e["tenant"]]["given_up"] += outcome == "gave_up"

    # Then its answers, by SQL and by pydruid's native queries, equal the sums of the events
    by_minute = await analysis.run(analysis.gmv_per_minute)
    summed: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for row in by_minute:
        summed[(row.tenant, row.currency)][0] += row.orders
        summed[(row.tenant, row.currency)][1] += row.gmv
    assert summed == gmv
    assert await analysis.run(analysis.confirmed_gmv, "acme", "EUR") == gmv[("acme", "EUR")][1]
    assert await analysis.run(analysis.units_by_sku) == units
    assert await analysis.run(analysis.payment_failure_rate) == payment_types["PaymentFailed"] / payment_types[
        "PaymentIntentCreated"]
    assert await analysis.run(analysis.order_events_by_status) == Counter(e["payload"]["status"] for e in orders)
    assert await analysis.run(analysis.campaign_funnel) == {
        step: funnel[step] for step in ("CampaignOpened", "PledgeAccepted", "CampaignTipped", "CampaignSucceeded")
    }
    assert await analysis.run(analysis.fulfilment_times) == {tenant: {
        "shipments": t["shipments"], "delivered": t["delivered"],
        "seconds_to_ship": t["to_ship"] / t["shipments"] if t["shipments"] else None,
        "seconds_to_deliver": t["to_deliver"] / t["delivered"] if t["delivered"] else None,
    } for tenant, t in fulfilment.items()}
    assert await analysis.run(analysis.delivery_exceptions) == exceptions
    assert await analysis.run(analysis.notifications_by_outcome) == mail
    assert await analysis.run(analysis.webhook_failure_rate) == {tenant: {
        **h, "failure_rate": h["failed"] / h["attempts"]} for tenant, h in hooks.items()}
    clicks = click_through(topics_read["recommendations.served"], topics_read["inventory.stock-changes"])
    assert clicks["acme"]["ordered"] > 0
    assert await analysis.run(analysis.recommendation_click_through) == clicks

    # And a new event is visible to a query shortly after it was committed (printed, not asserted)
    before = analysis.events_ingested(topics.INVENTORY_STOCK_CHANGES)
    reply = await api.post("/v1/inventory/MUG-1/adjustments", VENDOR, {"delta": 1, "reason": "lag probe"})
    applied_at = time.monotonic()
    assert reply.body["status"] == "applied", reply.body
    eventually(lambda: analysis.events_ingested(topics.INVENTORY_STOCK_CHANGES) == before + 1, 120,
               "the probe reaching Druid", pause=0.1)
    print(f"[druid] ingest lag: {time.monotonic() - applied_at:.2f}s from a committed event to a query seeing it")
