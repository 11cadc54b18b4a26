"""Catalog: the latest version of each product, keyed by <tenant>/<sku>."""

from __future__ import annotations

from datetime import datetime

from streams.models import Envelope, Product, ProductUpserted
from streams.tables.decision import Decision, UnhandledEvent


def decide(state: Product | None, event: Envelope, now: datetime) -> Decision[Product | None]:
    payload = event.payload
    if not isinstance(payload, ProductUpserted):
        raise UnhandledEvent(f"the catalog does not handle {event.type}")
    product = Product(
        tenant=event.tenant, sku=payload.sku, name=payload.name, price=payload.price, updated_at=event.occurred_at
    )
    return Decision(product)
