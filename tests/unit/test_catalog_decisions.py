"""Catalog decisions (streams/tables/catalog.py): the latest version of each product."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from streams.models import (
    AdjustStock,
    CancelOrder,
    Money,
    Product,
    ProductUpserted,
    ReserveStock,
    StockReserved,
)
from streams.tables import catalog
from streams.tables.decision import UnhandledEvent

UPSERTED_AT = datetime(2024, 5, 2, 9, 30, tzinfo=UTC)
UPSERT = ProductUpserted(sku="SKU-1", name="Blue mug", price=Money(amount=1499, currency="EUR"))


@pytest.fixture
def previous_versions(make_product):
    return {
        "no-product": None,
        "older-version": make_product("SKU-1", tenant="acme", amount=999, currency="USD", name="Mug"),
    }


@pytest.mark.parametrize("previous", ["no-product", "older-version"])
def test_upsert_stores_the_product_as_the_event_describes_it(make_envelope, previous_versions, previous):
    # Given no product, or an older version of it
    state = previous_versions[previous]

    # When a ProductUpserted is decided
    event = make_envelope(UPSERT, tenant="acme", at=UPSERTED_AT)
    decision = catalog.decide(state, event, UPSERTED_AT + timedelta(seconds=3))

    # Then the stored product is exactly the new version, stamped with the event's time, and nothing is emitted
    assert decision.state == Product(
        tenant="acme", sku="SKU-1", name="Blue mug", price=Money(amount=1499, currency="EUR"), updated_at=UPSERTED_AT
    )
    assert decision.events == []


def test_upsert_time_is_stored_in_utc(make_envelope):
    # Given an upsert that occurred at 11:30 at UTC+02:00
    at = datetime(2024, 5, 2, 11, 30, tzinfo=timezone(timedelta(hours=2)))

    # When it is decided
    product = catalog.decide(None, make_envelope(UPSERT, at=at), at).state

    # Then the product's time is the same instant, in UTC
    assert product.updated_at == UPSERTED_AT
    assert product.updated_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "payload",
    [
        AdjustStock(adjustment_id=uuid.UUID(int=1), sku="SKU-1", delta=1, reason="count"),
        ReserveStock(order_id=uuid.UUID(int=2), sku="SKU-1", quantity=1),
        StockReserved(order_id=uuid.UUID(int=2), sku="SKU-1", quantity=1, unit_price=Money(amount=1, currency="USD")),
        CancelOrder(order_id=uuid.UUID(int=2), requested_by="c"),
    ],
    ids=lambda payload: type(payload).__name__,
)
def test_events_the_catalog_does_not_handle_raise_unhandled_event(make_envelope, payload):
    # Given any catalog state
    # When an event of another context reaches the catalog decision
    # Then it is refused as unhandled (the agent dead-letters it)
    with pytest.raises(UnhandledEvent, match=type(payload).__name__):
        catalog.decide(None, make_envelope(payload), UPSERTED_AT)
