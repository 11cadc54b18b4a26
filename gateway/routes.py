"""Every route of the gateway; each is described for the OpenAPI document in gateway/openapi.py."""

from __future__ import annotations

from aiohttp import web

from gateway.views import (
    campaigns,
    catalog,
    docs,
    health,
    inventory,
    orders,
    payments,
    recommendations,
    shipping,
    webhooks,
)


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
    app.router.add_get("/openapi.json", docs.openapi_json)
    app.router.add_get("/docs", docs.docs_page)
    app.router.add_get("/docs/assets/{name}", docs.docs_asset)
    app.router.add_post("/v1/products", catalog.upsert_product)
    app.router.add_get("/v1/products", catalog.list_products)
    app.router.add_get("/v1/products/{sku}", catalog.get_product)
    app.router.add_get("/v1/products/{sku}/recommendations", recommendations.get_recommendations)
    app.router.add_post("/v1/inventory/{sku}/adjustments", inventory.adjust_stock)
    app.router.add_get("/v1/inventory/{sku}", inventory.get_stock)
    app.router.add_post("/v1/orders", orders.place_order)
    app.router.add_get("/v1/orders/{order_id}", orders.get_order)
    app.router.add_post("/v1/orders/{order_id}/cancel", orders.cancel_order)
    app.router.add_post(payments.WEBHOOK_PATH, payments.stripe_webhook)
    app.router.add_post("/v1/orders/{order_id}/shipments", shipping.create_shipment)
    app.router.add_post(shipping.WEBHOOK_PATH, shipping.carrier_webhook)
    app.router.add_post("/v1/campaigns", campaigns.open_campaign)
    app.router.add_get("/v1/campaigns", campaigns.list_campaigns)
    app.router.add_get("/v1/campaigns/{campaign_id}", campaigns.get_campaign)
    app.router.add_delete("/v1/campaigns/{campaign_id}", campaigns.cancel_campaign)
    app.router.add_post("/v1/campaigns/{campaign_id}/pledges", campaigns.pledge)
    app.router.add_delete("/v1/campaigns/{campaign_id}/pledges", campaigns.withdraw)
    app.router.add_get("/v1/campaigns/{campaign_id}/pledges/mine", campaigns.my_pledge)
    app.router.add_post("/v1/webhooks", webhooks.register_endpoint)
    app.router.add_get("/v1/webhooks", webhooks.list_endpoints)
    app.router.add_get("/v1/webhooks/{endpoint_id}", webhooks.get_endpoint)
    app.router.add_delete("/v1/webhooks/{endpoint_id}", webhooks.delete_endpoint)
    app.router.add_post("/v1/webhooks/{endpoint_id}/enable", webhooks.enable_endpoint)
    app.router.add_get("/v1/webhooks/{endpoint_id}/deliveries", webhooks.list_deliveries)
