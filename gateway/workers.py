"""Reads from the workers' tables over HTTP, routed by the gateway to the key's owner.

A worker serves only the table partitions it owns (anything else is a 421), so the gateway keeps a
routing table (table, partition) -> worker URL built from every known worker's `/fc/assignment`.
Known workers are the seeds (FC_WORKER_URLS) plus those found in Kafka: each worker's consumer
has `client.id` "fc-worker <advertised url>" (`CLIENT_ID_PREFIX`) in a group whose id is the app
id or starts with "<app id>-". A background task refreshes both; a read that finds no route, a 421 or a dead worker
asks for a refresh (at most one a second, shared by all reads) and retries until
`unavailable_after`: partitions are unowned only while a rebalance moves them.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from confluent_kafka.admin import AdminClient

from gateway.errors import ApiError
from streams.agents import TABLES
from streams.partitioning import partition_for
from streams.runtime.worker import CLIENT_ID_PREFIX

log = logging.getLogger(__name__)

RETRY_PAUSE = 0.2
# What a 503 tells the client to wait: about one refresh of the routes (a rebalance moves partitions).
RETRY_AFTER_SECONDS = 1
# Reads refresh the routes at most this often; the background task every REFRESH_EVERY.
MIN_REFRESH_SECONDS = 1.0
REFRESH_EVERY = 5.0
# Asking Kafka for the group members costs two admin requests: never more often than this.
MIN_DISCOVERY_SECONDS = 3.0
ASSIGNMENT_TIMEOUT = 2.0
DISCOVERY_TIMEOUT = 5.0


class Unknown(enum.Enum):
    """What a bounded read answers when no worker did in time: the caller decides without it."""

    UNKNOWN = "unknown"


UNKNOWN = Unknown.UNKNOWN


@dataclass(frozen=True)
class Assignment:
    ready: bool
    tables: dict[str, frozenset[int]]


def kafka_workers(admin: AdminClient, app_id: str) -> set[str]:
    """The advertised URLs of the workers in the app's consumer groups (blocking: run it in a thread).

    Only http(s) URLs are taken: a client id is whatever a consumer says it is.
    """
    listed = admin.list_consumer_groups(request_timeout=DISCOVERY_TIMEOUT).result()
    groups = [g.group_id for g in listed.valid if g.group_id == app_id or g.group_id.startswith(f"{app_id}-")]
    urls: set[str] = set()
    for future in (admin.describe_consumer_groups(groups, request_timeout=DISCOVERY_TIMEOUT) if groups else {}).values():
        try:
            members = future.result().members
        except Exception as exc:  # noqa: BLE001 - a group that vanished meanwhile names no worker
            log.debug("describing a consumer group failed: %s", exc)
            continue
        for member in members:
            url = member.client_id.removeprefix(CLIENT_ID_PREFIX)
            if member.client_id.startswith(CLIENT_ID_PREFIX) and url.startswith(("http://", "https://")):
                urls.add(url.rstrip("/"))
    return urls


class WorkerReads:
    def __init__(self, session: aiohttp.ClientSession, seeds: tuple[str, ...], partitions: int,
                 discover: Callable[[], Awaitable[set[str]]] | None = None, unavailable_after: float = 15.0) -> None:
        self.session = session
        self.seeds = {url.rstrip("/") for url in seeds}
        self.partitions = partitions
        self.discover = discover
        self.unavailable_after = unavailable_after
        self.discovered: set[str] = set()
        self.assignments: dict[str, Assignment] = {}
        self.routes: dict[tuple[str, int], str] = {}
        self._refreshed_at = self._discovered_at = -float("inf")
        self._refreshing: asyncio.Task[None] | None = None
        self._discovering: asyncio.Task[None] | None = None
        self._background: asyncio.Task[None] | None = None

    async def state(self, table: str, key: str, wait: float = 0.0, known: str | None = None) -> dict[str, Any] | None:
        params = {"key": key, "wait": f"{wait:.3f}"}
        if known is not None:
            params["known"] = known
        partition = partition_for(key.encode(), self.partitions)
        deadline = time.monotonic() + self.unavailable_after
        problem = "no worker serves the partition"
        while True:
            url = self.routes.get((table, partition))
            if url is not None:
                try:
                    async with self.session.get(
                        f"{url}/state/{table}", params=params, timeout=aiohttp.ClientTimeout(total=wait + 15)
                    ) as response:
                        if response.status == 200:
                            return await response.json()  # type: ignore[no-any-return]
                        if response.status == 404:
                            return None
                        problem = f"{url} answered {response.status}"
                        if response.status == 421 and self.routes.get((table, partition)) == url:
                            del self.routes[(table, partition)]  # moved away: the refresh finds where to
                except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
                    problem = f"{url}: {exc.__class__.__name__}"
                    self._forget(url)
            if time.monotonic() > deadline:
                # The public message names no worker; the log has which one failed and how.
                log.warning("read of %s partition %d gave up: %s", table, partition, problem)
                raise ApiError(503, "unavailable", "the data cannot be read right now; retry shortly",
                               headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
            await self._refresh_soon()
            if self.routes.get((table, partition)) in (None, url):
                await asyncio.sleep(RETRY_PAUSE)  # no new owner yet: give the rebalance a moment

    async def state_within(self, table: str, key: str, seconds: float,
                           wait: float = 0.0) -> dict[str, Any] | None | Unknown:
        """`state`, but UNKNOWN once `seconds` have passed without an answer: for writes, which
        must never wait for a worker (they go to Kafka, and the agents decide)."""
        try:
            async with asyncio.timeout(seconds):
                return await self.state(table, key, wait=wait)
        except (TimeoutError, ApiError):
            return UNKNOWN

    async def readiness(self) -> int:
        """How many (table, partition) pairs no ready worker serves: 0 means every read has an owner."""
        await self._refresh_soon()
        served = {(table, p) for a in self.assignments.values() if a.ready for table, ps in a.tables.items() for p in ps}
        return sum((table, p) not in served for table in TABLES for p in range(self.partitions))

    def start(self) -> None:
        self._background = asyncio.create_task(self._keep_fresh())

    async def stop(self) -> None:
        tasks = [t for t in (self._background, self._refreshing, self._discovering) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _keep_fresh(self) -> None:
        """Keeps the routes current between reads, so that most reads never wait for a refresh."""
        while True:
            try:
                self._discover_soon()
                self._refreshed_at = -float("inf")
                await self._refresh_soon()
            except Exception:  # noqa: BLE001 - the next round tries again; reads refresh on their own meanwhile
                log.exception("refreshing the worker routes failed")
            await asyncio.sleep(REFRESH_EVERY)

    async def _refresh_soon(self) -> None:
        """One refresh at a time, at most one per MIN_REFRESH_SECONDS, shared by every read that
        asks meanwhile; shielded, so a read that gives up does not cancel it for the others."""
        self._discover_soon()
        if self._refreshing is None or self._refreshing.done():
            if time.monotonic() - self._refreshed_at < MIN_REFRESH_SECONDS:
                return
            self._refreshed_at = time.monotonic()
            self._refreshing = asyncio.create_task(self._refresh())
        await asyncio.shield(self._refreshing)

    async def _refresh(self) -> None:
        urls = sorted(self.seeds | self.discovered)
        answers = await asyncio.gather(*(self._assignment(url) for url in urls))
        self.assignments = {url: a for url, a in zip(urls, answers, strict=True) if a is not None}
        # A ready worker wins a partition two workers claim during a handover; a 421 sorts out the rest.
        ordered = sorted(self.assignments.items(), key=lambda item: item[1].ready)
        self.routes = {(table, p): url for url, a in ordered for table, ps in a.tables.items() for p in ps}

    async def _assignment(self, url: str) -> Assignment | None:
        try:
            async with self.session.get(f"{url}/fc/assignment", timeout=aiohttp.ClientTimeout(total=ASSIGNMENT_TIMEOUT)) as response:
                response.raise_for_status()
                body = await response.json()
            if body["partitions"] != self.partitions:
                # Its partition numbers mean other keys than ours: routing by them would misdirect reads.
                log.error("worker %s has %s partitions, the gateway %d (FC_TOPIC_PARTITIONS): ignored",
                          url, body["partitions"], self.partitions)
                return None
            return Assignment(bool(body["ready"]), {t: frozenset(map(int, ps)) for t, ps in body["tables"].items()})
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.debug("worker %s gave no assignment: %s", url, exc.__class__.__name__)
            return None

    def _forget(self, url: str) -> None:
        """A worker that does not answer serves nothing until a refresh finds it again."""
        self.assignments.pop(url, None)
        self.routes = {route: owner for route, owner in self.routes.items() if owner != url}

    def _discover_soon(self) -> None:
        """Starts a Kafka discovery when the last is MIN_DISCOVERY_SECONDS old; nobody awaits it."""
        busy = self._discovering is not None and not self._discovering.done()
        if self.discover is None or busy or time.monotonic() - self._discovered_at < MIN_DISCOVERY_SECONDS:
            return
        self._discovered_at = time.monotonic()
        self._discovering = asyncio.create_task(self._discover(self.discover))

    async def _discover(self, discover: Callable[[], Awaitable[set[str]]]) -> None:
        try:
            found = await discover()
        except Exception as exc:  # noqa: BLE001 - Kafka unreachable: keep the workers found last time
            log.warning("finding workers in Kafka failed: %s", exc)
            return
        new = found - self.discovered - self.seeds
        self.discovered = found
        if new:
            log.info("workers found in Kafka: %s", ", ".join(sorted(new)))
            self._refreshed_at = -float("inf")
            await self._refresh_soon()
