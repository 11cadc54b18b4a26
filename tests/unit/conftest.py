"""Shared builders for the unit tests of the models, the topic registry and the pure decisions.

They are fixtures returning plain functions, so test modules need not import this file.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from datetime import UTC, datetime

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from streams import models as m
from streams.runtime.stores import PartitionStore

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
    pledge_id = uuid.UUID(int=44)
    endpoint_id = uuid.UUID(int=46)
    price = m.Money(amount=1250, currency="USD")
    group_price = m.Money(amount=990, currency="USD")
    ends_at = datetime(2024, 5, 8, 12, 0, tzinfo=UTC)
    # Campaign payloads name both a campaign and its SKU: which of the two keys them is what routing decides.
    campaign = {"campaign_id": "camp-7", "sku": "SKU-1"}
    samples: list[m.Payload] = [
        m.ProductUpserted(sku="SKU-1", name="Mug", price=price),
        m.ProductPriceChanged(sku="SKU-1", old_price=price, new_price=group_price),
        m.AvailabilityChanged(sku="SKU-1", available=3, in_stock=True),
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
        m.PaymentPartiallyRefunded(order_id=order_id, intent_id="pi_1", amount=m.Money(amount=250, currency="USD"),
                                   refunded=m.Money(amount=400, currency="USD")),
        m.OpenCampaign(**campaign, group_price=group_price, target_quantity=5, max_quantity=20, ends_at=ends_at,
                       opened_by="vendor-1"),
        m.PledgeToCampaign(campaign_id="camp-7", pledge_id=pledge_id, customer="cust-1", quantity=2),
        m.WithdrawPledge(campaign_id="camp-7", pledge_id=pledge_id, customer="cust-1"),
        m.CloseCampaign(campaign_id="camp-7"),
        m.CancelCampaign(campaign_id="camp-7", requested_by="vendor-1"),
        m.HoldForCampaign(**campaign, quantity=20),
        m.ReleaseCampaignHold(**campaign, keep=5),
        m.CampaignStockHeld(**campaign, quantity=20),
        m.CampaignStockRefused(**campaign, reason="insufficient_stock"),
        m.CampaignOpened(**campaign, group_price=group_price, target_quantity=5, max_quantity=20, ends_at=ends_at),
        m.CampaignRejected(**campaign, reason="ends_in_the_past"),
        m.PledgeAccepted(**campaign, customer="cust-1", quantity=3, delta=1, replaced=True),
        m.PledgeRejected(**campaign, customer="cust-1", quantity=30, reason="max_quantity_reached"),
        m.PledgeWithdrawn(**campaign, customer="cust-1", delta=-3),
        m.CampaignTipped(**campaign, pledged_quantity=5),
        m.CampaignSucceeded(**campaign, pledged_quantity=6, participants=2, orders=2),
        m.CampaignFailed(**campaign, pledged_quantity=4, reason="target_not_reached"),
        m.CampaignCancelled(**campaign, pledged_quantity=4, reason="cancelled by vendor-1"),
        m.CreateShipment(order_id=order_id, shipment_id=uuid.UUID(int=45), lines=(m.ShipmentLine(sku="SKU-1", quantity=1),),
                         carrier="USPS", tracking_number="EZ1000000001", service="Priority", requested_by="vendor-1"),
        m.TrackShipment(order_id=order_id, shipment_id=uuid.UUID(int=45), tracking_number="EZ1000000001",
                        update=m.CarrierUpdate(carrier_event_id="evt_1", status="in_transit", carrier="USPS",
                                               carrier_time=ends_at)),
        m.ShipmentCreated(order_id=order_id, shipment_id=uuid.UUID(int=45), lines=(m.ShipmentLine(sku="SKU-1", quantity=1),),
                          carrier="USPS", tracking_number="EZ1000000001", service="Priority", units=1),
        m.ShipmentStatusChanged(order_id=order_id, shipment_id=uuid.UUID(int=45), status="in_transit", carrier="USPS",
                                tracking_number="EZ1000000001", occurred_at=ends_at, previous_status="label_created"),
        m.RegisterTracking(tracking_number="EZ1000000001", order_id=order_id, shipment_id=uuid.UUID(int=45)),
        m.CarrierUpdateReceived(tracking_number="EZ1000000001",
                                update=m.CarrierUpdate(carrier_event_id="evt_1", status="in_transit", carrier="USPS",
                                                       carrier_time=ends_at)),
        m.RetryNotifications(key="globex/camp-7"),
        m.NotificationSent(key="globex/camp-7", message_id="<4f1c@notifications.fusioncommerce.example>",
                           kind="campaign_failed", locale="en", outcome="refused", attempts=6,
                           detail="given up after 6 attempts: 451 try again later"),
        m.RegisterWebhookEndpoint(endpoint_id=endpoint_id, url="https://hooks.globex.example/fc",
                                  events=("OrderStatusChanged",), secret="whsec_" + "k" * 40, requested_by="ada"),
        m.DeleteWebhookEndpoint(endpoint_id=endpoint_id, requested_by="ada"),
        m.EnableWebhookEndpoint(endpoint_id=endpoint_id, requested_by="ada"),
        m.RetryWebhookDeliveries(endpoint_id=endpoint_id),
        m.DeliverWebhookEvent(endpoint_id=endpoint_id, delivery_id=uuid.UUID(int=47), source_event_id=uuid.UUID(int=48),
                              event_type="OrderStatusChanged", body="{}"),
        m.WebhookEndpointChanged(endpoint_id=endpoint_id, events=("*",), status="enabled"),
        m.WebhookDeliveryAttempted(endpoint_id=endpoint_id, delivery_id=uuid.UUID(int=47),
                                   source_event_id=uuid.UUID(int=48), event_type="OrderStatusChanged", attempt=2,
                                   outcome="failed", status_code=503, error="HTTP 503", duration_ms=41),
        m.CountCoPurchase(sku="SKU-1", bought_with=("SKU-2",), order_id=order_id, confirmed_at=ends_at),
        m.RecommendationsServed(sku="SKU-1", recommended=("SKU-2", "SKU-3"), source="mixed"),
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


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[dict[str, PartitionStore]]:
    """The RocksDB store of partition 3 of the `products` table, in a temporary directory: the
    store beside the runtime's task in test_runtime_task.py and test_metrics.py."""
    opened = {"products": PartitionStore(tmp_path / "products" / "3")}
    yield opened
    for store in opened.values():
        store.close()


@pytest.fixture
async def serve_app() -> AsyncIterator[Callable[[web.Application], Awaitable[str]]]:
    """Serve an aiohttp app on a free loopback port and give its URL: the stand-in workers of the
    gateway tests (closed when the test ends)."""
    servers: list[TestServer] = []

    async def serve(app: web.Application) -> str:
        server = TestServer(app, host="127.0.0.1", port=0)
        await server.start_server()
        servers.append(server)
        return str(server.make_url("")).rstrip("/")

    yield serve
    for server in servers:
        await server.close()
