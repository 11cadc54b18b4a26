"""Shared builders for the unit tests of the models, the topic registry and the pure decisions.

They are fixtures returning plain functions, so test modules need not import this file.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from streams import models as m

DEFAULT_TENANT = "acme"
DEFAULT_TIME = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
DEFAULT_EVENT_ID = uuid.UUID(int=0xE0)


@pytest.fixture
def make_envelope() -> Callable[..., m.Envelope]:
    """An envelope around `payload` with a fixed id, tenant and time unless given."""

    def build(
        payload: m.Payload,
        *,
        tenant: str = DEFAULT_TENANT,
        at: datetime = DEFAULT_TIME,
        event_id: uuid.UUID = DEFAULT_EVENT_ID,
    ) -> m.Envelope:
        return m.Envelope.new(tenant, payload, event_id=event_id, occurred_at=at)

    return build


@pytest.fixture
def make_product() -> Callable[..., m.Product]:
    def build(
        sku: str = "SKU-1",
        *,
        tenant: str = DEFAULT_TENANT,
        amount: int = 1250,
        currency: str = "USD",
        name: str = "Mug",
    ) -> m.Product:
        return m.Product(
            tenant=tenant,
            sku=sku,
            name=name,
            price=m.Money(amount=amount, currency=currency),
            updated_at=DEFAULT_TIME,
        )

    return build


@pytest.fixture
def sample_payloads() -> dict[str, m.Payload]:
    """One valid instance of every payload type, by type name (the envelope `type`)."""
    order_id = uuid.UUID(int=42)
    adjustment_id = uuid.UUID(int=43)
    price = m.Money(amount=1250, currency="USD")
    samples: list[m.Payload] = [
        m.ProductUpserted(sku="SKU-1", name="Mug", price=price),
        m.AdjustStock(adjustment_id=adjustment_id, sku="SKU-1", delta=-2, reason="damaged"),
        m.ReserveStock(order_id=order_id, sku="SKU-1", quantity=2),
        m.ReleaseStock(order_id=order_id, sku="SKU-1", reason="order cancelled"),
        m.StockAdjusted(adjustment_id=adjustment_id, sku="SKU-1", delta=5, reason="delivery", on_hand=5, reserved=0),
        m.StockAdjustmentRejected(adjustment_id=adjustment_id, sku="SKU-1", delta=-9, reason="insufficient_stock"),
        m.StockReserved(order_id=order_id, sku="SKU-1", quantity=2, unit_price=price),
        m.StockReservationRejected(order_id=order_id, sku="SKU-1", quantity=2, reason="insufficient_stock"),
        m.StockReleased(order_id=order_id, sku="SKU-1", quantity=2, reason="order cancelled"),
        m.PlaceOrder(
            order_id=order_id,
            customer="cust-1",
            lines=(m.OrderLine(sku="SKU-1", quantity=2), m.OrderLine(sku="SKU-2", quantity=1)),
            request_hash="sha256:abc",
        ),
        m.CancelOrder(order_id=order_id, requested_by="cust-1"),
        m.ExpireOrderHold(order_id=order_id),
        m.OrderStatusChanged(
            order_id=order_id,
            customer="cust-1",
            status="reserved",
            previous_status="pending",
            total=m.Money(amount=2500, currency="USD"),
            item_count=2,
        ),
        m.CommitStock(order_id=order_id, sku="SKU-1"),
        m.StockCommitted(order_id=order_id, sku="SKU-1", quantity=2, on_hand=3, reserved=0),
        m.RequestPayment(order_id=order_id, customer="cust-1", amount=price),
        m.CapturePayment(order_id=order_id),
        m.CancelPayment(order_id=order_id, reason="order cancelled"),
        m.RefundPayment(order_id=order_id, reason="order cancelled"),
        m.StripeEventReceived(order_id=order_id, stripe_event_id="evt_1", stripe_type="payment_intent.succeeded",
                              intent_id="pi_1"),
        m.PaymentIntentCreated(order_id=order_id, intent_id="pi_1", client_secret="pi_1_secret", amount=price),
        m.PaymentAuthorized(order_id=order_id, intent_id="pi_1", amount=price),
        m.PaymentCaptured(order_id=order_id, intent_id="pi_1", amount=price),
        m.PaymentFailed(order_id=order_id, intent_id="pi_1", action="authorize", reason="card declined"),
        m.PaymentCanceled(order_id=order_id, intent_id="pi_1", reason="order cancelled"),
        m.PaymentRefunded(order_id=order_id, intent_id="pi_1", amount=price),
        m.DeadLetter(
            source_topic="inventory.commands",
            source_partition=3,
            source_offset=17,
            error="invalid event",
            original_key="YWNtZS9TS1UtMQ==",
            original_value="e30=",
        ),
    ]
    return {type(payload).__name__: payload for payload in samples}
