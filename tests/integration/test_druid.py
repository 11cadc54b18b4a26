"""Apache Druid ingests the topics: pydruid's and Druid SQL's answers equal the sums of the events
the pipeline committed (real Druid from Maven Central, real broker, real workers)."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.druid import DruidAnalytics
from devtools.druid import DruidCluster, DruidPorts
from streams import analytics, topics
from tests.conftest import Api, read_topic, token
from tests.harness import RUNS_DIR, Stack, eventually, free_port
from tests.integration.orders_api import VENDOR, place, settled
from tests.integration.payments_api import send_webhook, settled_past


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


def committed(stack: Stack, topic: str) -> list[dict[str, Any]]:
    return [json.loads(m.value()) for m in read_topic(stack.bootstrap, stack.topic(topic))]


async def test_druid_answers_equal_the_sums_of_the_committed_events(api: Api, stack: Stack, druid: DruidCluster) -> None:
    analysis = DruidAnalytics(druid.broker_url, druid.overlord_url, namespace=stack.namespace)
    assert len(analysis.submit_supervisors(stack.bootstrap)) == len(analytics.analysed_topics())
    assert analysis.submit_supervisors(stack.bootstrap) == []  # unchanged specs are left running

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
    assert len(confirmed) == 2 and payment_types["PaymentFailed"] == 1 and funnel["CampaignSucceeded"] == 1

    # When Druid has ingested every committed event
    def behind() -> dict[str, tuple[int, int]]:
        """Datasources whose event count differs from the topic's: (in Druid, on the topic)."""
        counts = {spec.name: (analysis.events_ingested(spec), len(topics_read[spec.name]))
                  for spec in analytics.analysed_topics()}
        return {name: held for name, held in counts.items() if held[0] != held[1]}

    try:
        eventually(lambda: not behind(), 300, "Druid ingesting every committed event", pause=1.0)
    except AssertionError as late:
        raise AssertionError(f"{late}; (in Druid, on the topic) where they differ: {behind()}") from None

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

    # And a new event is visible to a query shortly after it was committed (printed, not asserted)
    before = analysis.events_ingested(topics.INVENTORY_STOCK_CHANGES)
    reply = await api.post("/v1/inventory/MUG-1/adjustments", VENDOR, {"delta": 1, "reason": "lag probe"})
    applied_at = time.monotonic()
    assert reply.body["status"] == "applied", reply.body
    eventually(lambda: analysis.events_ingested(topics.INVENTORY_STOCK_CHANGES) == before + 1, 120,
               "the probe reaching Druid", pause=0.1)
    print(f"[druid] ingest lag: {time.monotonic() - applied_at:.2f}s from a committed event to a query seeing it")
