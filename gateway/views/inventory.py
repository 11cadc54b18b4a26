"""`POST /v1/inventory/{sku}/adjustments` and `GET /v1/inventory/{sku}`."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from gateway.auth import principal
from gateway.errors import ApiError, not_found
from gateway.requests import AdjustmentRequest
from gateway.services import services
from gateway.views.common import await_verdict, parse_body
from streams.models import AdjustStock, Envelope
from streams.topics import sku_key

REFUSAL_STATUS = {"unknown_sku": 404, "insufficient_stock": 409}


def _stock_view(stock: dict[str, Any]) -> dict[str, Any]:
    return {key: stock[key] for key in ("sku", "on_hand", "reserved", "available")}


async def adjust_stock(request: web.Request) -> web.Response:
    who = principal(request)
    who.require("vendor", "admin")
    sku = request.match_info["sku"]
    body = await parse_body(request, AdjustmentRequest)
    adjustment_id = uuid.uuid4()
    found = services(request)
    command = AdjustStock(adjustment_id=adjustment_id, sku=sku, delta=body.delta, reason=body.reason)
    await found.writer.write(Envelope.new(who.tenant, command))
    key = sku_key(who.tenant, sku).decode()
    found_verdict = await await_verdict(
        found.reads, "inventory", key, lambda stock: stock.get("recent_adjustments", {}).get(str(adjustment_id))
    )
    if found_verdict is None:
        return web.json_response({"adjustment_id": str(adjustment_id), "status": "pending", "sku": sku}, status=202)
    stock, outcome = found_verdict
    if not outcome["applied"]:
        code, _, message = outcome["reason"].partition(": ")
        raise ApiError(REFUSAL_STATUS.get(code, 409), code, message or code, {"adjustment_id": str(adjustment_id)})
    return web.json_response({"adjustment_id": str(adjustment_id), "status": "applied", **_stock_view(stock)},
                             status=202)


async def get_stock(request: web.Request) -> web.Response:
    who = principal(request)
    sku = request.match_info["sku"]
    found = services(request)
    key = sku_key(who.tenant, sku).decode()
    stock = await found.reads.state("inventory", key, wait=found.settings.read_miss_wait_seconds)
    if stock is not None:
        return web.json_response(_stock_view(stock))
    if await found.reads.state("catalog", key) is None:
        raise not_found(f"SKU {sku}")
    return web.json_response({"sku": sku, "on_hand": 0, "reserved": 0, "available": 0})
