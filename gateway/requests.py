"""Request bodies the gateway accepts; invalid ones are refused with 422 before anything is written."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, WithJsonSchema, field_validator, model_validator

from streams.models import (
    MAX_ATTRIBUTES,
    MAX_DESCRIPTION,
    MAX_IMAGES,
    AttributeName,
    AttributeValue,
    Frozen,
    Identifier,
    ImageUrl,
    Money,
    ProductStatusName,
    UtcDatetime,
    utc_now,
)
from streams.tables.webhooks import ALL_EVENTS
from streams.topics import WEBHOOK_EVENT_TYPES


class ProductRequest(Frozen):
    model_config = ConfigDict(json_schema_extra={
        "examples": [{"sku": "MUG-1", "name": "Stoneware mug", "price": {"amount": 1299, "currency": "EUR"},
                      "description": "A glazed stoneware mug, 350 ml.",
                      "images": ["https://img.example.com/mug-1.jpg"], "attributes": {"colour": "blue"},
                      "status": "active"}]})

    sku: Identifier
    name: str = Field(min_length=1, max_length=200)
    price: Money
    description: str = Field("", max_length=MAX_DESCRIPTION)
    images: tuple[ImageUrl, ...] = Field((), max_length=MAX_IMAGES, description="https URLs, at most 10")
    attributes: dict[AttributeName, AttributeValue] = Field(
        default_factory=dict, max_length=MAX_ATTRIBUTES, description="name -> value, at most 50")
    status: ProductStatusName = Field("active", description="customers see `active` products only")


class AdjustmentRequest(Frozen):
    model_config = ConfigDict(json_schema_extra={"examples": [{"delta": 5, "reason": "restock"}]})

    delta: int = Field(ge=-1_000_000, le=1_000_000, json_schema_extra={"not": {"const": 0}},
                       description="units added (restock) or, negative, removed (write-off); not 0")
    reason: str = Field(min_length=1, max_length=200)

    @field_validator("delta")
    @classmethod
    def _not_zero(cls, delta: int) -> int:
        if delta == 0:
            raise ValueError("delta must not be 0")
        return delta


class OrderLineRequest(Frozen):
    sku: Identifier
    quantity: int = Field(ge=1, le=10_000)


class OrderRequest(Frozen):
    model_config = ConfigDict(json_schema_extra={"examples": [{"lines": [{"sku": "MUG-1", "quantity": 2}]}]})

    lines: tuple[OrderLineRequest, ...] = Field(min_length=1, max_length=100)

    @field_validator("lines")
    @classmethod
    def _one_line_per_sku(cls, lines: tuple[OrderLineRequest, ...]) -> tuple[OrderLineRequest, ...]:
        skus = [line.sku for line in lines]
        duplicates = sorted({sku for sku in skus if skus.count(sku) > 1})
        if duplicates:
            raise ValueError(f"each SKU may appear on one line only: {', '.join(duplicates)}")
        return lines


class CampaignRequest(Frozen):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "campaign_id": "mug-club", "sku": "MUG-1", "group_price": {"amount": 999, "currency": "EUR"},
        "target_quantity": 2, "max_quantity": 3, "ends_at": "2099-12-31T23:00:00Z"}]})

    campaign_id: Identifier | None = None
    sku: Identifier
    group_price: Money
    target_quantity: int = Field(ge=1, le=1_000_000)
    max_quantity: int = Field(ge=1, le=1_000_000)
    ends_at: UtcDatetime

    @model_validator(mode="after")
    def _sensible(self) -> CampaignRequest:
        if self.target_quantity > self.max_quantity:
            raise ValueError("target_quantity must not exceed max_quantity")
        if self.ends_at <= utc_now():
            raise ValueError("ends_at must be in the future")
        return self


class PledgeRequest(Frozen):
    model_config = ConfigDict(json_schema_extra={"examples": [{"quantity": 1}]})

    quantity: int = Field(ge=1, le=10_000)


class ShipmentRequest(Frozen):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"lines": [{"sku": "MUG-1", "quantity": 1}], "carrier": "USPS", "tracking_number": "EZ1000000001",
         "service": "Priority"}]})

    lines: tuple[OrderLineRequest, ...] = Field(min_length=1, max_length=100)
    carrier: str = Field(min_length=1, max_length=64)
    tracking_number: Identifier
    service: str | None = Field(None, min_length=1, max_length=64)

    @field_validator("lines")
    @classmethod
    def _one_line_per_sku(cls, lines: tuple[OrderLineRequest, ...]) -> tuple[OrderLineRequest, ...]:
        return OrderRequest._one_line_per_sku(lines)  # type: ignore[no-any-return]


# What an endpoint may subscribe to: envelope types of streams/topics.py WEBHOOK_SOURCES, or "*" for all.
WEBHOOK_EVENT_CHOICES = (ALL_EVENTS, *WEBHOOK_EVENT_TYPES)
WebhookEventType = Annotated[str, WithJsonSchema({"type": "string", "enum": list(WEBHOOK_EVENT_CHOICES)})]


class WebhookEndpointRequest(Frozen):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"url": "https://erp.example.com/hooks/fusioncommerce", "events": ["OrderStatusChanged", "ShipmentStatusChanged"],
         "description": "our ERP"}]})

    url: str = Field(min_length=1, max_length=2048, pattern=r"^https?://\S+$",
                     description="where the events are POSTed: a public address over HTTPS (private and loopback "
                                 "addresses only where WEBHOOK_ALLOW_PRIVATE_TARGETS allows them)")
    events: tuple[WebhookEventType, ...] = Field(
        min_length=1, max_length=len(WEBHOOK_EVENT_CHOICES), json_schema_extra={"uniqueItems": True},
        description='the envelope types to deliver, each once, or ["*"] for every type')
    description: str | None = Field(None, min_length=1, max_length=200)

    @field_validator("events")
    @classmethod
    def _known_events(cls, events: tuple[str, ...]) -> tuple[str, ...]:
        return check_event_types(events)


def check_event_types(events: tuple[str, ...]) -> tuple[str, ...]:
    """The event types an endpoint asks for, or a ValueError naming what is wrong and what may be asked for."""
    unknown = sorted({event for event in events if event not in WEBHOOK_EVENT_CHOICES})
    if unknown:
        raise ValueError(f"unknown event type{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; choose from "
                         f"{', '.join(WEBHOOK_EVENT_TYPES)}, or \"{ALL_EVENTS}\" for every type")
    if len(set(events)) != len(events):
        raise ValueError("each event type may appear once")
    if ALL_EVENTS in events and len(events) > 1:
        raise ValueError(f"\"{ALL_EVENTS}\" already means every event type: send it alone")
    return events
