"""Prometheus metrics on the real stack: `/metrics` of the gateway and of a worker before and after a
burst of orders (and one poison record), compared with what the test itself sent and read back."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from typing import Any

import aiohttp
import confluent_kafka
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Api
from tests.harness import WORKER_READ_HEADERS, Stack, eventually_async
from tests.integration.orders_api import place, settled

BURST = 30
SKU = "TEA-1"  # 120 units on hand in the opening stock: every order of the burst is reserved
# No metric may have more label sets than this (histogram buckets apart): a label holding ids or
# keys would grow with the burst.
MOST_SERIES_PER_METRIC = 100

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def api(seeded_api: Api) -> Api:
    return seeded_api


async def scrape(http: aiohttp.ClientSession, url: str) -> tuple[Samples, str]:
    async with http.get(f"{url}/metrics", headers=WORKER_READ_HEADERS) as reply:
        assert reply.status == 200, await reply.text()
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = await reply.text()
    samples = {(sample.name, frozenset(sample.labels.items())): sample.value
               for family in text_string_to_metric_families(text) for sample in family.samples}
    return samples, text


def get(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str) -> float:
    return sum(value for (sample, _), value in samples.items() if sample == name)


def delta(after: Samples, before: Samples, name: str, **labels: str) -> float:
    return get(after, name, **labels) - get(before, name, **labels)


def urls(stack: Stack) -> tuple[str, str]:
    assert stack.gateway is not None
    return stack.gateway.url, stack.workers[0].url


async def test_metrics_answer_only_the_read_credential(stack: Stack, http: aiohttp.ClientSession) -> None:
    for url in urls(stack):
        for headers in ({}, {"Authorization": "Bearer not-the-credential"}):
            async with http.get(f"{url}/metrics", headers=headers) as reply:
                assert reply.status == 401, url
        async with http.get(f"{url}/metrics", headers=WORKER_READ_HEADERS) as reply:
            assert reply.status == 200, url


async def test_a_burst_of_orders_moves_the_counters_by_what_was_sent(
        api: Api, stack: Stack, http: aiohttp.ClientSession) -> None:
    gateway_url, worker_url = urls(stack)
    gateway_before, _ = await scrape(http, gateway_url)
    worker_before, _ = await scrape(http, worker_url)

    # When BURST customers each order one unit, a poison record lands on orders.commands, and every
    # order is read back past its waypoints
    customers = [f"metrics-{n}" for n in range(BURST)]
    order_ids = await asyncio.gather(*(place(api, customer, {SKU: 1}) for customer in customers))
    poison(stack)
    orders = await asyncio.gather(*(settled(api, order, customer) for order, customer in zip(order_ids, customers,
                                                                                             strict=True)))
    await asyncio.to_thread(stack.wait_drained)
    paying = [order["status"] for order in orders].count("payment_pending")
    assert paying == BURST, [order["status"] for order in orders]

    # Then the gateway counted exactly BURST accepted placements under the route's canonical path
    gateway_after, gateway_text = await scrape(http, gateway_url)
    assert delta(gateway_after, gateway_before, "fc_http_requests_total",
                 route="/v1/orders", method="POST", status="202") == BURST
    assert delta(gateway_after, gateway_before, "fc_http_request_duration_seconds_count",
                 route="/v1/orders", method="POST") == BURST
    assert delta(gateway_after, gateway_before, "fc_http_requests_total",
                 route="/v1/orders/{order_id}", method="GET", status="200") >= BURST
    assert get(gateway_after, "fc_long_polls_waiting") == 0

    # And the worker counted what it committed: each PlaceOrder and the poison record once
    # (counted at the commit, so exactly once), a reservation per order, an intent per paying order
    async def worker_caught_up() -> Samples | None:
        samples, _ = await scrape(http, worker_url)
        done = delta(samples, worker_before, "fc_events_processed_total", agent="orders",
                     topic="orders.commands") >= BURST + 1
        return samples if done else None

    worker_after = await eventually_async(worker_caught_up, 30, "the worker counting the burst")
    worker_after, worker_text = await scrape(http, worker_url)
    assert delta(worker_after, worker_before, "fc_events_processed_total",
                 agent="orders", topic="orders.commands") == BURST + 1
    assert delta(worker_after, worker_before, "fc_dead_letters_total",
                 agent="orders", topic="orders.commands", reason="invalid_event") == 1
    assert delta(worker_after, worker_before, "fc_decisions_total", agent="orders", outcome="dead_lettered") == 1
    assert delta(worker_after, worker_before, "fc_decisions_total", agent="orders", outcome="applied") >= BURST
    assert delta(worker_after, worker_before, "fc_events_processed_total",
                 agent="inventory", topic="inventory.commands") >= BURST
    assert delta(worker_after, worker_before, "fc_stripe_calls_total", action="create", outcome="succeeded") == paying
    assert delta(worker_after, worker_before, "fc_stripe_call_duration_seconds_count", action="create") == paying
    # Every event counted was in a committed transaction, whose size the batch histogram records
    processed = total(worker_after, "fc_events_processed_total") - total(worker_before, "fc_events_processed_total")
    assert delta(worker_after, worker_before, "fc_commit_batch_events_sum") == processed
    assert delta(worker_after, worker_before, "fc_commit_duration_seconds_count") >= 1
    assert get(worker_after, "fc_assigned_partitions") == stack.partitions
    assert get(worker_after, "fc_rebalances_total", kind="assigned") >= 1
    assert get(worker_after, "fc_transaction_aborts_total") == 0

    # And, drained, the lag of every source partition comes down to 0
    async def no_lag() -> dict[str, float] | None:
        samples, _ = await scrape(http, worker_url)
        lags = {f"{dict(labels)['topic']}[{dict(labels)['partition']}]": value
                for (name, labels), value in samples.items() if name == "fc_consumer_lag_records"}
        return lags if lags and not any(lags.values()) else None

    lags = await eventually_async(no_lag, 30, "the consumer lag coming down to 0")
    assert {name.split("[")[0] for name in lags} >= {"orders.commands", "inventory.commands", "payments.commands"}
    assert {int(name.split("[")[1].rstrip("]")) for name in lags} <= set(range(stack.partitions))

    # And no label holds an order id, a SKU, a customer, the tenant or the namespace, and no metric
    # has more than a bounded number of series
    for text in (gateway_text, worker_text):
        assert_bounded_labels(text, forbidden=[*order_ids, SKU, *customers, "acme", stack.namespace])


def poison(stack: Stack) -> None:
    """A record on orders.commands that is no event: the orders agent dead-letters it."""
    producer = confluent_kafka.Producer({"bootstrap.servers": stack.bootstrap})
    producer.produce(stack.topic("orders.commands"), b"not an event", str(uuid.uuid4()).encode(), partition=0)
    assert producer.flush(10) == 0


def assert_bounded_labels(text: str, forbidden: list[str]) -> None:
    series: dict[str, set[frozenset[tuple[str, str]]]] = defaultdict(set)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels: dict[str, Any] = {k: v for k, v in sample.labels.items() if k not in ("le", "quantile")}
            series[family.name].add(frozenset(labels.items()))
            for value in labels.values():
                for word in forbidden:
                    assert word not in value, f"{family.name} has a label value {value!r} holding {word!r}"
    crowded = {name: len(sets) for name, sets in series.items() if len(sets) > MOST_SERIES_PER_METRIC}
    assert not crowded, crowded
