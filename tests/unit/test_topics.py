"""The topic registry (streams/topics.py): which topic each event travels on, and with which key."""

from __future__ import annotations

import uuid

import pytest

from streams import topics
from datetime import UTC, datetime

from streams.models import POPULARITY, CountCoPurchase, Payload

DAY0 = datetime(2024, 5, 1, tzinfo=UTC)

ROUTED = sorted(set(Payload.registry) - {"DeadLetter"})

# The routing table, written out independently of the registry it checks.
EXPECTED_TOPIC = {
    "ProductUpserted": "catalog.products",
    "ProductPriceChanged": "catalog.price-changes",
    "AvailabilityChanged": "inventory.availability",
    "AdjustStock": "inventory.commands",
    "ReserveStock": "inventory.commands",
    "ReleaseStock": "inventory.commands",
    "CommitStock": "inventory.commands",
    "StockAdjusted": "inventory.stock-changes",
    "StockAdjustmentRejected": "inventory.stock-changes",
    "StockCommitted": "inventory.stock-changes",
    "StockReserved": "inventory.reservations",
    "StockReservationRejected": "inventory.reservations",
    "StockReleased": "inventory.reservations",
    "PlaceOrder": "orders.commands",
    "CancelOrder": "orders.commands",
    "ExpireOrderHold": "orders.commands",
    "OrderStatusChanged": "orders.events",
    "RequestPayment": "payments.commands",
    "CapturePayment": "payments.commands",
    "CancelPayment": "payments.commands",
    "RefundPayment": "payments.commands",
    "StripeEventReceived": "payments.webhooks",
    "PaymentIntentCreated": "payments.events",
    "PaymentAuthorized": "payments.events",
    "PaymentCaptured": "payments.events",
    "PaymentFailed": "payments.events",
    "PaymentCanceled": "payments.events",
    "PaymentRefunded": "payments.events",
    "PaymentPartiallyRefunded": "payments.events",
    "HoldForCampaign": "inventory.commands",
    "ReleaseCampaignHold": "inventory.commands",
    "OpenCampaign": "campaigns.commands",
    "PledgeToCampaign": "campaigns.commands",
    "WithdrawPledge": "campaigns.commands",
    "CloseCampaign": "campaigns.commands",
    "CancelCampaign": "campaigns.commands",
    "CampaignStockHeld": "inventory.campaign-holds",
    "CampaignStockRefused": "inventory.campaign-holds",
    "CampaignOpened": "campaigns.events",
    "CampaignRejected": "campaigns.events",
    "PledgeAccepted": "campaigns.events",
    "PledgeRejected": "campaigns.events",
    "PledgeWithdrawn": "campaigns.events",
    "CampaignTipped": "campaigns.events",
    "CampaignSucceeded": "campaigns.events",
    "CampaignFailed": "campaigns.events",
    "CampaignCancelled": "campaigns.events",
    "CreateShipment": "shipments.commands",
    "TrackShipment": "shipments.commands",
    "ShipmentCreated": "shipments.events",
    "ShipmentStatusChanged": "shipments.events",
    "RegisterTracking": "shipping.tracking",
    "CarrierUpdateReceived": "shipping.tracking",
    "RetryNotifications": "notifications.commands",
    "NotificationSent": "notifications.events",
    "RegisterWebhookEndpoint": "webhooks.commands",
    "DeleteWebhookEndpoint": "webhooks.commands",
    "EnableWebhookEndpoint": "webhooks.commands",
    "RetryWebhookDeliveries": "webhooks.commands",
    "DeliverWebhookEvent": "webhooks.deliveries",
    "WebhookEndpointChanged": "webhooks.registry",
    "WebhookDeliveryAttempted": "webhooks.attempts",
    "CountCoPurchase": "recommendations.commands",
    "RecommendationsServed": "recommendations.served",
}
# The three key families, with the key each topic's sample event (tenant "globex") must get.
SKU_TOPICS = {"catalog.products", "catalog.price-changes", "inventory.commands", "inventory.stock-changes",
              "inventory.availability"}
