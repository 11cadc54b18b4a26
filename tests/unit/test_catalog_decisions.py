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
    ProductPriceChanged,
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


CREATED_AT = datetime(2024, 4, 1, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("previous", "created_at", "events"),
    [
        # a new product is created by its first upsert; no price changed
        ("no-product", UPSERTED_AT, []),
        # an older version stored before created_at was kept: its last update stands for its creation
        ("older-version", datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
         [ProductPriceChanged(sku="SKU-1", old_price=Money(amount=999, currency="USD"),
                              new_price=Money(amount=1499, currency="EUR"))]),
    ],
)
def test_upsert_stores_the_product_as_the_event_describes_it(make_envelope, previous_versions, previous, created_at,
                                                            events):
    # Given no product, or an older version of it
    state = previous_versions[previous]

    # When a ProductUpserted is decided
    event = make_envelope(UPSERT, tenant="acme", at=UPSERTED_AT)
    decision = catalog.decide(state, event, UPSERTED_AT + timedelta(seconds=3))

    # Then the stored product is exactly the new version, stamped with the event's time (its creation kept)
    assert decision.state == Product(
        tenant="acme", sku="SKU-1", name="Blue mug", price=Money(amount=1499, currency="EUR"), updated_at=UPSERTED_AT,
        created_at=created_at,
    )
    assert decision.events == events


def test_new_fields_are_stored_and_the_creation_time_is_kept_across_upserts(make_envelope):
    # Given a product created at CREATED_AT as a draft
    first = ProductUpserted(sku="SKU-1", name="Blue mug", price=Money(amount=1499, currency="EUR"), status="draft")
    state = catalog.decide(None, make_envelope(first, at=CREATED_AT), CREATED_AT).state

    # When it is upserted again, active, with a description, images and attributes, same price
    second = ProductUpserted(sku="SKU-1", name="Blue mug", price=Money(amount=1499, currency="EUR"),
                             description="Glazed stoneware", images=("https://img.example.com/a.jpg",),
                             attributes={"colour": "blue"}, status="active")
    decision = catalog.decide(state, make_envelope(second, at=UPSERTED_AT), UPSERTED_AT)

    # Then the new version has them, keeps its creation time, and no price change is announced
    assert decision.state == Product(
        tenant="acme", sku="SKU-1", name="Blue mug", price=Money(amount=1499, currency="EUR"), updated_at=UPSERTED_AT,
        description="Glazed stoneware", images=("https://img.example.com/a.jpg",), attributes={"colour": "blue"},
        status="active", created_at=CREATED_AT,
    )
    assert decision.events == []


@pytest.mark.parametrize(
    ("old", "new", "events"),
    [
        (Money(amount=1499, currency="EUR"), Money(amount=1299, currency="EUR"),
         [ProductPriceChanged(sku="SKU-1", old_price=Money(amount=1499, currency="EUR"),
                              new_price=Money(amount=1299, currency="EUR"))]),
        (Money(amount=1499, currency="EUR"), Money(amount=1499, currency="USD"),
         [ProductPriceChanged(sku="SKU-1", old_price=Money(amount=1499, currency="EUR"),
                              new_price=Money(amount=1499, currency="USD"))]),
        (Money(amount=1499, currency="EUR"), Money(amount=1499, currency="EUR"), []),
    ],
    ids=["amount", "currency", "unchanged"],
)
def test_a_price_change_is_an_event_with_the_old_and_the_new_price(make_envelope, old, new, events):
    # Given a product at the old price
    state = catalog.decide(None, make_envelope(ProductUpserted(sku="SKU-1", name="Mug", price=old), at=CREATED_AT),
                           CREATED_AT).state

    # When it is upserted at the new price
    decision = catalog.decide(state, make_envelope(ProductUpserted(sku="SKU-1", name="Mug", price=new),
                                                   at=UPSERTED_AT), UPSERTED_AT)

    # Then the price change (if any) is announced, with both prices
    assert decision.events == events
    assert decision.state.price == new


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
