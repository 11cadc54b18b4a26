"""`/healthz` (the process is up) and `/readyz` (Kafka answers, every partition is served and the
catalog view of listings has read its topics up to where they ended when the gateway started).

`/readyz` answers anyone with ready or not ready and nothing else; an operator's tool that sends the
workers' read credential (`Authorization: Bearer <credential>`, streams/runtime/reads.py) also gets
whether the broker answers and how many table partitions no ready worker serves. Never which
workers there are or where they listen. The checks run at most once a second however many probes
come (`Readiness`), on the application's one admin client.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from aiohttp import web
from confluent_kafka.admin import AdminClient

from gateway.catalog_view import CatalogView
from gateway.services import services
from gateway.workers import WorkerReads
from streams.runtime.reads import presents_credential, read_credential

CHECK_EVERY_SECONDS = 1.0


@dataclass(frozen=True)
class Checked:
    broker: bool
    unserved_partitions: int
    catalog_view: bool = True

    @property
    def ready(self) -> bool:
        return self.broker and self.unserved_partitions == 0 and self.catalog_view


class Readiness:
    """The checks behind /readyz, run at most once per CHECK_EVERY_SECONDS: probes in between get
    the last result, and probes that come while a check runs wait for that one."""

    def __init__(self, admin: AdminClient, reads: WorkerReads, catalog: CatalogView | None = None) -> None:
        self.admin = admin
        self.reads = reads
        self.catalog = catalog
        self._check: asyncio.Future[Checked] | None = None
        self._started = 0.0

    async def checked(self) -> Checked:
        now = time.monotonic()
        if self._check is None or (self._check.done() and now - self._started >= CHECK_EVERY_SECONDS):
            self._started = now
            self._check = asyncio.ensure_future(self._run())
        return await asyncio.shield(self._check)

    async def _run(self) -> Checked:
        broker, unserved = await asyncio.gather(asyncio.to_thread(_broker_answers, self.admin), self.reads.readiness())
        return Checked(broker=broker, unserved_partitions=unserved,
                       catalog_view=self.catalog is None or self.catalog.ready.is_set())


READINESS = web.AppKey("readiness", Readiness)


def _broker_answers(admin: AdminClient) -> bool:
    try:
        admin.list_topics(timeout=2)
    except Exception:  # noqa: BLE001 - any failure means "not reachable" for a readiness probe
        return False
    return True


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    checked = await request.app[READINESS].checked()
    body: dict[str, object] = {"ready": checked.ready}
    if presents_credential(request.headers, read_credential(services(request).settings.jwt_secret)):
        body.update(broker=checked.broker, unserved_partitions=checked.unserved_partitions,
                    catalog_view=checked.catalog_view)
    return web.json_response(body, status=200 if checked.ready else 503)
