"""Session fixtures: one real Kafka broker and one stripe-mock for the whole run, HTTP and Kafka helpers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import confluent_kafka
import pytest

from devtools.kafka import throwaway_broker
from devtools.stripe_mock import StripeMock
from gateway.tokens import mint
from streams.settings import load
from tests.harness import JWT_SECRET, RUNS_DIR, free_port


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """`KAFKA_BOOTSTRAP_SERVERS` if set, else a throwaway broker on free ports."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    with throwaway_broker(RUNS_DIR / f"kafka-{uuid.uuid4().hex[:8]}", free_port) as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def stripe_mock() -> Iterator[str]:
    """The Stripe API base: `STRIPE_API_BASE` if set, else a throwaway stripe-mock on a free port."""
    external = os.environ.get("STRIPE_API_BASE")
    if external:
        yield external
        return
    mock = StripeMock(load().stripe_mock_cache_dir)
    RUNS_DIR.mkdir(parents=True, exist_ok=True)
    mock.start(free_port(), log_file=RUNS_DIR / f"stripe-mock-{uuid.uuid4().hex[:8]}.log")
    try:
        yield mock.base_url
    finally:
        mock.stop()


def token(role: str, tenant: str = "acme", sub: str = "alice", amr: list[str] | None = None) -> str:
    """A token the stacks accept (their JWT secret); an admin's says MFA unless `amr` says otherwise."""
    return mint(JWT_SECRET, sub, role, tenant, amr=amr)


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]


class Api:
    """A small async HTTP client for the gateway; every call says who calls it."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession) -> None:
        self.base_url = base_url
        self.session = session

    async def call(self, method: str, path: str, who: str | None, body: Any = None,
                   headers: dict[str, str] | None = None, raw: bytes | None = None) -> Reply:
        all_headers = dict(headers or {})
        if who is not None:
            all_headers["Authorization"] = f"Bearer {who}"
        async with self.session.request(
            method, self.base_url + path, json=body if raw is None else None, data=raw, headers=all_headers
        ) as response:
            payload = await response.json(content_type=None)
            return Reply(response.status, payload, dict(response.headers))

    async def get(self, path: str, who: str | None) -> Reply:
        return await self.call("GET", path, who)

    async def post(self, path: str, who: str | None, body: Any = None, **kwargs: Any) -> Reply:
        return await self.call("POST", path, who, body, **kwargs)

    async def poll_past(self, path: str, who: str, waypoints: Collection[str], timeout: float,
                        appear_wait: float = 0.0) -> dict[str, Any]:
        """Long-poll a resource with a status (an order, a campaign) until its status is none of
        `waypoints`, the storefront's way; `appear_wait` lets a just-accepted one appear first."""
        reply = await self.get(f"{path}?wait={appear_wait:g}", who)
        waited = 0.0
        while reply.status == 200 and reply.body["status"] in waypoints and waited < timeout:
            reply = await self.get(f"{path}?wait=10&known={reply.body['status']}", who)
            waited += 10
        assert reply.status == 200, reply.body
        return dict(reply.body)


@pytest.fixture
async def http() -> Iterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        yield session  # type: ignore[misc]


def read_topic(bootstrap: str, topic: str, expect: int | None = None, idle_seconds: float = 3.0,
               committed_only: bool = True) -> list[Any]:
    """Every committed message of a topic (with `committed_only=False` also those of open and
    aborted transactions), read until `expect` arrived or nothing came for a while."""
    consumer = confluent_kafka.Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"test-reader-{uuid.uuid4().hex}",
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed" if committed_only else "read_uncommitted",
        "enable.auto.commit": False,
    })
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING) for p in partitions])
    messages: list[Any] = []
    idle = 0.0
    try:
        while idle < idle_seconds and (expect is None or len(messages) < expect):
            message = consumer.poll(0.5)
            if message is None or message.error():
                idle += 0.5
                continue
            idle = 0.0
            messages.append(message)
    finally:
        consumer.close()
    return messages
