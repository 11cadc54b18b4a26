"""What the gateway answers: one model per JSON body a view returns, for the OpenAPI document.

The views build these bodies as dicts from the workers' replies; the models here say which fields
and types they have (`gateway/openapi.py` turns them into the document, and the schemathesis test
in `tests/integration/test_openapi_contract.py` checks every answer of a running gateway against it).
Statuses are the state models' constants, so a status added there is in the document after
`python -m devtools.generate`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from streams.models import (
    CampaignStatus,
    DeliveryRecord,
    Frozen,
    Money,
    OrderStatus,
    PaymentStatus,
    PledgeResult,
    ProductStatusName,
    ShipmentStatus,
    WebhookEndpointStatus,
)


def _names(constants: type) -> tuple[str, ...]:
    return tuple(value for name, value in vars(constants).items() if name.isupper() and isinstance(value, str))


OrderStatusName = Literal[_names(OrderStatus)]  # type: ignore[valid-type]
CampaignStatusName = Literal[_names(CampaignStatus)]  # type: ignore[valid-type]
PaymentStatusName = Literal[_names(PaymentStatus)]  # type: ignore[valid-type]
ShipmentStatusName = Literal[_names(ShipmentStatus)]  # type: ignore[valid-type]
WebhookEndpointStatusName = Literal[_names(WebhookEndpointStatus)]  # type: ignore[valid-type]


class ErrorDetail(Frozen):
    code: str = Field(description="Machine-readable: `invalid_body`, `missing_token`, `forbidden`, `not_found`, "
                                  "`idempotency_key_reused`, `unavailable`, ...")
    message: str = Field(description="For a person: what went wrong and what to do")
    details: Any = Field(None, description="`invalid_body`: a list of `{field, problem}`; a refused write: "
                                           "the ids it concerned; otherwise null")


class ErrorBody(Frozen):
    """Every error, whatever its status."""

    error: ErrorDetail


class Health(Frozen):
    status: Literal["ok"]


class Readiness(Frozen):
    ready: bool
    broker: bool | None = Field(None, description="whether Kafka answers")
    unserved_partitions: int | None = Field(None, description="table partitions no ready worker serves")
    catalog_view: bool | None = Field(None, description="whether the catalog view of listings has read its topics "
                                                        "up to where they ended when the gateway started")


class ProductAccepted(Frozen):
    sku: str
    status: Literal["accepted"]


class ProductView(Frozen):
    sku: str
    name: str
    price: Money
    updated_at: datetime
    description: str
    images: list[str]
    attributes: dict[str, str]
    status: ProductStatusName
    created_at: datetime | None = Field(description="when the product was first created (null: before it was kept)")


class ListedProduct(Frozen):
    sku: str
    name: str
    description: str
    price: Money
    images: list[str]
    attributes: dict[str, str]
    status: ProductStatusName
    created_at: datetime
    updated_at: datetime
    in_stock: bool = Field(description="whether units are on hand and not held (false for a SKU never stocked)")


class ProductList(Frozen):
    products: list[ListedProduct]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page")


class StockView(Frozen):
    sku: str
    on_hand: int
    reserved: int = Field(description="units held for orders and campaigns")
    available: int = Field(description="on_hand - reserved")


class AdjustmentApplied(StockView):
    """The inventory agent applied the adjustment; the stock after it."""

    adjustment_id: uuid.UUID
    status: Literal["applied"]


class AdjustmentPending(Frozen):
    """Written, but the inventory agent's verdict did not come within a few seconds: read the stock."""

    adjustment_id: uuid.UUID
    status: Literal["pending"]
    sku: str


class OrderAccepted(Frozen):
    order_id: uuid.UUID
    status: Literal["pending"]


class OrderCancelAccepted(Frozen):
    order_id: uuid.UUID
    status: Literal["cancelling", "refunding"] = Field(
        description="`refunding` for a confirmed (paid and captured) order, else `cancelling`")


class OrderLineView(Frozen):
    sku: str
    quantity: int
    unit_price: Money | None = Field(description="from the catalog, once the line is priced")


class StatusChange(Frozen):
    status: OrderStatusName
    at: datetime


class PaymentView(Frozen):
    status: PaymentStatusName
    intent_id: str = Field(description="Stripe's PaymentIntent id")
    refunded: Money | None = Field(
        None, description="how much went back to the customer so far: the refunds made in Stripe (status "
                          "`partially_refunded` while less than the whole), or the whole once `refunded`")
    client_secret: str | None = Field(
        None, description="only for the customer who placed the order: the storefront confirms the payment with it")


class ShipmentLineView(Frozen):
    sku: str
    quantity: int


class ShipmentView(Frozen):
    shipment_id: uuid.UUID
    order_id: uuid.UUID
    status: ShipmentStatusName
    lines: list[ShipmentLineView]
    carrier: str
    tracking_number: str
    service: str | None
    tracking_url: str | None = Field(description="the carrier's public tracking page, once tracking reported it")
    detail: str | None = Field(description="the carrier's latest message")
    created_at: datetime
    carrier_time: datetime | None = Field(description="the carrier's time of the latest update applied")


