"""Every route of the gateway."""

from __future__ import annotations

from aiohttp import web

from gateway.views import catalog, health, inventory, orders, payments


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
    app.router.add_post("/v1/products", catalog.upsert_product)
    app.router.add_get("/v1/products/{sku}", catalog.get_product)
    app.router.add_post("/v1/inventory/{sku}/adjustments", inventory.adjust_stock)
    app.router.add_get("/v1/inventory/{sku}", inventory.get_stock)
    app.router.add_post("/v1/orders", orders.place_order)
    app.router.add_get("/v1/orders/{order_id}", orders.get_order)
    app.router.add_post("/v1/orders/{order_id}/cancel", orders.cancel_order)
    app.router.add_post(payments.WEBHOOK_PATH, payments.stripe_webhook)
