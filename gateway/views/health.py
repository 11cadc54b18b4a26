"""`/healthz` (the process is up) and `/readyz` (Kafka answers and every partition is served)."""

from __future__ import annotations

import asyncio

from aiohttp import web
from confluent_kafka.admin import AdminClient

from gateway.services import services
from streams import topics


def _broker_answers(bootstrap: str) -> bool:
    try:
        AdminClient({"bootstrap.servers": bootstrap, "log_level": 0}).list_topics(timeout=2)
    except Exception:  # noqa: BLE001 - any failure means "not reachable" for a readiness probe
        return False
    return True


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    found = services(request)
    settings = found.settings
    broker_ok = await asyncio.to_thread(_broker_answers, settings.bootstrap_servers)
    workers = await found.reads.readiness()
    served = {tp for worker in workers if worker.get("ready") for tp in worker.get("assigned", [])}
    needed = {
        f"{topics.full_name(settings.topic_namespace, spec.name)}:{p}"
        for spec in topics.ALL
        if spec.consumed
        for p in range(settings.topic_partitions)
    }
    unserved = sorted(needed - served)
    ready = broker_ok and not unserved
    body = {"ready": ready, "broker": broker_ok, "workers": workers, "unserved_partitions": unserved[:20]}
    return web.json_response(body, status=200 if ready else 503)
