"""Catalog: the latest version of each product, keyed by <tenant>/<sku>.

An upsert replaces the product but keeps when it was first created (`created_at`, the `newest`
order of listings, which must not move when a product is edited) and, when the price differs from
the stored one, says so with `ProductPriceChanged` (old and new price). A price change never
reaches what was priced before it: a reservation takes the catalog's price when the inventory agent
decides it (`streams/tables/inventory.py`), and a campaign's orders carry their group price.
"""

from __future__ import annotations

from datetime import datetime

from streams.models import Envelope, Payload, Product, ProductPriceChanged, ProductUpserted
from streams.tables.decision import Decision, UnhandledEvent


def decide(state: Product | None, event: Envelope, now: datetime) -> Decision[Product | None]:
    payload = event.payload
    if not isinstance(payload, ProductUpserted):
        raise UnhandledEvent(f"the catalog does not handle {event.type}")
    if state is None:
        created_at = payload.created_at or event.occurred_at
    else:
        created_at = state.created_at or state.updated_at
    product = Product(
        tenant=event.tenant, sku=payload.sku, name=payload.name, price=payload.price, updated_at=event.occurred_at,
        description=payload.description, images=payload.images, attributes=payload.attributes,
        status=payload.status, created_at=created_at,
    )
    events: list[Payload] = []
    if state is not None and state.price != payload.price:
        events.append(ProductPriceChanged(sku=payload.sku, old_price=state.price, new_price=payload.price))
    return Decision(product, events)