CAMPAIGN_TOPICS = {"campaigns.commands", "inventory.campaign-holds", "campaigns.events"}
KEYS = {
    "sku": ("<tenant>/<sku>", b"globex/SKU-1"),
    "campaign": ("<tenant>/<campaign_id>", b"globex/camp-7"),
    "order": ("<order_id>", b"00000000-0000-0000-0000-00000000002a"),
    "tracking": ("<tracking_number>", b"EZ1000000001"),
}
TRACKING_TOPICS = {"shipping.tracking"}
# Keyed as the notifications table, whose key is its sources' (the samples name a campaign's).
NOTIFICATION_TOPICS = {"notifications.commands", "notifications.events"}
KEYS["notifications"] = ("<order_id> or <tenant>/<campaign_id> (the notifications table's key)", b"globex/camp-7")


ENDPOINT_TOPICS = {"webhooks.commands", "webhooks.deliveries", "webhooks.attempts"}
KEYS["endpoint"] = ("<tenant>/<endpoint_id>", b"globex/00000000-0000-0000-0000-00000000002e")
KEYS["tenant"] = ("<tenant> (broadcast: every partition holds every record)", b"globex")
# Recommendation counts: by SKU, and "<tenant>/*" for the tenant's popularity entry.
RECOMMENDATION_TOPICS = {"recommendations.commands"}
KEYS["recommendation"] = ("<tenant>/<sku>, or <tenant>/* for the tenant's popularity", b"globex/SKU-1")


def key_family(topic: str) -> str:
    if topic in RECOMMENDATION_TOPICS:
        return "recommendation"
    if topic == "recommendations.served":
        return "sku"
    if topic in ENDPOINT_TOPICS:
        return "endpoint"
    if topic == "webhooks.registry":
        return "tenant"
    if topic in TRACKING_TOPICS:
        return "tracking"
    if topic in NOTIFICATION_TOPICS:
        return "notifications"
    return "sku" if topic in SKU_TOPICS else "campaign" if topic in CAMPAIGN_TOPICS else "order"


def test_the_routing_table_covers_every_routed_payload():
    # A new payload type must be given a topic (and listed above) before it can be sent.
    assert sorted(EXPECTED_TOPIC) == ROUTED


@pytest.mark.parametrize("type_name", ROUTED)
def test_each_payload_travels_on_exactly_one_topic(type_name):
    carrying = [spec.name for spec in topics.ALL if Payload.registry[type_name] in spec.payloads]
    assert carrying == [EXPECTED_TOPIC[type_name]]


def test_dead_letters_travel_only_on_dead_letter_topics():
    # DeadLetter is sent to `<topic>.dlq` directly, never routed onto a registry topic.
    assert not any(Payload.registry["DeadLetter"] in spec.payloads for spec in topics.ALL)


@pytest.mark.parametrize("type_name", ROUTED)
def test_route_gives_the_topic_and_its_key(make_envelope, sample_payloads, type_name):
    # Given an event of tenant "globex" about SKU-1 / order 42 / campaign camp-7 (of SKU-1)
    event = make_envelope(sample_payloads[type_name], tenant="globex")

    # When it is routed
    spec, key = topics.route(event)

    # Then SKU topics are keyed "<tenant>/<sku>", campaign topics "<tenant>/<campaign_id>" (even where the
    # payload names a SKU too) and order topics by the order id
    assert spec.name == EXPECTED_TOPIC[type_name]
    assert (spec.key, key) == KEYS[key_family(spec.name)]


def test_the_popularity_count_is_keyed_by_the_tenant_and_a_star(make_envelope):
    command = CountCoPurchase(sku=POPULARITY, bought_with=("SKU-1", "SKU-2"), order_id=uuid.UUID(int=42),
                              confirmed_at=DAY0)
    assert topics.route(make_envelope(command, tenant="globex")) == (topics.RECOMMENDATIONS_COMMANDS, b"globex/*")


@pytest.mark.parametrize(
    ("key_of", "tenant", "name", "key"),
    [
        (topics.sku_key, "acme", "SKU-1", b"acme/SKU-1"),
        (topics.sku_key, "t.1", "a:b-c_d", b"t.1/a:b-c_d"),
        (topics.campaign_key, "acme", "camp-7", b"acme/camp-7"),
        (topics.campaign_key, "t.1", "spring:mugs_2024-05", b"t.1/spring:mugs_2024-05"),
    ],
    ids=["sku", "sku-punctuation", "campaign", "campaign-punctuation"],
)
def test_sku_and_campaign_keys_are_tenant_slash_name(key_of, tenant, name, key):
    assert key_of(tenant, name) == key


