"""What views use, opened and closed with the application (see `create_app`)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from confluent_kafka.admin import AdminClient

from connectors.kafka import EventWriter
from connectors.stripe import PaymentProvider
from gateway.workers import WorkerReads
from streams.settings import Settings


@dataclass(frozen=True)
class Services:
    settings: Settings
    writer: EventWriter
    reads: WorkerReads
    stripe: PaymentProvider
    admin: AdminClient


SERVICES = web.AppKey("services", Services)


def services(request: web.Request) -> Services:
    return request.app[SERVICES]
