"""The gateway's aiohttp application: `create_app(settings)`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from confluent_kafka.admin import AdminClient

from connectors.kafka import EventWriter
from connectors.stripe import StripePayments
from gateway.auth import auth_middleware
from gateway.catalog_feed import CatalogFeed
from gateway.catalog_view import CatalogView
from gateway.edge import Edge
from gateway.errors import error_middleware
from gateway.metrics import measure, metrics_view
from gateway.routes import setup_routes
from gateway.services import SERVICES, Services
from gateway.views.health import READINESS, Readiness
from gateway.views.payments import WEBHOOK_PATH
from gateway.views.shipping import WEBHOOK_PATH as CARRIER_WEBHOOK_PATH
from gateway.workers import WorkerReads, kafka_workers
from streams.runtime.reads import read_credential, read_headers
from streams.settings import Settings


def create_app(settings: Settings) -> web.Application:
    authenticate = auth_middleware(settings.jwt_secret, frozenset({WEBHOOK_PATH, CARRIER_WEBHOOK_PATH}), issuer=settings.jwt_issuer,
                                   audience=settings.jwt_audience)
    edge = Edge(settings)
    app = web.Application(
        middlewares=[measure, edge.cors, error_middleware, edge.admission, authenticate, edge.inner],
        client_max_size=settings.max_body_bytes)
    setup_routes(app)
    # The operators' door, outside the API contract (gateway/metrics.py): the workers' read credential.
    app.router.add_get("/metrics", metrics_view(read_credential(settings.jwt_secret)))

    async def open_services(app: web.Application) -> AsyncIterator[None]:
        writer = EventWriter(settings, client_id="gateway")
        await writer.start()
        # One admin client for the app's life: /readyz asks it whether the broker answers, the
        # routing asks it which workers are in the app's consumer groups.
        admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers, "log_level": 0})
        # Every read of a worker carries the credential its read server checks (streams/runtime/reads.py).
        # No cap on connections to the workers: a waiting long-poll holds one, and aiohttp's default of
        # 100 let a hundred long-polls starve every other read; the edge caps long-polls per principal.
        session = aiohttp.ClientSession(headers=read_headers(settings.jwt_secret),
                                        connector=aiohttp.TCPConnector(limit=0))
        reads = WorkerReads(session, settings.worker_urls, settings.topic_partitions,
                            discover=lambda: asyncio.to_thread(kafka_workers, admin, settings.app_id))
        reads.start()
        stripe = StripePayments.from_settings(settings)
        # Listings read the gateway's own view of the catalog, followed by a thread (gateway/catalog_feed.py).
        catalog = CatalogView()
        feed = CatalogFeed(settings, catalog)
        feed.start()
        app[SERVICES] = Services(settings=settings, writer=writer, reads=reads, stripe=stripe, admin=admin,
                                 catalog=catalog)
        app[READINESS] = Readiness(admin, reads, catalog)
        yield
        await asyncio.to_thread(feed.stop)
        await reads.stop()
        await stripe.close()
        await session.close()
        await writer.close()

    app.cleanup_ctx.append(open_services)
    return app