@pytest.mark.parametrize(
    "order_id",
    [uuid.UUID("6f1c2a9e-0d4b-4f7a-9a51-2d1f0c3b8e77"), "6f1c2a9e-0d4b-4f7a-9a51-2d1f0c3b8e77"],
    ids=["uuid", "str"],
)
def test_order_key_is_the_same_for_a_uuid_and_its_text(order_id):
    assert topics.order_key(order_id) == b"6f1c2a9e-0d4b-4f7a-9a51-2d1f0c3b8e77"


@pytest.mark.parametrize(
    ("spec", "dead_letter_name"),
    [
        (topics.CATALOG_PRODUCTS, "catalog.products.dlq"),
        (topics.INVENTORY_COMMANDS, "inventory.commands.dlq"),
        (topics.INVENTORY_RESERVATIONS, "inventory.reservations.dlq"),
        (topics.ORDERS_COMMANDS, "orders.commands.dlq"),
        (topics.CAMPAIGNS_COMMANDS, "campaigns.commands.dlq"),
        (topics.INVENTORY_CAMPAIGN_HOLDS, "inventory.campaign-holds.dlq"),
    ],
    ids=lambda value: getattr(value, "name", None),
)
def test_consumed_topics_have_a_dead_letter_twin(spec, dead_letter_name):
    assert spec.consumed
    assert spec.dead_letter_name == dead_letter_name


def test_declared_names_list_each_topic_and_each_dead_letter_twin_under_the_namespace():
    # Given a namespace
    # When the topics to create are listed
    # Then each registry topic is there, followed by its twin only if an agent consumes it
    assert topics.declared_names("it-1.") == [
        "it-1.catalog.products",
        "it-1.catalog.products.dlq",
        "it-1.catalog.price-changes",
        "it-1.inventory.commands",
        "it-1.inventory.commands.dlq",
        "it-1.inventory.stock-changes",
        "it-1.inventory.availability",
        "it-1.inventory.reservations",
        "it-1.inventory.reservations.dlq",
        "it-1.orders.commands",
        "it-1.orders.commands.dlq",
        "it-1.orders.events",
        "it-1.orders.events.dlq",
        "it-1.payments.commands",
        "it-1.payments.commands.dlq",
        "it-1.payments.webhooks",
        "it-1.payments.webhooks.dlq",
        "it-1.payments.events",
        "it-1.payments.events.dlq",
        "it-1.campaigns.commands",
        "it-1.campaigns.commands.dlq",
        "it-1.inventory.campaign-holds",
        "it-1.inventory.campaign-holds.dlq",
        "it-1.campaigns.events",
        "it-1.campaigns.events.dlq",
        "it-1.shipments.commands",
        "it-1.shipments.commands.dlq",
        "it-1.shipments.events",
        "it-1.shipments.events.dlq",
        "it-1.shipping.tracking",
        "it-1.shipping.tracking.dlq",
        "it-1.notifications.commands",
        "it-1.notifications.commands.dlq",
        "it-1.notifications.events",
        "it-1.webhooks.commands",
        "it-1.webhooks.commands.dlq",
        "it-1.webhooks.deliveries",
        "it-1.webhooks.deliveries.dlq",
        "it-1.webhooks.registry",
        "it-1.webhooks.registry.dlq",
        "it-1.webhooks.attempts",
        "it-1.recommendations.commands",
        "it-1.recommendations.commands.dlq",
        "it-1.recommendations.served",
    ]


def test_only_the_catalog_and_the_availability_are_compacted_and_kept_forever():
    policies = {spec.name: (spec.cleanup_policy, spec.retention_ms) for spec in topics.ALL}
    assert policies.pop("catalog.products") == ("compact", -1)
    assert policies.pop("inventory.availability") == ("compact", -1)
    assert set(policies.values()) == {("delete", 7 * 24 * 60 * 60 * 1000)}
