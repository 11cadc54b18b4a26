"""What views use, opened and closed with the application (see `create_app`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web
from confluent_kafka.admin import AdminClient

from connectors.kafka import EventWriter
from connectors.stripe import PaymentProvider
from gateway.catalog_view import CatalogView
from gateway.workers import WorkerReads
from streams.settings import Settings


@dataclass(frozen=True)
class Services:
    settings: Settings
    writer: EventWriter
    reads: WorkerReads
    stripe: PaymentProvider
    admin: AdminClient
    # The listings' read model (gateway/catalog_view.py), filled by the app's catalog feed thread.
    catalog: CatalogView = field(default_factory=CatalogView)


SERVICES = web.AppKey("services", Services)


def services(request: web.Request) -> Services:
    return request.app[SERVICES]
