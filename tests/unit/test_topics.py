"""The topic registry (streams/topics.py): which topic each event travels on, and with which key."""

from __future__ import annotations

import uuid

import pytest

from streams import topics
from streams.models import Payload

ROUTED = sorted(set(Payload.registry) - {"DeadLetter"})

# The routing table, written out independently of the registry it checks.
EXPECTED_TOPIC = {
    "ProductUpserted": "catalog.products",
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
}
SKU_TOPICS = {"catalog.products", "inventory.commands", "inventory.stock-changes"}


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
    # Given an event of tenant "globex" about SKU-1 / order 42
    event = make_envelope(sample_payloads[type_name], tenant="globex")

    # When it is routed
    spec, key = topics.route(event)

    # Then SKU topics are keyed "<tenant>/<sku>" and order topics by the order id
    assert spec.name == EXPECTED_TOPIC[type_name]
    if spec.name in SKU_TOPICS:
        assert (spec.key, key) == ("<tenant>/<sku>", b"globex/SKU-1")
    else:
        assert (spec.key, key) == ("<order_id>", b"00000000-0000-0000-0000-00000000002a")


@pytest.mark.parametrize(
    ("tenant", "sku", "key"),
    [("acme", "SKU-1", b"acme/SKU-1"), ("t.1", "a:b-c_d", b"t.1/a:b-c_d")],
)
def test_sku_key(tenant, sku, key):
    assert topics.sku_key(tenant, sku) == key


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
        "it-1.inventory.commands",
        "it-1.inventory.commands.dlq",
        "it-1.inventory.stock-changes",
        "it-1.inventory.reservations",
        "it-1.inventory.reservations.dlq",
        "it-1.orders.commands",
        "it-1.orders.commands.dlq",
        "it-1.orders.events",
        "it-1.payments.commands",
        "it-1.payments.commands.dlq",
        "it-1.payments.webhooks",
        "it-1.payments.webhooks.dlq",
        "it-1.payments.events",
        "it-1.payments.events.dlq",
    ]


def test_only_the_catalog_is_compacted_and_kept_forever():
    policies = {spec.name: (spec.cleanup_policy, spec.retention_ms) for spec in topics.ALL}
    assert policies.pop("catalog.products") == ("compact", -1)
    assert set(policies.values()) == {("delete", 7 * 24 * 60 * 60 * 1000)}
