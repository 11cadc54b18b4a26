"""`/healthz` (the process is up) and `/readyz` (Kafka answers and every partition is served).

`/readyz` is public: it says how many table partitions no ready worker serves, never which workers
there are or where they listen.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from confluent_kafka.admin import AdminClient

from gateway.services import services


def _broker_answers(admin: AdminClient) -> bool:
    try:
        admin.list_topics(timeout=2)
    except Exception:  # noqa: BLE001 - any failure means "not reachable" for a readiness probe
        return False
    return True


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    found = services(request)
    broker_ok, unserved = await asyncio.gather(asyncio.to_thread(_broker_answers, found.admin), found.reads.readiness())
    ready = broker_ok and unserved == 0
    return web.json_response({"ready": ready, "broker": broker_ok, "unserved_partitions": unserved},
                             status=200 if ready else 503)
