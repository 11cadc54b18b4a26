"""The event envelope and its models (streams/models.py)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from streams import models
from streams.models import (
    CancelOrder,
    Envelope,
    ExpireOrderHold,
    Money,
    Payload,
    Product,
    ReleaseStock,
    ReserveStock,
    StockLevel,
)

EVENT_ID = uuid.UUID(int=0xABC)
ORDER_ID = uuid.UUID(int=1)
AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def wire(**overrides: object) -> dict[str, object]:
    """A ReserveStock envelope as it travels on the topic, as a JSON-ready dict."""
    message: dict[str, object] = {
        "event_id": str(EVENT_ID),
        "type": "ReserveStock",
        "schema_version": 1,
        "tenant": "acme",
        "occurred_at": "2024-05-01T12:00:00Z",
        "payload": {"order_id": str(ORDER_ID), "sku": "SKU-1", "quantity": 2},
    }
    return {**message, **overrides}


def raw(message: dict[str, object]) -> bytes:
    return json.dumps(message).encode()


# --- parsing and round trip ----------------------------------------------------------------


def test_envelope_parses_from_the_wire():
    # Given the bytes of a ReserveStock message
    # When they are parsed
    event = Envelope.from_bytes(raw(wire()))

    # Then the payload has the model named by `type`, and the time is UTC
    assert event.payload == ReserveStock(order_id=ORDER_ID, sku="SKU-1", quantity=2)
    assert (event.event_id, event.type, event.tenant, event.schema_version) == (EVENT_ID, "ReserveStock", "acme", 1)
    assert event.occurred_at == AT and event.occurred_at.tzinfo == UTC


@pytest.mark.parametrize("type_name", sorted(Payload.registry))
def test_every_payload_type_survives_a_round_trip_through_bytes(make_envelope, sample_payloads, type_name):
    # Given an envelope around a payload of each registered type
    event = make_envelope(sample_payloads[type_name])

    # When it is written to bytes and read back
    parsed = Envelope.from_bytes(event.to_bytes())

    # Then the same event, with the same payload model, comes back
    assert parsed == event
    assert type(parsed.payload).__name__ == type_name
    assert json.loads(event.to_bytes())["payload"] == sample_payloads[type_name].model_dump(mode="json")


# --- rejected messages ---------------------------------------------------------------------


@pytest.mark.parametrize("type_name", ["NoSuchEvent", "Payload", "reservestock", ""])
def test_unknown_event_type_is_rejected(type_name):
    # Given a message whose type names no payload
    # When it is parsed
    # Then it is refused as an unknown type
    with pytest.raises(ValidationError, match="unknown event type"):
        Envelope.from_bytes(raw(wire(type=type_name)))


def test_message_without_a_type_is_rejected():
    message = wire()
    del message["type"]
    with pytest.raises(ValidationError, match="unknown event type"):
        Envelope.from_bytes(raw(message))


@pytest.mark.parametrize(
    ("type_name", "payload"),
    [
        ("StockReserved", {"order_id": str(ORDER_ID), "sku": "SKU-1", "quantity": 2}),  # unit_price missing
        ("CancelOrder", {"order_id": str(ORDER_ID)}),  # an ExpireOrderHold body
        ("ExpireOrderHold", {"order_id": str(ORDER_ID), "requested_by": "c"}),  # a CancelOrder body
        ("ReserveStock", {"order_id": str(ORDER_ID), "sku": "SKU-1", "quantity": 2, "extra": 1}),
    ],
)
def test_payload_that_does_not_fit_its_type_is_rejected(type_name, payload):
    # Given a message whose payload is not a valid body for its type
    # When it is parsed
    # Then it is refused
    with pytest.raises(ValidationError):
        Envelope.from_bytes(raw(wire(type=type_name, payload=payload)))


@pytest.mark.parametrize(
    ("type_name", "payload"),
    [
        ("ReserveStock", ReleaseStock(order_id=ORDER_ID, sku="SKU-1", reason="r")),
        ("CancelOrder", ExpireOrderHold(order_id=ORDER_ID)),
        ("NoSuchEvent", CancelOrder(order_id=ORDER_ID, requested_by="c")),
    ],
)
def test_envelope_built_with_a_payload_of_another_type_is_rejected(type_name, payload):
    # Given a payload model and an envelope type naming another model
    # When the envelope is built
    # Then it is refused because type and payload disagree
    with pytest.raises(ValidationError, match="does not match payload"):
        Envelope(event_id=EVENT_ID, type=type_name, tenant="acme", occurred_at=AT, payload=payload)


@pytest.mark.parametrize(
    "overrides",
    [
        {"schema_version": 2},
        {"tenant": "acme/eu"},  # would break the "<tenant>/<sku>" key
        {"tenant": ""},
        {"tenant": "-acme"},
        {"tenant": "a" * 65},
        {"event_id": "not-a-uuid"},
        {"unexpected": True},
        {"payload": {"order_id": str(ORDER_ID), "sku": "SKU/1", "quantity": 2}},
    ],
    ids=["schema-version", "tenant-slash", "tenant-empty", "tenant-dash", "tenant-long", "event-id", "extra-field",
         "sku-slash"],
)
def test_invalid_envelope_fields_are_rejected(overrides):
    with pytest.raises(ValidationError):
        Envelope.from_bytes(raw(wire(**overrides)))


# --- timestamps ----------------------------------------------------------------------------


def naive_envelope() -> None:
    Envelope.new("acme", ExpireOrderHold(order_id=ORDER_ID), occurred_at=datetime(2024, 5, 1, 12, 0))


def naive_wire_message() -> None:
    Envelope.from_bytes(raw(wire(occurred_at="2024-05-01T12:00:00")))


def naive_product() -> None:
    Product(tenant="acme", sku="S", name="n", price=Money(amount=1, currency="USD"), updated_at=datetime(2024, 5, 1))


@pytest.mark.parametrize("build", [naive_envelope, naive_wire_message, naive_product], ids=lambda f: f.__name__)
def test_naive_timestamps_are_rejected(build):
    # Given a timestamp without a timezone
    # When a model is built with it
    # Then it is refused
    with pytest.raises(ValidationError, match="timezone"):
        build()


@pytest.mark.parametrize(
    "occurred_at",
    [
        datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))),
        datetime(2024, 5, 1, 7, 0, tzinfo=timezone(timedelta(hours=-5))),
        "2024-05-01T14:00:00+02:00",
    ],
)
def test_aware_timestamps_are_normalised_to_utc(occurred_at):
    # Given a time in another zone
    # When the envelope is built
    event = Envelope.model_validate(wire(occurred_at=occurred_at))

    # Then it holds the same instant in UTC
    assert event.occurred_at == AT
    assert event.occurred_at.utcoffset() == timedelta(0)


# --- derived events ------------------------------------------------------------------------


@pytest.fixture
def parent():
    return Envelope.from_bytes(raw(wire(tenant="globex")))


def test_derive_is_deterministic_across_reprocessing(parent):
    # Given the same input event read twice, as after a crash
    replayed = Envelope.from_bytes(parent.to_bytes())
    payload = ReleaseStock(order_id=ORDER_ID, sku="SKU-1", reason="r")

    # When the same output is derived from each
    # Then both copies carry the same id
    assert parent.derive(payload, 3).event_id == replayed.derive(payload, 3).event_id


@pytest.mark.parametrize(
    ("other_index", "other_payload"),
    [
        (1, ReleaseStock(order_id=ORDER_ID, sku="SKU-1", reason="r")),  # another position
        (0, ExpireOrderHold(order_id=ORDER_ID)),  # another type at the same position
    ],
)
def test_derive_gives_distinct_ids_to_distinct_outputs(parent, other_index, other_payload):
    first = parent.derive(ReleaseStock(order_id=ORDER_ID, sku="SKU-1", reason="r"), 0)
    assert parent.derive(other_payload, other_index).event_id not in {first.event_id, parent.event_id}


def test_derive_ids_depend_on_the_parent(parent):
    other_parent = Envelope.from_bytes(raw(wire(event_id=str(uuid.UUID(int=0xDEF)))))
    payload = ExpireOrderHold(order_id=ORDER_ID)
    assert parent.derive(payload, 0).event_id != other_parent.derive(payload, 0).event_id


@pytest.mark.parametrize("occurred_at", [None, AT + timedelta(seconds=9)], ids=["inherited", "given"])
def test_derived_event_keeps_the_tenant_and_takes_its_time(parent, occurred_at):
    # Given a parent event of tenant "globex"
    # When an event is derived, with or without its own time
    child = parent.derive(ExpireOrderHold(order_id=ORDER_ID), 0, occurred_at)

    # Then it belongs to the same tenant, is typed by its payload, and is stamped as asked
    assert (child.tenant, child.type) == ("globex", "ExpireOrderHold")
    assert child.occurred_at == (occurred_at or parent.occurred_at)


# --- money and stock -----------------------------------------------------------------------


@pytest.mark.parametrize(("amount", "currency"), [(0, "USD"), (1999, "EUR"), (10**12, "JPY")])
def test_valid_money(amount, currency):
    money = Money(amount=amount, currency=currency)
    assert (money.amount, money.currency) == (amount, currency)


@pytest.mark.parametrize(
    ("amount", "currency"),
    [
        (-1, "USD"),  # negative
        (1.5, "USD"),  # minor units are whole
        ("ten", "USD"),
        (100, "usd"),  # lower case
        (100, "US"),
        (100, "USDX"),
        (100, ""),
        (100, "U5D"),
        (100, "USD\n"),
    ],
)
def test_invalid_money_is_rejected(amount, currency):
    with pytest.raises(ValidationError):
        Money(amount=amount, currency=currency)


def test_money_is_immutable():
    money = Money(amount=100, currency="USD")
    with pytest.raises(ValidationError):
        money.amount = 200  # type: ignore[misc]


@pytest.mark.parametrize(
    ("on_hand", "holds", "reserved", "available"),
    [
        (0, {}, 0, 0),
        (10, {"o1": 3}, 3, 7),
        (10, {"o1": 3, "o2": 7}, 10, 0),
    ],
)
def test_stock_level_counts_reserved_and_available(on_hand, holds, reserved, available):
    level = StockLevel(tenant="acme", sku="SKU-1", on_hand=on_hand, holds=holds)
    assert (level.reserved, level.available) == (reserved, available)


@pytest.mark.parametrize("name", ["0:StockReserved", "", "é/ü:1", "x" * 300])
def test_uuid5_is_the_standard_name_based_uuid(name: str) -> None:
    namespace = uuid.uuid4()
    assert models.uuid5(namespace, name) == uuid.uuid5(namespace, name)
