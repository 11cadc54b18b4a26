"""The one registry of topics: name, key, payload types, partitions, writers, readers, retention.

The key of a topic decides which worker owns the state it feeds, so it is written down here
beside the topic and nowhere else. Every payload type travels on exactly one topic; producers
look up the topic and key of an event here (`route`). A consumed topic has a dead-letter twin
`<name>.dlq` (same key) for messages its agent could not process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from streams import models as m

DAY_MS = 24 * 60 * 60 * 1000


def sku_key(tenant: str, sku: str) -> bytes:
    return f"{tenant}/{sku}".encode()


def order_key(order_id: object) -> bytes:
    return str(order_id).encode()


def _by_sku(event: m.Envelope) -> bytes:
    return sku_key(event.tenant, event.payload.sku)  # type: ignore[attr-defined]


def _by_order(event: m.Envelope) -> bytes:
    return order_key(event.payload.order_id)  # type: ignore[attr-defined]


def campaign_key(tenant: str, campaign_id: str) -> bytes:
    return f"{tenant}/{campaign_id}".encode()


def _by_campaign(event: m.Envelope) -> bytes:
    return campaign_key(event.tenant, event.payload.campaign_id)  # type: ignore[attr-defined]


def endpoint_key(tenant: str, endpoint_id: object) -> bytes:
    return f"{tenant}/{endpoint_id}".encode()


def _by_endpoint(event: m.Envelope) -> bytes:
    return endpoint_key(event.tenant, event.payload.endpoint_id)  # type: ignore[attr-defined]


def _by_tenant(event: m.Envelope) -> bytes:
    return event.tenant.encode()


def tracking_key(tracking_number: str) -> bytes:
    return tracking_number.encode()


def _by_tracking_number(event: m.Envelope) -> bytes:
    return tracking_key(event.payload.tracking_number)  # type: ignore[attr-defined]


def _by_notifications_key(event: m.Envelope) -> bytes:
    """The notifications table's key, which its commands and events carry: its sources' keys."""
    return event.payload.key.encode()  # type: ignore[attr-defined]


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str
    payloads: tuple[type[m.Payload], ...]
    writers: str
    readers: str
    key_of: Callable[[m.Envelope], bytes]
    consumed: bool = True  # consumed by an agent, hence has a dead-letter topic
    cleanup_policy: str = "delete"
    retention_ms: int = 7 * DAY_MS
    # The Druid datasource that ingests this topic (streams/analytics.py), if analysts query it.
    datasource: str | None = None
    # Every record goes to every partition (its key is not its partition's): each task of its
    # readers holds all of it, as Kafka Streams' global tables do, inside the task's transactions.
    broadcast: bool = False

    @property
    def dead_letter_name(self) -> str:
        return f"{self.name}.dlq"


CATALOG_PRODUCTS = TopicSpec(
    name="catalog.products",
    key="<tenant>/<sku>",
    payloads=(m.ProductUpserted,),
    writers="gateway",
    readers="catalog agent, gateway (the catalog view of listings, gateway/catalog_view.py)",
    key_of=_by_sku,
    # The catalog is the product's latest version: compacted, kept forever.
    cleanup_policy="compact",
    retention_ms=-1,
)
CATALOG_PRICE_CHANGES = TopicSpec(
    name="catalog.price-changes",
    key="<tenant>/<sku>",
    payloads=(m.ProductPriceChanged,),
    writers="catalog agent (an upsert that changed the price)",
    readers="Druid, data science",
    key_of=_by_sku,
    consumed=False,
    datasource="catalog_price_changes",
)
INVENTORY_COMMANDS = TopicSpec(
    name="inventory.commands",
    key="<tenant>/<sku>",
    payloads=(m.AdjustStock, m.ReserveStock, m.ReleaseStock, m.CommitStock, m.HoldForCampaign, m.ReleaseCampaignHold),
    writers="gateway (AdjustStock), orders agent (ReserveStock, ReleaseStock, CommitStock, AdjustStock of refunds), "
    "campaigns agent (HoldForCampaign, ReleaseCampaignHold)",
    readers="inventory agent",
    key_of=_by_sku,
)
INVENTORY_STOCK_CHANGES = TopicSpec(
    name="inventory.stock-changes",
    key="<tenant>/<sku>",
    payloads=(m.StockAdjusted, m.StockAdjustmentRejected, m.StockCommitted),
    writers="inventory agent",
    readers="Druid, data science",
    key_of=_by_sku,
    consumed=False,
    datasource="inventory_stock_changes",
)
INVENTORY_AVAILABILITY = TopicSpec(
    name="inventory.availability",
    key="<tenant>/<sku>",
    payloads=(m.AvailabilityChanged,),
    writers="inventory agent (when a SKU goes in or out of stock)",
    readers="gateway (the catalog view of listings, gateway/catalog_view.py)",
    key_of=_by_sku,
    consumed=False,
    # A SKU's latest availability is all a reader needs: compacted, kept forever, like the catalog.
    cleanup_policy="compact",
    retention_ms=-1,
)
INVENTORY_RESERVATIONS = TopicSpec(
    name="inventory.reservations",
    key="<order_id>",
    payloads=(m.StockReserved, m.StockReservationRejected, m.StockReleased),
    writers="inventory agent",
    readers="orders agent, Druid",
    key_of=_by_order,
    datasource="inventory_reservations",
)
ORDERS_COMMANDS = TopicSpec(
    name="orders.commands",
    key="<order_id>",
    payloads=(m.PlaceOrder, m.CancelOrder, m.ExpireOrderHold),
    writers="gateway (PlaceOrder, CancelOrder), hold-expiry timer (ExpireOrderHold)",
    readers="orders agent",
    key_of=_by_order,
)
ORDERS_EVENTS = TopicSpec(
    name="orders.events",
    key="<order_id>",
    payloads=(m.OrderStatusChanged,),
    writers="orders agent",
    readers="notifications agent (its own group), co-purchases agent (confirmed orders), Druid, data science, "
    "webhooks",
    key_of=_by_order,
    datasource="orders_events",
)

PAYMENTS_COMMANDS = TopicSpec(
    name="payments.commands",
    key="<order_id>",
    payloads=(m.RequestPayment, m.CapturePayment, m.CancelPayment, m.RefundPayment),
    writers="orders agent",
    readers="payments agent",
    key_of=_by_order,
)
PAYMENTS_WEBHOOKS = TopicSpec(
    name="payments.webhooks",
    key="<order_id>",
    payloads=(m.StripeEventReceived,),
    writers="gateway (verified Stripe webhooks)",
    readers="payments agent",
    key_of=_by_order,
)
PAYMENTS_EVENTS = TopicSpec(
    name="payments.events",
    key="<order_id>",
    payloads=(
        m.PaymentIntentCreated, m.PaymentAuthorized, m.PaymentCaptured, m.PaymentFailed, m.PaymentCanceled,
        m.PaymentRefunded, m.PaymentPartiallyRefunded,
    ),
    writers="payments agent",
    readers="orders agent, Druid, data science",
    key_of=_by_order,
    datasource="payments_events",
)

CAMPAIGNS_COMMANDS = TopicSpec(
    name="campaigns.commands",
    key="<tenant>/<campaign_id>",
    payloads=(m.OpenCampaign, m.PledgeToCampaign, m.WithdrawPledge, m.CancelCampaign, m.CloseCampaign),
    writers="gateway (OpenCampaign, PledgeToCampaign, WithdrawPledge, CancelCampaign), deadline timer (CloseCampaign)",
    readers="campaigns agent",
    key_of=_by_campaign,
)
INVENTORY_CAMPAIGN_HOLDS = TopicSpec(
    name="inventory.campaign-holds",
    key="<tenant>/<campaign_id>",
    payloads=(m.CampaignStockHeld, m.CampaignStockRefused),
    writers="inventory agent",
    readers="campaigns agent",
    key_of=_by_campaign,
)
CAMPAIGNS_EVENTS = TopicSpec(
    name="campaigns.events",
    key="<tenant>/<campaign_id>",
    payloads=(
        m.CampaignOpened, m.CampaignRejected, m.PledgeAccepted, m.PledgeRejected, m.PledgeWithdrawn,
        m.CampaignTipped, m.CampaignSucceeded, m.CampaignFailed, m.CampaignCancelled,
    ),
    writers="campaigns agent",
    readers="notifications agent (its own group), Druid (the campaign funnel), data science",
    key_of=_by_campaign,
    datasource="campaigns_events",
)

SHIPMENTS_COMMANDS = TopicSpec(
    name="shipments.commands",
    key="<order_id>",
    payloads=(m.CreateShipment, m.TrackShipment),
    writers="gateway (CreateShipment), shipping agent (TrackShipment: a carrier update resolved to its order)",
    readers="orders agent (the single writer of an order and its shipments)",
    key_of=_by_order,
)
SHIPMENTS_EVENTS = TopicSpec(
    name="shipments.events",
    key="<order_id>",
    payloads=(m.ShipmentCreated, m.ShipmentStatusChanged),
    writers="orders agent (the shipping decision, streams/tables/shipping.py)",
    readers="notifications agent (its own group), Druid, data science",
    key_of=_by_order,
    datasource="shipments_events",
)
SHIPPING_TRACKING = TopicSpec(
    name="shipping.tracking",
    key="<tracking_number>",
    payloads=(m.RegisterTracking, m.CarrierUpdateReceived),
    writers="orders agent (RegisterTracking), gateway (CarrierUpdateReceived, verified carrier webhooks)",
    readers="shipping agent",
    key_of=_by_tracking_number,
)

NOTIFICATIONS_COMMANDS = TopicSpec(
    name="notifications.commands",
    key="<order_id> or <tenant>/<campaign_id> (the notifications table's key)",
    payloads=(m.RetryNotifications,),
    writers="notifications agent's retry timer (RetryNotifications)",
    readers="notifications agent (its own group)",
    key_of=_by_notifications_key,
)
NOTIFICATIONS_EVENTS = TopicSpec(
    name="notifications.events",
    key="<order_id> or <tenant>/<campaign_id> (the notifications table's key)",
    payloads=(m.NotificationSent,),
    writers="notifications agent (a message's final outcome: sent or refused)",
    readers="Druid (messages by kind and outcome), data science",
    key_of=_by_notifications_key,
    consumed=False,
    datasource="notifications_events",
)

WEBHOOKS_COMMANDS = TopicSpec(
    name="webhooks.commands",
    key="<tenant>/<endpoint_id>",
    payloads=(m.RegisterWebhookEndpoint, m.DeleteWebhookEndpoint, m.EnableWebhookEndpoint,
              m.RetryWebhookDeliveries),
    writers="gateway (a tenant admin's endpoints), webhooks agent (RetryWebhookDeliveries, its timer)",
    readers="webhooks agent (its own group)",
    key_of=_by_endpoint,
)
WEBHOOKS_DELIVERIES = TopicSpec(
    name="webhooks.deliveries",
    key="<tenant>/<endpoint_id>",
    payloads=(m.DeliverWebhookEvent,),
    writers="webhook dispatch agent (one per subscribed endpoint and event), the replay command",
    readers="webhooks agent (its own group)",
    key_of=_by_endpoint,
)
WEBHOOKS_REGISTRY = TopicSpec(
    name="webhooks.registry",
    key="<tenant> (broadcast: every partition holds every record)",
    payloads=(m.WebhookEndpointChanged,),
    writers="webhooks agent (an endpoint registered, disabled, enabled or deleted)",
    readers="webhook registry agent (its own group; the dispatch agent reads its table)",
    key_of=_by_tenant,
    broadcast=True,
)
WEBHOOKS_ATTEMPTS = TopicSpec(
    name="webhooks.attempts",
    key="<tenant>/<endpoint_id>",
    payloads=(m.WebhookDeliveryAttempted,),
    writers="webhooks agent",
    readers="Druid (webhook failure rate), data science",
    key_of=_by_endpoint,
    consumed=False,
    datasource="webhook_attempts",
)

# Recommendations: the counts are keyed by the SKU they rank for; the SKU "*" (which no Identifier
# can be) is the tenant's popularity entry, `<tenant>/*`: every confirmed order of a tenant counts on
# that one key, a hot key per tenant (one partition's worth of counting per tenant), acceptable for
# one small update per order.
RECOMMENDATIONS_COMMANDS = TopicSpec(
    name="recommendations.commands",
    key="<tenant>/<sku>, or <tenant>/* for the tenant's popularity",
    payloads=(m.CountCoPurchase,),
    writers="co-purchases agent (one CountCoPurchase per SKU of a confirmed order, and one for the popularity)",
    readers="recommendations agent",
    key_of=_by_sku,
)
RECOMMENDATIONS_SERVED = TopicSpec(
    name="recommendations.served",
    key="<tenant>/<sku>",
    payloads=(m.RecommendationsServed,),
    writers="gateway (GET /v1/products/{sku}/recommendations)",
    readers="Druid (click-through), data science",
    key_of=_by_sku,
    consumed=False,
    datasource="recommendations_served",
)

ALL: tuple[TopicSpec, ...] = (
    CATALOG_PRODUCTS,
    CATALOG_PRICE_CHANGES,
    INVENTORY_COMMANDS,
    INVENTORY_STOCK_CHANGES,
    INVENTORY_AVAILABILITY,
    INVENTORY_RESERVATIONS,
    ORDERS_COMMANDS,
    ORDERS_EVENTS,
    PAYMENTS_COMMANDS,
    PAYMENTS_WEBHOOKS,
    PAYMENTS_EVENTS,
    CAMPAIGNS_COMMANDS,
    INVENTORY_CAMPAIGN_HOLDS,
    CAMPAIGNS_EVENTS,
    SHIPMENTS_COMMANDS,
    SHIPMENTS_EVENTS,
    SHIPPING_TRACKING,
    NOTIFICATIONS_COMMANDS,
    NOTIFICATIONS_EVENTS,
    WEBHOOKS_COMMANDS,
    WEBHOOKS_DELIVERIES,
    WEBHOOKS_REGISTRY,
    WEBHOOKS_ATTEMPTS,
    RECOMMENDATIONS_COMMANDS,
    RECOMMENDATIONS_SERVED,
)
# The platform's events a tenant's webhook endpoints may subscribe to, by envelope type.
WEBHOOK_SOURCES = (ORDERS_EVENTS, PAYMENTS_EVENTS, CAMPAIGNS_EVENTS, SHIPMENTS_EVENTS)
WEBHOOK_EVENT_TYPES = tuple(payload.__name__ for spec in WEBHOOK_SOURCES for payload in spec.payloads)

_BY_PAYLOAD: dict[type[m.Payload], TopicSpec] = {p: spec for spec in ALL for p in spec.payloads}
if len(_BY_PAYLOAD) != sum(len(spec.payloads) for spec in ALL):
    raise RuntimeError("a payload type is declared on two topics; each travels on exactly one")


def route(event: m.Envelope) -> tuple[TopicSpec, bytes]:
    """The topic an event travels on and its message key."""
    spec = _BY_PAYLOAD[type(event.payload)]
    return spec, spec.key_of(event)


def full_name(namespace: str, name: str) -> str:
    return f"{namespace}{name}"


def declared_names(namespace: str) -> list[str]:
    names = []
    for spec in ALL:
        names.append(full_name(namespace, spec.name))
        if spec.consumed:
            names.append(full_name(namespace, spec.dead_letter_name))
    return names
