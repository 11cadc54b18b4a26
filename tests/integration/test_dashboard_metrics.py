"""The Grafana dashboard against a live system: after orders through payment, a 429 and a dead
letter, every series and label the dashboard's PromQL reads is on the `/metrics` of the real gateway
or worker, scraped as Prometheus does (with the read credential), with samples."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections import defaultdict

import confluent_kafka
from prometheus_client.parser import text_string_to_metric_families

from devtools.dashboard import TARGET_LABELS, Family, expressions, load_dashboard, series_of
from streams.partitioning import CONFLUENT_PARTITIONER
from tests.conftest import Api, token
from tests.harness import WORKER_READ_HEADERS, Stack, http_status
from tests.integration.orders_api import place, settled
from tests.integration.payments_api import awaiting_payment, send_webhook, settled_past

# One long-poll of a client at a time, so that a second one at once is refused (429, counted).
STACK_ENV = {"GATEWAY_MAX_LONG_POLLS": "1"}


def scrape(url: str) -> str:
    with urllib.request.urlopen(urllib.request.Request(f"{url}/metrics", headers=WORKER_READ_HEADERS),
                                timeout=10) as reply:
        return reply.read().decode()


Samples = dict[str, list[tuple[dict[str, str], float]]]


def live_series(stack: Stack) -> tuple[dict[str, str], Samples]:
    """Declared series (name -> the family's type, from # TYPE) and each sample's labels and value,
    over the gateway and every worker."""
    assert stack.gateway is not None
    declared: dict[str, str] = {}
    samples: Samples = defaultdict(list)
    for process in [stack.gateway, *stack.workers.values()]:
        for family in text_string_to_metric_families(scrape(process.url)):
            for name in Family(family.name, family.type).series:
                declared[name] = family.type
            for sample in family.samples:
                samples[sample.name].append((sample.labels, sample.value))
    return declared, samples


def produce_garbage(stack: Stack) -> None:
    """A record on catalog.products that is no JSON: the catalog agent dead-letters it."""
    producer = confluent_kafka.Producer({"bootstrap.servers": stack.bootstrap, "partitioner": CONFLUENT_PARTITIONER})
    producer.produce(stack.topic("catalog.products"), key=b"acme/DASH-BROKEN", value=b"{not json")
    assert producer.flush(10) == 0


async def test_every_series_the_dashboard_reads_is_on_a_live_metrics_page(seeded_api: Api, stack: Stack) -> None:
    api = seeded_api
    assert stack.gateway is not None
    # Given the scrapes Prometheus makes: refused without the credential
    assert http_status(f"{stack.gateway.url}/metrics") == 401
    # and traffic: an order paid and captured (Stripe calls), another placed, a second long-poll at
    # once (429), a record no agent can read (a dead letter)
    order = await awaiting_payment(api, "dash", {"MUG-1": 1})
    assert (await send_webhook(api, "payment_intent.amount_capturable_updated", order)).status == 200
    confirmed = await settled_past(api, order, "dash", "payment_pending", "paid")
    assert confirmed["status"] == "confirmed", confirmed
    await settled(api, await place(api, "dash2", {"MUG-1": 1}), "dash2")
    path, who = f"/v1/orders/{order['order_id']}?wait=2&known=confirmed", token("customer", sub="dash")
    answers = await asyncio.gather(api.get(path, who), api.get(path, who))
    assert sorted(a.status for a in answers) == [200, 429], [a.body for a in answers]
    produce_garbage(stack)
    stack.wait_drained()

    # When the gateway and the worker are scraped
    declared, samples = None, None
    for _ in range(50):  # the dead letter's counter moves at the commit after it
        declared, samples = live_series(stack)
        if samples.get("fc_dead_letters_total"):
            break
        await asyncio.sleep(0.2)
    assert declared is not None and samples is not None

    # Then every series of every panel is declared, has samples, and carries the labels the panel uses
    for title, expr in expressions(load_dashboard()):
        used = series_of(expr)
        for name in used.series:
            assert name in declared, f"{title}: {name} is on no /metrics page (declared: {sorted(declared)})"
            assert samples.get(name), f"{title}: {name} has no samples after the traffic"
            carried = set().union(*(labels.keys() for labels, _ in samples[name]))
            assert used.labels - TARGET_LABELS <= carried, \
                f"{title}: {name} carries {sorted(carried)}, the panel uses {sorted(used.labels)}"

    # and the traffic moved them
    def total(name: str, **match: str) -> float:
        return sum(value for labels, value in samples[name] if all(labels.get(k) == v for k, v in match.items()))

    assert total("fc_http_requests_total", route="/v1/orders", method="POST", status="202") == 2
    assert total("fc_rate_limit_refusals_total", kind="concurrent_long_polls") == 1
    assert total("fc_dead_letters_total", agent="catalog", reason="invalid_event") >= 1
    assert total("fc_stripe_calls_total", outcome="succeeded") >= 2, json.dumps(samples["fc_stripe_calls_total"])
