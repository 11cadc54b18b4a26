"""Pydantic models of every event and of the state kept in tables.

Every message on every topic is an `Envelope`: event_id, type, schema_version, tenant,
occurred_at (UTC) and a payload whose model is chosen by `type`. Commands are named as orders
(`ReserveStock`), events as facts in the past tense (`StockReserved`).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    TypeAdapter,
    ValidationError,
    model_validator,
)

# Tenants and SKUs become parts of message keys ("<tenant>/<sku>"), so neither may hold a "/".
Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")]
CurrencyCode = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
_IDENTIFIER = TypeAdapter(Identifier)


def is_identifier(value: str) -> bool:
    """Whether `value` may be a tenant, a SKU or a campaign id (the rule of `Identifier`, in full)."""
    try:
        _IDENTIFIER.validate_python(value)
    except ValidationError:
        return False
    return True


def _require_utc(value: datetime) -> datetime:
    if value.tzinfo is UTC:
        return value  # the runtime's own clock (utc_now): most timestamps of a worker's outputs
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamps must carry a timezone; use UTC")
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_require_utc)]


def utc_now() -> datetime:
    return datetime.now(UTC)


_VERSION_5 = 0x5 << 76
_VARIANT_RFC_4122 = 0x8 << 60
_VERSION_AND_VARIANT_BITS = (0xF << 76) | (0xC << 60)


def uuid5(namespace: uuid.UUID, name: str) -> uuid.UUID:
    """`uuid.uuid5(namespace, name)`, built from an int: the stdlib's `UUID(bytes=..., version=5)`
    was two thirds of deriving an event's id, once per event a worker sends."""
    digest = int.from_bytes(hashlib.sha1(namespace.bytes + name.encode()).digest()[:16])
    return uuid.UUID(int=digest & ~_VERSION_AND_VARIANT_BITS | _VERSION_5 | _VARIANT_RFC_4122)


@dataclass(frozen=True)
class Analytics:
    """How Druid sees a field (see `streams/analytics.py`): a dimension to group and filter by, a
    metric summed at ingestion (`longSum`), or a nested model whose own marked fields are taken."""

    role: Literal["dimension", "sum", "expand"]
    # For "expand": what the nested columns' names start with; by default the field's name and "_".
    prefix: str | None = None


DIMENSION = Analytics("dimension")
SUM = Analytics("sum")
EXPAND = Analytics("expand")
EXPAND_AS_IS = Analytics("expand", prefix="")  # a payment's `amount: Money` gives `amount` and `currency`


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Money(Frozen):
    """An amount in integer minor units (cents) of an ISO 4217 currency."""

    amount: Annotated[int, SUM] = Field(ge=0)
    currency: Annotated[CurrencyCode, DIMENSION]


# ---------------------------------------------------------------------------------------------
# Payloads. Subclassing `Payload` registers the class under its name, which is the envelope type.


