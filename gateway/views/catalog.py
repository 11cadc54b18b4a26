"""`POST /v1/products` and `GET /v1/products/{sku}`."""

from __future__ import annotations

from aiohttp import web

from gateway.auth import principal
from gateway.errors import not_found
from gateway.requests import ProductRequest
from gateway.services import services
from gateway.views.common import parse_body, path_identifier
from streams.models import Envelope, ProductUpserted
from streams.topics import sku_key


async def upsert_product(request: web.Request) -> web.Response:
    who = principal(request)
    who.require("vendor", "admin")
    body = await parse_body(request, ProductRequest)
    event = Envelope.new(who.tenant, ProductUpserted(sku=body.sku, name=body.name, price=body.price))
    await services(request).writer.write(event)
    return web.json_response(
        {"sku": body.sku, "status": "accepted"}, status=202, headers={"Location": f"/v1/products/{body.sku}"}
    )


async def get_product(request: web.Request) -> web.Response:
    who = principal(request)
    sku = path_identifier(request, "sku", "SKU")
    found = services(request)
    product = await found.reads.state(
        "catalog", sku_key(who.tenant, sku).decode(), wait=found.settings.read_miss_wait_seconds
    )
    if product is None:
        raise not_found(f"product {sku}")
    return web.json_response(
        {"sku": product["sku"], "name": product["name"], "price": product["price"], "updated_at": product["updated_at"]}
    )
