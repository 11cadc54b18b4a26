"""The gateway's aiohttp application: `create_app(settings)`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from connectors.kafka import EventWriter
from connectors.stripe import StripePayments
from gateway.auth import auth_middleware
from gateway.errors import error_middleware
from gateway.routes import setup_routes
from gateway.services import SERVICES, Services
from gateway.views.payments import WEBHOOK_PATH
from gateway.workers import WorkerReads
from streams.settings import Settings


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[error_middleware, auth_middleware(settings.jwt_secret, frozenset({WEBHOOK_PATH}))])
    setup_routes(app)

    async def open_services(app: web.Application) -> AsyncIterator[None]:
        writer = EventWriter(settings, client_id="gateway")
        await writer.start()
        session = aiohttp.ClientSession()
        app[SERVICES] = Services(
            settings=settings, writer=writer, reads=WorkerReads(session, settings.worker_urls),
            stripe=StripePayments.from_settings(settings),
        )
        yield
        await session.close()
        await writer.close()

    app.cleanup_ctx.append(open_services)
    return app
