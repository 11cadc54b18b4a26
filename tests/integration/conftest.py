"""Fixtures of the integration tier: stacks of real processes on the session's real broker."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.replay import read_fixture, replay
from streams.settings import Settings
from tests.conftest import Api, token
from tests.harness import WEBHOOK_SECRET, Stack

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"



def stack_settings(stack: Stack) -> Settings:
    return Settings(external_bootstrap=stack.bootstrap, topic_namespace=stack.namespace)


async def seed_catalog_and_stock(stack: Stack, api: Api) -> None:
    """Replay the catalog fixture, wait until every product is served, then the opening stock.

    Stock for a SKU the inventory agent has not yet seen in the catalog is refused, so the two
    files are fed in this order.
    """
    settings = stack_settings(stack)
    await replay(settings, [FIXTURES / "catalog.jsonl"], progress=False)
    reader = token("customer")
    for event in read_fixture(FIXTURES / "catalog.jsonl"):
        reply = await api.get(f"/v1/products/{event.payload.sku}", reader)  # type: ignore[attr-defined]
        assert reply.status == 200, reply.body
    await replay(settings, [FIXTURES / "opening-stock.jsonl"], progress=False)
    for event in read_fixture(FIXTURES / "opening-stock.jsonl"):
        payload = event.payload
        for _ in range(100):
            reply = await api.get(f"/v1/inventory/{payload.sku}", reader)  # type: ignore[attr-defined]
            # (at least: a module's earlier test may have restocked; the replayed events change nothing)
            if reply.status == 200 and reply.body["on_hand"] >= payload.delta:  # type: ignore[attr-defined]
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"opening stock of {payload.sku} not applied: {reply.body}")  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def stack_env(stripe_mock: str, request: pytest.FixtureRequest) -> dict[str, str]:
    """The environment of a module's stack: the session's stripe-mock and the module's `STACK_ENV`;
    a module overrides this fixture to point elsewhere (a Stripe that hangs). Not development mode:
    `Stack` passes strong secrets, the ones `token` and `WEBHOOK_SECRET` sign with."""
    return {"STRIPE_API_BASE": stripe_mock, "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            **getattr(request.module, "STACK_ENV", {})}


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, stack_env: dict[str, str], request: pytest.FixtureRequest) -> Iterator[Stack]:
    """Workers and a gateway of their own for each test module: one worker, or one per entry of the
    module's `STACK_WORKERS` (keyword arguments of `Stack.start_worker`)."""
    name = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    workers: list[dict[str, str]] = getattr(request.module, "STACK_WORKERS", [{}])
    started = Stack(bootstrap=kafka_bootstrap, name=name, extra_env=stack_env, worker_slots=len(workers) + 1)
    try:
        for slot, options in enumerate(workers):
            started.start_worker(slot, **options)  # type: ignore[arg-type]
        started.start_gateway()
        yield started
    finally:
        started.stop()


@pytest.fixture
async def seeded_api(stack: Stack, http) -> Api:  # type: ignore[no-untyped-def]
    """The module's gateway, with the catalog and opening stock fixtures fed once per stack."""
    assert stack.gateway is not None
    api = Api(stack.gateway.url, http)
    if not getattr(stack, "seeded", False):
        await seed_catalog_and_stock(stack, api)
        stack.seeded = True  # type: ignore[attr-defined]
    return api