class Payload(Frozen):
    registry: ClassVar[dict[str, type[Payload]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        Payload.registry[cls.__name__] = cls


class ProductStatus:
    """Who sees a product: customers only `active` ones; its tenant's vendors and admins all of them."""

    DRAFT = "draft"
    ACTIVE = "active"
    ARCHIVED = "archived"


ProductStatusName = Literal["draft", "active", "archived"]
MAX_DESCRIPTION = 5000
MAX_IMAGES = 10
MAX_ATTRIBUTES = 50


def _https_url(url: str) -> str:
    if not url.startswith("https://") or len(url) <= len("https://") or any(c.isspace() for c in url):
        raise ValueError("an image must be an https:// URL without spaces")
    return url


ImageUrl = Annotated[str, Field(min_length=9, max_length=2000), AfterValidator(_https_url)]
AttributeName = Annotated[str, Field(min_length=1, max_length=64)]
AttributeValue = Annotated[str, Field(max_length=500)]


class ProductUpserted(Payload):
    sku: Identifier
    name: str = Field(min_length=1, max_length=200)
    price: Money
    # Defaults keep the upserts written before these fields valid, and such products listed to customers.
    description: str = Field("", max_length=MAX_DESCRIPTION)
    images: tuple[ImageUrl, ...] = Field((), max_length=MAX_IMAGES)
    attributes: dict[AttributeName, AttributeValue] = Field(default_factory=dict, max_length=MAX_ATTRIBUTES)
    status: ProductStatusName = "active"
    # When the product was first created, stamped by the gateway from its catalog view, so that the
    # latest record of the compacted topic still says it (listings' `newest` order); None: not known.
    created_at: UtcDatetime | None = None


class ProductPriceChanged(Payload):
    """An upsert changed a product's price; orders already reserved keep the price they were reserved at."""

    sku: Annotated[Identifier, DIMENSION]
    old_price: Annotated[Money, EXPAND]
    new_price: Annotated[Money, EXPAND]


class AvailabilityChanged(Payload):
    """A SKU went in or out of stock (`available`, on hand minus held, crossed 0): the gateway's
    catalog view joins it in for the listing's `in_stock` filter."""

    sku: Identifier
    available: int
    in_stock: bool


class AdjustStock(Payload):
    adjustment_id: uuid.UUID
    sku: Identifier
    delta: int
    reason: str = Field(min_length=1, max_length=200)
    # Hash of the request, when a client's Idempotency-Key named the adjustment: a replay with another
    # body is told apart (None for adjustments the system makes, such as a refund's restock).
    request_hash: str | None = None


class ReserveStock(Payload):
    order_id: uuid.UUID
    sku: Identifier
    quantity: int
    # An order of a group-buying campaign takes its units from the campaign's hold, at the group price.
    campaign: str | None = None
    unit_price: Money | None = None


class ReleaseStock(Payload):
    order_id: uuid.UUID
    sku: Identifier
    reason: str


class StockAdjusted(Payload):
    adjustment_id: uuid.UUID
    sku: Annotated[Identifier, DIMENSION]
    delta: Annotated[int, SUM]
    reason: str
    on_hand: int
    reserved: int


class StockAdjustmentRejected(Payload):
    adjustment_id: uuid.UUID
    sku: Annotated[Identifier, DIMENSION]
    delta: int
    reason: str


class StockReserved(Payload):
    order_id: uuid.UUID
    sku: Annotated[Identifier, DIMENSION]
    quantity: Annotated[int, SUM]
    unit_price: Money


class StockReservationRejected(Payload):
    order_id: uuid.UUID
    sku: Annotated[Identifier, DIMENSION]
    quantity: Annotated[int, SUM]
    reason: str


class StockReleased(Payload):
    order_id: uuid.UUID
    sku: Annotated[Identifier, DIMENSION]
    quantity: Annotated[int, SUM]
    reason: str


class OrderLine(Frozen):
    sku: Identifier
    quantity: int


class PlaceOrder(Payload):
    order_id: uuid.UUID
    customer: str = Field(min_length=1, max_length=200)
    lines: tuple[OrderLine, ...] = Field(min_length=1, max_length=100)
    # Hash of the request body, so that an Idempotency-Key replay with another body is told apart.
    request_hash: str
    # Set on the orders a succeeded campaign places for its pledges (see ReserveStock).
    campaign: str | None = None
    unit_price: Money | None = None


class CancelOrder(Payload):
    order_id: uuid.UUID
    requested_by: str


class ExpireOrderHold(Payload):
    order_id: uuid.UUID


class OrderStatusChanged(Payload):
    """One event per order transition: what analytics and outside consumers follow."""

    order_id: uuid.UUID
    customer: str
    status: Annotated[str, DIMENSION]
    previous_status: Annotated[str | None, DIMENSION]
    reason: str | None = None
    total: Annotated[Money | None, EXPAND] = None
    item_count: Annotated[int, SUM] = 0
    # The order's lines on its transition to `confirmed` by the capture (what was bought together:
    # the recommendations' input), None on every other transition. Not an analytics column.
    lines: tuple[OrderLine, ...] | None = None


class CommitStock(Payload):
    """Turn an order's hold into a sale: the held units leave on_hand (the order is paid)."""

    order_id: uuid.UUID
    sku: Identifier


class StockCommitted(Payload):
    order_id: uuid.UUID
    sku: Annotated[Identifier, DIMENSION]
    quantity: Annotated[int, SUM]
    on_hand: int
    reserved: int


# Group-buying campaigns, keyed "<tenant>/<campaign_id>". A campaign holds its max_quantity of a
# SKU while open; at its deadline it places an order per pledge (drawing on that hold) or fails.


class OpenCampaign(Payload):
    campaign_id: Identifier
    sku: Identifier
    group_price: Money
    target_quantity: int = Field(ge=1)
    max_quantity: int = Field(ge=1)
    ends_at: UtcDatetime
    opened_by: str
    # Hash of the request that opened it, kept with the campaign: a replay of that request is told
    # apart from another request for the same campaign id.
    request_hash: str | None = None


class PledgeToCampaign(Payload):
    campaign_id: Identifier
    pledge_id: uuid.UUID
    customer: str = Field(min_length=1, max_length=200)
    quantity: int
    # Hash of the request, kept with its verdict: an Idempotency-Key replay with another body is told apart.
    request_hash: str | None = None


class WithdrawPledge(Payload):
    campaign_id: Identifier
    pledge_id: uuid.UUID
    customer: str = Field(min_length=1, max_length=200)
    request_hash: str | None = None


class CloseCampaign(Payload):
    campaign_id: Identifier


class CancelCampaign(Payload):
    campaign_id: Identifier
    requested_by: str


class HoldForCampaign(Payload):
    campaign_id: Identifier
    sku: Identifier
    quantity: int


class ReleaseCampaignHold(Payload):
    """Keep `keep` units of the campaign's hold for its pledge orders (0 when it failed), give back
    the rest. Absolute, so it gives the same result before, between or after the orders' draws."""

    campaign_id: Identifier
    sku: Identifier
    keep: int


class CampaignStockHeld(Payload):
    campaign_id: Identifier
    sku: Identifier
    quantity: int


class CampaignStockRefused(Payload):
    campaign_id: Identifier
    sku: Identifier
    reason: str


class CampaignOpened(Payload):
    campaign_id: Identifier
    sku: Annotated[Identifier, DIMENSION]
    group_price: Money
    target_quantity: int
    max_quantity: int
    ends_at: UtcDatetime


class CampaignRejected(Payload):
    campaign_id: Identifier
    sku: Annotated[Identifier, DIMENSION]
    reason: str


class PledgeAccepted(Payload):
    campaign_id: Identifier
    sku: Annotated[Identifier, DIMENSION]
    customer: str
    quantity: Annotated[int, SUM]
    # The change in pledged units (a pledge replaced by a smaller one is negative).
    delta: Annotated[int, SUM]
    replaced: Annotated[bool, DIMENSION]


class PledgeRejected(Payload):
    campaign_id: Identifier
    sku: Annotated[Identifier, DIMENSION]
    customer: str
    quantity: int
    reason: str


class PledgeWithdrawn(Payload):
    campaign_id: Identifier
    sku: Annotated[Identifier, DIMENSION]
    customer: str
    delta: Annotated[int, SUM]


class CampaignTipped(Payload):
    campaign_id: Identifier
    sku: Annotated[Identifier, DIMENSION]
    pledged_quantity: int


class CampaignSucceeded(Payload):
    campaign_id: Identifier
    sku: Annotated[Identifier, DIMENSION]
    pledged_quantity: Annotated[int, SUM]
    participants: int
    orders: int


class CampaignFailed(Payload):
    campaign_id: Identifier
    sku: Annotated[Identifier, DIMENSION]
    pledged_quantity: int
    reason: str


class CampaignCancelled(Payload):
    campaign_id: Identifier
    sku: Annotated[Identifier, DIMENSION]
    pledged_quantity: int
    reason: str


# Payments. The orders agent asks (commands), the payments agent talks to Stripe and tells (events);
# verified Stripe webhooks arrive as `StripeEventReceived`.


class RequestPayment(Payload):
    order_id: uuid.UUID
    customer: str
    amount: Money


class CapturePayment(Payload):
    order_id: uuid.UUID


class CancelPayment(Payload):
    order_id: uuid.UUID
    reason: str


class RefundPayment(Payload):
    order_id: uuid.UUID
    reason: str


class RefundedCharge(Frozen):
    """The charge of a `charge.refunded` event as Stripe has it: its amount, and how much of it is
    refunded so far (`amount_refunded`, the sum of every refund of the charge, not this refund's),
    in minor units; `refunded` is Stripe's flag for a charge refunded in full."""

    charge_id: str
    amount: int = Field(ge=0)
    amount_refunded: int = Field(ge=0)
    currency: CurrencyCode
    refunded: bool = False


class StripeEventReceived(Payload):
    """A webhook whose signature verified, reduced to what the payment decision reads."""

    order_id: uuid.UUID
    stripe_event_id: str = Field(min_length=1, max_length=255)
    stripe_type: str
    intent_id: str | None = None
    failure_message: str | None = None
    # For `charge.refunded`: the charge's amounts (None in events written before they were carried).
    charge: RefundedCharge | None = None


class PaymentIntentCreated(Payload):
    order_id: uuid.UUID
    intent_id: str
    client_secret: str | None
    amount: Annotated[Money, EXPAND_AS_IS]


class PaymentAuthorized(Payload):
    order_id: uuid.UUID
    intent_id: str
    amount: Annotated[Money, EXPAND_AS_IS]


class PaymentCaptured(Payload):
    order_id: uuid.UUID
    intent_id: str
    amount: Annotated[Money, EXPAND_AS_IS]


class PaymentFailed(Payload):
    """A payment step did not happen: `action` is create, authorize, capture, cancel or refund."""

    order_id: uuid.UUID
    intent_id: str | None
    action: Annotated[str, DIMENSION]
    reason: str


class PaymentCanceled(Payload):
    order_id: uuid.UUID
    intent_id: str | None
    reason: str


class PaymentRefunded(Payload):
    """The payment is refunded in full: `amount` is the payment's."""

    order_id: uuid.UUID
    intent_id: str
    amount: Annotated[Money, EXPAND_AS_IS]


class PaymentPartiallyRefunded(Payload):
    """Part of a captured payment went back to the customer in Stripe: `amount` is what this refund
    added (summed in analytics), `refunded` the total refunded so far. No stock moves."""

    order_id: uuid.UUID
    intent_id: str
    amount: Annotated[Money, EXPAND_AS_IS]
    refunded: Money


# Shipping. A confirmed order awaits shipment; the tenant's vendor ships its lines in one or more
# shipments (CreateShipment, on `shipments.commands`, decided by the orders agent, the single writer
# of an order and its shipments). Carrier tracking updates arrive keyed by tracking number
# (`shipping.tracking`); the shipping agent resolves them to their order (TrackShipment).


class ShipmentLine(Frozen):
    sku: Identifier
    quantity: int = Field(ge=1)


class CreateShipment(Payload):
    order_id: uuid.UUID
    shipment_id: uuid.UUID
    lines: tuple[ShipmentLine, ...] = Field(min_length=1)
    carrier: str = Field(min_length=1, max_length=64)
    tracking_number: Identifier
    service: str | None = Field(None, max_length=64)
    requested_by: str
    # Hash of the request, kept with the shipment: an Idempotency-Key replay with another body is told apart.
    request_hash: str | None = None


class CarrierUpdate(Frozen):
    """One carrier tracking update, reduced to what the shipment decision reads."""

    carrier_event_id: str = Field(min_length=1, max_length=255)
    status: str  # a ShipmentStatus (mapped from the aggregator's)
    carrier: str = Field(min_length=1, max_length=64)
    tracking_url: str | None = None
    detail: str | None = None
    carrier_time: UtcDatetime  # when the carrier recorded it (not when it reached us)


class CarrierUpdateReceived(Payload):
    """A carrier webhook whose signature verified, keyed by its tracking number (no tenant known yet)."""

    tracking_number: Identifier
    update: CarrierUpdate


class RegisterTracking(Payload):
    """A shipment's tracking number, so that the carrier's updates find their order."""

    tracking_number: Identifier
    order_id: uuid.UUID
    shipment_id: uuid.UUID


class TrackShipment(Payload):
    """A carrier update resolved to its order and shipment."""

    order_id: uuid.UUID
    shipment_id: uuid.UUID
    tracking_number: Identifier
    update: CarrierUpdate


class ShipmentCreated(Payload):
    order_id: uuid.UUID
    shipment_id: uuid.UUID
    lines: tuple[ShipmentLine, ...]
    carrier: Annotated[str, DIMENSION]
    tracking_number: str
    service: Annotated[str | None, DIMENSION] = None
    tracking_url: str | None = None
    units: Annotated[int, SUM] = 0
    # Seconds from the order's confirmation to this event (analytics: time to ship).
    since_confirmed_seconds: Annotated[int, SUM] = 0


class ShipmentStatusChanged(Payload):
    order_id: uuid.UUID
    shipment_id: uuid.UUID
    status: Annotated[str, DIMENSION]
    carrier: Annotated[str, DIMENSION]
    tracking_number: str
    tracking_url: str | None = None
    detail: str | None = None
    # The carrier's time of the update (the envelope's `occurred_at` is the decision's; a frame shows this one
    # as `payload_occurred_at`, streams/frames.py).
    occurred_at: UtcDatetime
    previous_status: Annotated[str | None, DIMENSION] = None
    # Seconds from the order's confirmation to the carrier's update (analytics: time to deliver).
    since_confirmed_seconds: Annotated[int, SUM] = 0


# Outbound webhooks. A tenant's admin registers endpoints (`webhooks.commands`, keyed
# `<tenant>/<endpoint_id>`); the webhooks agent keeps each endpoint with its deliveries and their
# log, and announces its subscriptions on `webhooks.registry`, a topic every partition of which
# holds every tenant's (streams/topics.py, broadcast). The dispatch agent reads the platform's
# events, looks the tenant up there, and asks for one delivery per subscribed endpoint
# (`webhooks.deliveries`). See streams/agents/webhooks.py.


class RegisterWebhookEndpoint(Payload):
    endpoint_id: uuid.UUID
    url: str = Field(min_length=1, max_length=2048)
    # Envelope types to deliver (payloads of the topics in streams/topics.py WEBHOOK_SOURCES), or "*".
    events: tuple[str, ...] = Field(min_length=1)
    # The signing secret ("whsec_..."), made by the gateway and shown to the admin once.
    secret: str = Field(min_length=32)
    description: str | None = Field(None, max_length=200)
    requested_by: str
    request_hash: str | None = None


class DeleteWebhookEndpoint(Payload):
    endpoint_id: uuid.UUID
    requested_by: str


class EnableWebhookEndpoint(Payload):
    """Turn a disabled endpoint back on (deliveries missed meanwhile come back with a replay)."""

    endpoint_id: uuid.UUID
    requested_by: str


class RetryWebhookDeliveries(Payload):
    """The webhooks agent's timer: deliveries of the endpoint are due for another attempt."""

    endpoint_id: uuid.UUID


class DeliverWebhookEvent(Payload):
    """Deliver one event to one endpoint. `body` is the event's envelope as JSON, the bytes signed and sent."""

    endpoint_id: uuid.UUID
    delivery_id: uuid.UUID
    # The delivered event's id (the envelope's `event_id` is this record's own).
    source_event_id: uuid.UUID
    event_type: str
    body: str
    # Asked for by the replay command, not by the event's first dispatch.
    replay: bool = False


class WebhookEndpointChanged(Payload):
    """An endpoint's subscription as the dispatch agent needs it: the event types, while enabled."""

    endpoint_id: uuid.UUID
    events: tuple[str, ...]
    status: str  # a WebhookEndpointStatus


class WebhookDeliveryAttempted(Payload):
    """One attempt to deliver an event to an endpoint, or a delivery skipped (analytics: failure rate)."""

    endpoint_id: uuid.UUID
    delivery_id: uuid.UUID
    # The delivered event's id (the envelope's `event_id` is this record's own).
    source_event_id: uuid.UUID
    event_type: Annotated[str, DIMENSION]
    attempt: Annotated[int, SUM]
    outcome: Annotated[str, DIMENSION]  # a DeliveryOutcome
    status_code: Annotated[int | None, DIMENSION] = None
    error: str | None = None
    duration_ms: Annotated[int, SUM] = 0
    replay: Annotated[bool, DIMENSION] = False


# Notifications (streams/agents/notifications.py): the agent's own retry timer, and what became of
# each message, for analytics. Both are keyed as the notifications table (`key`: an order id or
# `<tenant>/<campaign_id>`), so a retry reaches the partition that holds the messages it retries.


class RetryNotifications(Payload):
    """The notifications agent's timer: messages of `key` are due for another attempt."""

    key: str = Field(min_length=1)


class NotificationSent(Payload):
    """A message reached its final outcome: `sent` (the SMTP server accepted it) or `refused` (a
    permanent refusal, or temporary failures until the retry schedule ran out). No address here:
    recipients are personal data and never an analytics dimension."""

    key: str
    message_id: str
    kind: Annotated[str, DIMENSION]
    channel: Annotated[str, DIMENSION] = "email"
    locale: Annotated[str, DIMENSION]
    outcome: Annotated[Literal["sent", "refused"], DIMENSION]
    attempts: Annotated[int, SUM] = 1
    detail: str | None = None


# Recommendations (streams/agents/recommendations.py), keyed `<tenant>/<sku>`; the SKU "*" (never
# an Identifier) is the tenant's popularity entry.
POPULARITY = "*"


class CountCoPurchase(Payload):
    """Count one confirmed order for `sku`: the other SKUs of the order (`bought_with`), at the time
    of its confirmation. For the popularity entry (`sku` "*"), every SKU of the order."""

    sku: Identifier | Literal["*"]
    bought_with: tuple[Identifier, ...] = Field(max_length=100)
    order_id: uuid.UUID
    confirmed_at: UtcDatetime


class RecommendationsServed(Payload):
    """The gateway answered recommendations for `sku` (analytics: click-through)."""

    sku: Annotated[Identifier, DIMENSION]
    # A multi-value dimension in Druid: one row matches each of the SKUs.
    recommended: Annotated[tuple[Identifier, ...], DIMENSION] = ()
    source: Annotated[Literal["co_purchase", "popularity", "mixed"], DIMENSION]


class DeadLetter(Payload):
    """A message an agent could not process: why, where it is, and its bytes as they were on the
    topic (base64), at most the first 64 KiB of them: the source offset points at the whole."""

    source_topic: str
    source_partition: int
    source_offset: int
    error: str
    original_key: str | None
    original_value: str
    original_size: int = 0


# ---------------------------------------------------------------------------------------------


class Envelope(Frozen):
    event_id: uuid.UUID
    type: str
    schema_version: Literal[1] = 1
    tenant: Identifier
    occurred_at: UtcDatetime
    payload: SerializeAsAny[Payload]

    @model_validator(mode="before")
    @classmethod
    def _payload_by_type(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("payload"), dict):
            payload_type = Payload.registry.get(data.get("type", ""))
            if payload_type is None:
                raise ValueError(f"unknown event type {data.get('type')!r}")
            data = {**data, "payload": payload_type.model_validate(data["payload"])}
        return data

    @model_validator(mode="after")
    def _type_matches_payload(self) -> Envelope:
        if type(self.payload).__name__ != self.type:
            raise ValueError(f"type {self.type!r} does not match payload {type(self.payload).__name__}")
        return self

    @classmethod
    def new(cls, tenant: str, payload: Payload, *, event_id: uuid.UUID | None = None,
            occurred_at: datetime | None = None) -> Envelope:
        return cls(
            event_id=event_id or uuid.uuid4(),
            type=type(payload).__name__,
            tenant=tenant,
            occurred_at=occurred_at or utc_now(),
            payload=payload,
        )

    def derive(self, payload: Payload, index: int, occurred_at: datetime | None = None,
               tenant: str | None = None) -> Envelope:
        """An event caused by this one, with an id fixed by this event's id and the position.

        Reprocessing the same input after a crash yields the same ids, so downstream consumers
        can recognise a repeat. `tenant`: the events' tenant when the input's is not theirs (a
        carrier's update knows no tenant until its tracking number is resolved).
        """
        # Every part is valid already: this envelope was, the payload was validated when the
        # decision built it, and `occurred_at` is the runtime's UTC clock or this envelope's. So
        # no second validation (it was a fifth of deriving an event, once per event a worker sends).
        return Envelope.model_construct(
            event_id=uuid5(self.event_id, f"{index}:{type(payload).__name__}"),
            type=type(payload).__name__,
            schema_version=1,
            tenant=tenant or self.tenant,
            occurred_at=occurred_at or self.occurred_at,
            payload=payload,
        )

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Envelope:
        return cls.model_validate_json(raw)


# ---------------------------------------------------------------------------------------------
# State kept in tables, one value per key.


class Product(Frozen):
    tenant: Identifier
    sku: Identifier
    name: str
    price: Money
    updated_at: UtcDatetime
    description: str = ""
    images: tuple[str, ...] = ()
    attributes: dict[str, str] = Field(default_factory=dict)
    status: ProductStatusName = "active"
    # When the product was first upserted, kept by every later version (None: stored before it was kept).
    created_at: UtcDatetime | None = None


class AdjustmentOutcome(Frozen):
    """The verdict on one adjustment, with what its first answer needs: the stock right after it
    (when applied) and the hash of the request that made it (when a client's key named it)."""

    applied: bool
    reason: str | None = None
    request_hash: str | None = None
    on_hand: int | None = None
    reserved: int | None = None


class StockLevel(Frozen):
    """Stock of one SKU. `holds` maps order id to units held for it: at most one hold per order."""

    tenant: Identifier
    sku: Identifier
    on_hand: int = 0
    holds: dict[str, int] = Field(default_factory=dict)
    # The latest adjustment outcomes by adjustment id (bounded: REMEMBERED_ADJUSTMENTS in
    # streams/tables/inventory.py): makes AdjustStock idempotent, lets the gateway tell the caller
    # whether a write-off was applied and answer an Idempotency-Key replay as the first time.
    recent_adjustments: dict[str, AdjustmentOutcome] = Field(default_factory=dict)
    # Campaigns that held this SKU, newest last (bounded): `GET /v1/campaigns?sku=` lists them.
    campaigns: tuple[str, ...] = ()
    # Units the orders of a campaign drew from its hold, while its ReleaseCampaignHold is to come.
    campaign_draws: dict[str, int] = Field(default_factory=dict)

    @property
    def reserved(self) -> int:
        return sum(self.holds.values())

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


class CampaignStatus:
    OPENING = "opening"  # waiting for the campaign's units to be held
    OPEN = "open"
    TIPPED = "tipped"  # target reached, still open
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"


class PledgeResult(Frozen):
    """The verdict on a customer's latest pledge or withdrawal, for them to read back."""

    pledge_id: uuid.UUID
    accepted: bool
    quantity: int
    reason: str | None = None
    request_hash: str | None = None  # of the request it decided (see PledgeToCampaign)


class Campaign(Frozen):
    campaign_id: Identifier
    tenant: Identifier
    sku: Identifier
    group_price: Money
    target_quantity: int
    max_quantity: int
    ends_at: UtcDatetime
    status: str
    opened_by: str
    pledges: dict[str, int] = Field(default_factory=dict)  # customer -> units
    results: dict[str, PledgeResult] = Field(default_factory=dict)  # customer -> latest verdict
    # customer -> verdicts before the latest, oldest first (bounded: REMEMBERED_PLEDGE_REQUESTS in
    # streams/tables/campaigns.py), so that a request replayed after a newer one is still recognised.
    earlier_results: dict[str, tuple[PledgeResult, ...]] = Field(default_factory=dict)
    orders: dict[str, uuid.UUID] = Field(default_factory=dict)  # customer -> order, once succeeded
    reason: str | None = None
    request_hash: str | None = None  # of the request that opened it (see OpenCampaign)

    @property
    def pledged_quantity(self) -> int:
        return sum(self.pledges.values())


class OrderStatus:
    PENDING = "pending"
    RESERVED = "reserved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    PAYMENT_PENDING = "payment_pending"
    PAID = "paid"
    CONFIRMED = "confirmed"
    PAYMENT_FAILED = "payment_failed"
    REFUNDING = "refunding"
    REFUNDED = "refunded"
    # Read from the order's shipments (streams/tables/shipping.py).
    PARTIALLY_SHIPPED = "partially_shipped"
    SHIPPED = "shipped"
    DELIVERED = "delivered"


class OrderLineState(Frozen):
    sku: Identifier
    quantity: int
    unit_price: Money | None = None
    reserved: bool = False


class StatusEntry(Frozen):
    status: str
    at: UtcDatetime


class OrderPayment(Frozen):
    """The order's PaymentIntent as the orders context knows it; the secret is shown to the customer only."""

    intent_id: str
    client_secret: str | None
    status: str
    # How much of the payment went back to the customer so far (partial refunds included).
    refunded: Money | None = None


class ShipmentStatus:
    LABEL_CREATED = "label_created"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    EXCEPTION = "exception"
    RETURNED = "returned"


class Shipment(Frozen):
    """One shipment of an order, as the orders agent keeps it."""

    shipment_id: uuid.UUID
    lines: tuple[ShipmentLine, ...]
    carrier: str
    tracking_number: str
    service: str | None = None
    status: str = ShipmentStatus.LABEL_CREATED
    tracking_url: str | None = None
    detail: str | None = None
    created_at: UtcDatetime
    # The carrier's time of the latest update applied, and the highest rank reached (never backwards).
    carrier_time: UtcDatetime | None = None
    rank: int = 0
    # Carrier event ids already applied (bounded): a replayed update changes nothing.
    seen_events: tuple[str, ...] = ()
    requested_by: str = ""
    request_hash: str | None = None

    @property
    def units(self) -> int:
        return sum(line.quantity for line in self.lines)


class TrackingRegistration(Frozen):
    """The shipping agent's index, keyed by tracking number: which order's shipment it tracks."""

    tracking_number: Identifier
    tenant: Identifier
    order_id: uuid.UUID
    shipment_id: uuid.UUID


class Order(Frozen):
    order_id: uuid.UUID
    tenant: Identifier
    customer: str
    status: str
    lines: tuple[OrderLineState, ...]
    request_hash: str
    history: tuple[StatusEntry, ...]
    reason: str | None = None
    total: Money | None = None
    hold_expires_at: UtcDatetime | None = None
    payment: OrderPayment | None = None
    # Shipping: `awaiting_shipment` once confirmed, then the order's status (streams/tables/shipping.py).
    fulfilment: str | None = None
    shipments: tuple[Shipment, ...] = ()
    # Shipments refused by id (bounded), so that the vendor's request reads its verdict.
    refused_shipments: dict[str, str] = Field(default_factory=dict)


class PaymentStatus:
    AWAITING_PAYMENT = "awaiting_payment"  # intent created, the customer has not paid yet
    AUTHORIZED = "authorized"  # money held on the card, not yet taken
    CAPTURED = "captured"
    PARTIALLY_REFUNDED = "partially_refunded"  # captured, part of it refunded in Stripe
    REFUNDED = "refunded"
    FAILED = "failed"
    CANCELED = "canceled"


class Payment(Frozen):
    """The payments context's record of one order's PaymentIntent, keyed by order id."""

    order_id: uuid.UUID
    tenant: Identifier
    amount: Money
    status: str
    intent_id: str | None = None
    reason: str | None = None
    # How much went back to the customer so far: partial refunds in Stripe, or the whole when refunded.
    refunded: Money | None = None
    # Stripe event ids already applied: webhooks are delivered at least once and in any order.
    seen_stripe_events: tuple[str, ...] = ()


class Mail(Frozen):
    """A message the notifications agent sends (streams/tables/notifications.py): its kind (the
    template), the recipient's address (None while the customer is not known yet: a shipment read
    before its order), a Message-ID fixed by the event and the kind, and the template's values."""

    message_id: str
    kind: str
    locale: str = "en"
    to: str | None = None
    values: dict[str, str] = Field(default_factory=dict)


class MailRecord(Frozen):
    """What became of a message: `sent` (the SMTP server accepted it) or `refused` (the server said
    no for good, or failed for a while each attempt of the retry schedule), with the reason and the
    attempts made."""

    kind: str
    to: str
    outcome: Literal["sent", "refused"]
    detail: str | None = None
    attempts: int = 1


class WaitingMail(Frozen):
    """A message whose attempts failed for a while only (a 4xx answer, no connection, no answer in
    time): tried again at `next_attempt_at`, by the agent's retry timer."""

    mail: Mail
    attempts: int = Field(ge=1)
    next_attempt_at: UtcDatetime
    detail: str | None = None


class Notifications(Frozen):
    """The notifications agent's record of one order or campaign (its key): whom to tell, and every
    message it sent, by Message-ID, so that an event processed again sends nothing twice."""

    tenant: Identifier
    customer: str | None = None
    # A campaign's pledgers (customer -> units) and its terms, from its funnel events.
    pledges: dict[str, int] = Field(default_factory=dict)
    sku: str | None = None
    group_price: Money | None = None
    # Messages for the customer of an order whose customer is not known yet.
    held: tuple[Mail, ...] = ()
    sent: dict[str, MailRecord] = Field(default_factory=dict)
    # Messages waiting for another attempt, oldest first; the earliest is the table's due time.
    waiting: tuple[WaitingMail, ...] = ()


class WebhookEndpointStatus:
    ENABLED = "enabled"
    DISABLED = "disabled"  # failed persistently; an admin enables it again
    DELETED = "deleted"


class DeliveryOutcome:
    DELIVERED = "delivered"  # the endpoint answered 2xx
    FAILED = "failed"  # this attempt failed; another follows at `next_attempt_at`
    GAVE_UP = "gave_up"  # the last attempt of the schedule failed, or the endpoint was disabled
    SKIPPED = "skipped"  # the endpoint was disabled or deleted when the delivery came


class WebhookDelivery(Frozen):
    """A delivery waiting for its next attempt."""

    delivery_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    body: str
    replay: bool = False
    attempts: int = 0
    next_attempt_at: UtcDatetime


class DeliveryRecord(Frozen):
    """One line of an endpoint's delivery log."""

    delivery_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    attempt: int
    at: UtcDatetime
    outcome: str  # a DeliveryOutcome
    status_code: int | None = None
    error: str | None = None
    duration_ms: int = 0
    next_attempt_at: UtcDatetime | None = None
    replay: bool = False


class WebhookEndpoint(Frozen):
    """A tenant's endpoint, keyed `<tenant>/<endpoint_id>`: where and what to deliver, what waits
    for another attempt, and the latest log lines (bounded, newest last)."""

    endpoint_id: uuid.UUID
    tenant: Identifier
    url: str
    events: tuple[str, ...]
    secret: str
    description: str | None = None
    status: str = WebhookEndpointStatus.ENABLED
    created_at: UtcDatetime
    created_by: str
    request_hash: str | None = None
    pending: tuple[WebhookDelivery, ...] = ()
    log: tuple[DeliveryRecord, ...] = ()
    # Delivery ids finished (delivered, given up or skipped), bounded: a delivery asked twice goes once.
    finished: tuple[str, ...] = ()
    # Since when every attempt failed (None after a success): long enough, and the endpoint is disabled.
    failing_since: UtcDatetime | None = None
    disabled_reason: str | None = None


class CoPurchases(Frozen):
    """The recommendations table, keyed `<tenant>/<sku>`: the SKUs bought with `sku` and their
    scores, decayed to `decayed_at` (each order adds 1 at its confirmation time, halved every
    half-life), the top ones only (streams/tables/recommendations.py). For the popularity entry
    (`sku` "*"), how often each SKU of the tenant was ordered, decayed alike."""

    tenant: Identifier
    sku: str
    scores: dict[str, float] = Field(default_factory=dict)  # highest first
    decayed_at: UtcDatetime | None = None
    orders: int = 0  # orders counted, undecayed
    # The latest order ids counted, newest last (bounded): a command replayed counts nothing twice.
    counted: tuple[str, ...] = ()


class WebhookSubscription(Frozen):
    events: tuple[str, ...]
    status: str  # a WebhookEndpointStatus, never "deleted" (a deleted endpoint leaves the registry)


class WebhookSubscriptions(Frozen):
    """A tenant's endpoints (id -> subscription), in every partition of the registry: the dispatch
    agent delivers to the enabled ones, the gateway lists them."""

    tenant: Identifier
    endpoints: dict[str, WebhookSubscription] = Field(default_factory=dict)