class ShipmentPending(Frozen):
    shipment_id: uuid.UUID
    order_id: uuid.UUID
    status: Literal["pending"] = Field(description="written; the orders agent had not decided within a few seconds "
                                                 "(read the order's `shipments`)")


class CarrierWebhookReceipt(Frozen):
    received: Literal[True]
    event_id: str
    tracking_code: str
    ignored: str | None = Field(None, description="why nothing was recorded, when nothing was")


class OrderView(Frozen):
    order_id: uuid.UUID
    status: OrderStatusName
    lines: list[OrderLineView]
    total: Money | None
    reason: str | None = Field(description="why it was rejected, cancelled or failed")
    history: list[StatusChange]
    hold_expires_at: datetime | None = Field(description="when the held units go back unless paid")
    payment: PaymentView | None
    fulfilment: Literal["awaiting_shipment", "partially_shipped", "shipped", "delivered"] | None = Field(
        None, description="`awaiting_shipment` once confirmed, then as the status reads it from the shipments")
    shipments: list[ShipmentView] = Field(default_factory=list, description="the order's shipments, oldest first")


class CampaignView(Frozen):
    campaign_id: str
    sku: str
    status: CampaignStatusName
    pledged_quantity: int
    participants: int
    target_quantity: int
    max_quantity: int
    group_price: Money
    ends_at: datetime
    reason: str | None


class CampaignPending(Frozen):
    """Written, but the campaigns agent's verdict did not come within a few seconds: read it back."""

    campaign_id: str
    status: Literal["opening", "cancelling"]


class CampaignList(Frozen):
    sku: str
    campaigns: list[CampaignView] = Field(description="the tenant's campaigns of the SKU, newest last")


class PledgeAccepted(Frozen):
    pledge_id: uuid.UUID
    status: Literal["accepted"]
    quantity: int = Field(description="the customer's pledge now (0 after a withdrawal)")
    campaign: CampaignView


class PledgePending(Frozen):
    pledge_id: uuid.UUID
    status: Literal["pending"]


class MyPledge(Frozen):
    campaign_id: str
    quantity: int
    latest: PledgeResult | None = Field(description="the verdict on the customer's latest pledge or withdrawal")
    order_id: uuid.UUID | None = Field(description="the customer's order, once the campaign succeeded")
    campaign_status: CampaignStatusName


class WebhookReceipt(Frozen):
    received: Literal[True]
    stripe_event_id: str
    order_id: str | None = Field(None, description="the order the event was recorded for")
    ignored: str | None = Field(None, description="why a genuine event changes nothing here")


class WebhookEndpointView(Frozen):
    """A tenant's webhook endpoint, never with its secret."""

    endpoint_id: uuid.UUID
    url: str
    events: list[str] = Field(description='the envelope types delivered, or ["*"] for every type')
    description: str | None
    status: WebhookEndpointStatusName = Field(description="`disabled` after persistent failure (`disabled_reason` "
                                                          "says why) until an admin enables it again")
    created_at: datetime
    created_by: str
    disabled_reason: str | None = None


class WebhookEndpointCreated(WebhookEndpointView):
    """The registration's answer, the only one that carries the secret (and its replay with the same
    Idempotency-Key and body)."""

    secret: str = Field(description="signs every delivery; keep it, no other answer shows it")


class WebhookEndpointPending(Frozen):
    endpoint_id: uuid.UUID
    status: Literal["pending"] = Field(description="written; the webhooks agent had not registered it within a few "
                                                   "seconds (read it back with `GET /v1/webhooks/{endpoint_id}`)")


class WebhookEndpointList(Frozen):
    endpoints: list[WebhookEndpointView] = Field(description="the tenant's endpoints (deleted ones left out), "
                                                             "oldest first")


class WebhookEndpointAccepted(Frozen):
    endpoint_id: uuid.UUID
    status: Literal["deleting", "enabling"] = Field(description="written; the webhooks agent applies it")


class PendingDeliveries(Frozen):
    count: int = Field(description="deliveries waiting for an attempt")
    next_attempt_at: datetime | None = Field(description="the earliest of their next attempts")


class WebhookDeliveries(Frozen):
    endpoint_id: uuid.UUID
    status: WebhookEndpointStatusName
    deliveries: list[DeliveryRecord] = Field(description="the delivery log, newest first (at most `limit` lines)")
    pending: PendingDeliveries


class Recommendation(Frozen):
    sku: str
    name: str
    price: Money
    score: float = Field(description="how often it was bought with the product (or, from the popularity, at all), "
                                     "each order weighing 1 at its confirmation and half as much every "
                                     "FC_RECOMMENDATION_HALF_LIFE_DAYS since; as of the read")


class RecommendationsView(Frozen):
    sku: str
    recommendations: list[Recommendation] = Field(description="active products in stock, best first, at most `limit`")
    source: Literal["co_purchase", "popularity", "mixed"] = Field(
        description="`co_purchase`: all bought with the product; `popularity`: the tenant's most ordered (the product "
                    "has no history yet); `mixed`: co-purchases filled up with popular products")
