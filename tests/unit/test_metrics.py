"""Prometheus metrics: what a task counts per commit (streams/runtime/metrics.py, task.py), the
gateway's requests, refusals and long-polls (gateway/metrics.py, edge.py), the Stripe calls
(connectors/stripe.py), and the `/metrics` door. Counters are process-wide, so each test reads
them before and after, under labels of its own where it can."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from connectors.stripe import PaymentRejected, StripePayments
from gateway.auth import auth_middleware
from gateway.edge import Edge
from gateway.errors import error_middleware
from gateway.metrics import GATEWAY, measure, metrics_view
from gateway.tokens import mint
from streams import topics
from streams.models import Envelope, PlaceOrder
from streams.runtime.agent import Agent
from streams.runtime.metrics import WORKER
from streams.runtime.reads import read_credential, read_headers
from streams.runtime.task import Task
from streams.tables.decision import Decision, UnhandledEvent
from tests.unit.test_runtime_task import (
    NS,
    PARTITIONS,
    TABLE,
    HeldCalls,
    RecordedOutputs,
    commit,
    decided,
    key_on,
    message,
    upsert,
)
from tests.unit.test_stripe_retry import DECLINED, INTENT, ScriptedClient

TOPIC = topics.CATALOG_PRODUCTS.name  # the label: the registry's name, without the namespace


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def counting_agent(name: str) -> Agent:
    """Decides by the product's name: `same` keeps the state, `boom` raises, `what` is unhandled,
    anything else stores a product."""
    def decide(state: Any, event: Envelope, now: Any, tables: Any) -> Decision[Any]:
        sku = event.payload.sku  # type: ignore[attr-defined]
        if sku.startswith("same"):
            return Decision(state)
        if sku.startswith("boom"):
            raise RuntimeError("the decision broke")
        if sku.startswith("what"):
            raise UnhandledEvent(f"{name} does not handle this")
        return decided(sku, 100)

    return Agent(name=name, sources=(topics.CATALOG_PRODUCTS,), table=TABLE, decide=decide)


def worker_counts(agent: str) -> dict[str, float]:
    return {
        "processed": value(WORKER, "fc_events_processed_total", agent=agent, topic=TOPIC),
        **{outcome: value(WORKER, "fc_decisions_total", agent=agent, outcome=outcome)
           for outcome in ("applied", "unchanged", "dead_lettered")},
        **{reason: value(WORKER, "fc_dead_letters_total", agent=agent, topic=TOPIC, reason=reason)
           for reason in ("invalid_event", "wrong_topic", "wrong_key", "wrong_partition", "unhandled_event",
                          "decision_failed")},
    }


def test_a_task_counts_each_outcome_and_reason_once_its_transaction_commits(stores) -> None:
    # Given a task of an agent of its own and one event of each kind on its partition
    agent = f"metrics-{uuid.uuid4().hex[:8]}"
    task = Task(3, PARTITIONS, NS, [counting_agent(agent)], stores, RecordedOutputs(), HeldCalls())
    mine = key_on(3, "MUG")
    elsewhere = key_on(5, "MUG")
    order = Envelope.new("acme", PlaceOrder(order_id=uuid.uuid4(), customer="alice", request_hash="h",
                                            lines=[{"sku": mine, "quantity": 1}]))
    events = [
        message(upsert(mine), 0, 3),                                    # applied
        message(upsert(key_on(3, "same")), 1, 3),                      # unchanged
        message(upsert(mine), 2, 3, value=b"not json"),                # invalid_event
        message(order, 3, 3, key=b"acme/" + mine.encode()),             # wrong_topic
        message(upsert(mine), 4, 3, key=b"acme/another"),               # wrong_key
        message(upsert(elsewhere), 5, 3),                               # wrong_partition
        message(upsert(key_on(3, "what")), 6, 3),                      # unhandled_event
        message(upsert(key_on(3, "boom")), 7, 3),                      # decision_failed
    ]
    before = worker_counts(agent)

    # When they are processed: nothing is counted before the commit
    for event in events:
        task.process(event)
    assert task.events_in_transaction() == len(events)
    assert worker_counts(agent) == before

    # Then the commit counts each once, under its outcome and reason
    commit(task)
    after = worker_counts(agent)
    assert {name: after[name] - before[name] for name in after} == {
        "processed": 8, "applied": 1, "unchanged": 1, "dead_lettered": 6,
        "invalid_event": 1, "wrong_topic": 1, "wrong_key": 1, "wrong_partition": 1, "unhandled_event": 1,
        "decision_failed": 1,
    }
    assert task.events_in_transaction() == 0


def test_an_aborted_transaction_counts_nothing_and_its_events_count_when_processed_again(stores) -> None:
    # Given two events processed in a transaction that is then aborted
    agent = f"metrics-{uuid.uuid4().hex[:8]}"
    task = Task(3, PARTITIONS, NS, [counting_agent(agent)], stores, RecordedOutputs(), HeldCalls())
    events = [message(upsert(key_on(3, "MUG")), 0, 3), message(upsert(key_on(3, "POT")), 1, 3)]
    before = worker_counts(agent)
    for event in events:
        task.process(event)
    task.drop_writes()  # the abort path (loop.py)
    commit(task)
    assert worker_counts(agent) == before

    # When they are processed again and committed
    for event in events:
        task.process(event)
    commit(task)

    # Then each counts once
    after = worker_counts(agent)
    assert (after["processed"] - before["processed"], after["applied"] - before["applied"]) == (2, 2)


def test_dead_letter_labels_carry_the_reason_class_never_the_key(stores) -> None:
    agent = f"metrics-{uuid.uuid4().hex[:8]}"
    task = Task(3, PARTITIONS, NS, [counting_agent(agent)], stores, RecordedOutputs(), HeldCalls())
    sku = key_on(5, "SECRET-SKU")
    task.process(message(upsert(sku), 0, 3))
    commit(task)
    exposition = "\n".join(line for line in _text(WORKER).splitlines() if agent in line)
    assert 'reason="wrong_partition"' in exposition
    assert sku not in exposition and "acme" not in exposition


# -- the gateway ---------------------------------------------------------------------------------

JWT_SECRET = "metrics-tests-secret-of-at-least-32-bytes"


async def ok(request: web.Request) -> web.Response:
    return web.json_response({}, status=202 if request.method == "POST" else 200)


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(float(request.query.get("wait", "0")))
    return web.json_response({})


async def gateway_client(**settings: Any) -> TestClient:
    from streams.settings import Settings
    configured = Settings(jwt_secret=JWT_SECRET, **settings)
    edge = Edge(configured)
    app = web.Application(middlewares=[measure, edge.cors, error_middleware, edge.admission,
                                       auth_middleware(JWT_SECRET), edge.inner])
    app.router.add_post("/v1/orders", ok)
    app.router.add_get("/v1/orders/{order_id}", slow)
    app.router.add_get("/metrics", metrics_view(read_credential(JWT_SECRET)))
    client = TestClient(TestServer(app, host="127.0.0.1", port=0))
    await client.start_server()
    return client


def bearer(sub: str = "alice") -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(JWT_SECRET, sub, 'customer', 'acme')}"}


def requests(route: str, method: str, status: str) -> float:
    return value(GATEWAY, "fc_http_requests_total", route=route, method=method, status=status)


async def test_requests_are_counted_under_the_route_never_the_path() -> None:
    client = await gateway_client()
    order_id = str(uuid.uuid4())
    before = {key: requests(*key) for key in [("/v1/orders/{order_id}", "GET", "200"), ("/v1/orders", "POST", "202"),
                                              ("unmatched", "GET", "404"), ("unmatched", "other", "404"),
                                              ("/v1/orders", "POST", "401")]}
    try:
        # When: two reads of an order, a placement, an unknown path, an odd method, no token
        for _ in range(2):
            assert (await client.get(f"/v1/orders/{order_id}", headers=bearer())).status == 200
        assert (await client.post("/v1/orders", json={}, headers=bearer())).status == 202
        assert (await client.get(f"/nowhere/{order_id}")).status == 404
        assert (await client.request("TRACE", f"/nowhere/{order_id}")).status == 404
        assert (await client.post("/v1/orders", json={})).status == 401
        scraped = await client.get("/metrics", headers=read_headers(JWT_SECRET))
        text = await scraped.text()
    finally:
        await client.close()
    # Then each counts once under its route's canonical path, and no label holds the order id
    assert {key: requests(*key) - before[key] for key in before} == {
        ("/v1/orders/{order_id}", "GET", "200"): 2, ("/v1/orders", "POST", "202"): 1,
        ("unmatched", "GET", "404"): 1, ("unmatched", "other", "404"): 1, ("/v1/orders", "POST", "401"): 1}
    assert scraped.status == 200 and scraped.headers["Content-Type"].startswith("text/plain")
    assert order_id not in text and "TRACE" not in text
    names = {family.name for family in text_string_to_metric_families(text)}
    assert {"fc_http_requests", "fc_http_request_duration_seconds", "fc_rate_limit_refusals",
            "fc_long_polls_waiting", "process_cpu_seconds"} <= names


async def test_metrics_without_the_read_credential_is_401() -> None:
    client = await gateway_client()
    try:
        assert (await client.get("/metrics")).status == 401
        assert (await client.get("/metrics", headers=bearer())).status == 401  # a user's token is not it
        assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status == 401
        assert (await client.get("/metrics", headers=read_headers(JWT_SECRET))).status == 200
    finally:
        await client.close()


async def test_refusals_are_counted_by_kind_and_waiting_long_polls_by_a_gauge() -> None:
    client = await gateway_client(rate_limit_writes="2/minute", max_long_polls=1)
    refusals = {kind: value(GATEWAY, "fc_rate_limit_refusals_total", kind=kind)
                for kind in ("write", "concurrent_long_polls")}
    try:
        # Given a long-poll waiting
        waiting = asyncio.ensure_future(client.get(f"/v1/orders/{uuid.uuid4()}?wait=0.5", headers=bearer("carol")))
        for _ in range(100):
            if value(GATEWAY, "fc_long_polls_waiting") >= 1:
                break
            await asyncio.sleep(0.01)
        assert value(GATEWAY, "fc_long_polls_waiting") == 1
        # When a second long-poll and three writes come (a budget of two)
        assert (await client.get(f"/v1/orders/{uuid.uuid4()}?wait=1", headers=bearer("carol"))).status == 429
        statuses = [(await client.post("/v1/orders", json={}, headers=bearer("carol"))).status for _ in range(3)]
        assert statuses == [202, 202, 429]
        assert (await waiting).status == 200
    finally:
        await client.close()
    # Then one refusal of each kind, and no long-poll waits any more
    assert {kind: value(GATEWAY, "fc_rate_limit_refusals_total", kind=kind) - refusals[kind]
            for kind in refusals} == {"write": 1, "concurrent_long_polls": 1}
    assert value(GATEWAY, "fc_long_polls_waiting") == 0


# -- Stripe ------------------------------------------------------------------------------------

def stripe_counts(action: str) -> dict[str, float]:
    return {
        "succeeded": value(REGISTRY, "fc_stripe_calls_total", action=action, outcome="succeeded"),
        "rejected": value(REGISTRY, "fc_stripe_calls_total", action=action, outcome="rejected"),
        "timed": value(REGISTRY, "fc_stripe_call_duration_seconds_count", action=action),
        "2xx": value(REGISTRY, "fc_stripe_attempts_total", action=action, result="2xx"),
        "4xx": value(REGISTRY, "fc_stripe_attempts_total", action=action, result="4xx"),
        "5xx": value(REGISTRY, "fc_stripe_attempts_total", action=action, result="5xx"),
        "connection_error": value(REGISTRY, "fc_stripe_attempts_total", action=action, result="connection_error"),
    }


async def test_stripe_calls_are_counted_by_action_and_outcome_and_attempts_by_answer() -> None:
    from tests.unit.test_stripe_retry import DROPPED, INTERNAL
    # Given a Stripe that drops a connection, fails once, then answers; then declines a capture
    client = ScriptedClient([DROPPED, (500, INTERNAL, {}), (200, INTENT, {}), (402, DECLINED, {})])
    payments = StripePayments("sk_test_123", "http://stripe.invalid", attempts=3, http_client=client)
    before = {action: stripe_counts(action) for action in ("create", "capture")}
    order_id = uuid.uuid4()
    # When an intent is created and its capture declined
    await payments.create_intent(order_id, "acme", 500, "EUR")
    with pytest.raises(PaymentRejected):
        await payments.capture(order_id, "pi_1")
    # Then
    delta = {action: {name: count - before[action][name] for name, count in stripe_counts(action).items()}
             for action in before}
    assert delta == {
        "create": {"succeeded": 1, "rejected": 0, "timed": 1, "2xx": 1, "4xx": 0, "5xx": 1, "connection_error": 1},
        "capture": {"succeeded": 0, "rejected": 1, "timed": 1, "2xx": 0, "4xx": 1, "5xx": 0, "connection_error": 0},
    }
    assert str(order_id) not in _text(REGISTRY)


def _text(registry: CollectorRegistry) -> str:
    from prometheus_client import generate_latest
    return generate_latest(registry).decode()


def test_every_metric_name_follows_the_conventions() -> None:
    families = [*text_string_to_metric_families(_text(WORKER)), *text_string_to_metric_families(_text(GATEWAY))]
    for family in families:
        assert family.name.startswith("fc_"), family.name
        for sample in family.samples:
            if family.type == "counter":
                assert sample.name.endswith("_total"), sample.name
            assert "partition" not in sample.labels or sample.labels["partition"].isdigit()
