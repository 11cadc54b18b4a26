"""`POST /v1/inventory/{sku}/adjustments` and `GET /v1/inventory/{sku}`.

Idempotency-Key on an adjustment: the adjustment id is derived from (tenant, sub, SKU, key); the
inventory agent applies an adjustment id once and remembers its outcome, with the request's hash
and the stock right after it, among the SKU's latest REMEMBERED_ADJUSTMENTS (100). A replay with
the same body gets the first answer (the same status and body), one with another body a 409
`idempotency_key_reused`, whether it comes after the first or concurrently with it.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from gateway.auth import principal
from gateway.errors import ApiError, not_found
from gateway.idempotency import derived_id, idempotency_key, key_reused, request_hash
from gateway.requests import AdjustmentRequest
from gateway.services import services
from gateway.views.common import await_verdict, parse_body, path_identifier
from streams.models import AdjustStock, Envelope
from streams.topics import sku_key

REFUSAL_STATUS = {"unknown_sku": 404, "insufficient_stock": 409}
ADJUSTMENT_NAMESPACE = uuid.UUID("0d6c3b8e-52a4-4f0b-9a7e-3c1f6e2d8b47")
# How long an adjustment with an Idempotency-Key looks for its remembered outcome before writing.
EXISTING_READ_SECONDS = 1.0


def _stock_view(stock: dict[str, Any]) -> dict[str, Any]:
    return {key: stock[key] for key in ("sku", "on_hand", "reserved", "available")}


def _answer(adjustment_id: uuid.UUID, sku: str, stock: dict[str, Any], outcome: dict[str, Any],
            digest: str) -> web.Response:
    """The answer an adjustment's outcome gives, the same to its first request and to every replay."""
    if outcome.get("request_hash") != digest:
        raise key_reused({"adjustment_id": str(adjustment_id)})
    if not outcome["applied"]:
        code, _, message = outcome["reason"].partition(": ")
        raise ApiError(REFUSAL_STATUS.get(code, 409), code, message or code, {"adjustment_id": str(adjustment_id)})
    if outcome.get("on_hand") is None:  # an outcome remembered before outcomes kept the stock after them
        after = _stock_view(stock)
    else:
        after = {"sku": sku, "on_hand": outcome["on_hand"], "reserved": outcome["reserved"],
                 "available": outcome["on_hand"] - outcome["reserved"]}
    return web.json_response({"adjustment_id": str(adjustment_id), "status": "applied", **after}, status=202)


async def adjust_stock(request: web.Request) -> web.Response:
    """Writes the AdjustStock and answers with the inventory agent's verdict: 202 applied with the
    stock right after it, 404/409 refused, or 202 "pending" when the verdict takes longer than a few
    seconds. A SKU not in the caller's tenant's catalog is a 404 `unknown_sku` before anything is
    written. With an Idempotency-Key the adjustment id is the key's: every request with it writes
    its command (the agent applies the first and ignores the rest), then reads the outcome and
    compares the request hash stored with it to its own."""
    who = principal(request)
    who.require("vendor", "admin")
    sku = path_identifier(request, "sku", "SKU")
    body = await parse_body(request, AdjustmentRequest)
    key = idempotency_key(request)
    adjustment_id = uuid.uuid4() if key is None else derived_id(ADJUSTMENT_NAMESPACE, who, key, sku)
    # The SKU is in the path, not the body: the adjustment id already depends on it.
    digest = request_hash("adjust stock", body)
    found = services(request)
    stock_key = sku_key(who.tenant, sku).decode()

    def outcome_in(stock: dict[str, Any]) -> dict[str, Any] | None:
        return stock.get("recent_adjustments", {}).get(str(adjustment_id))  # type: ignore[no-any-return]

    if key is not None:
        # A replay of a remembered adjustment is answered without writing. A write never waits for a
        # worker: with no answer in time the command is written, and the agent ignores a known id.
        remembered = await found.reads.state_within("inventory", stock_key, EXISTING_READ_SECONDS)
        if isinstance(remembered, dict) and (outcome := outcome_in(remembered)) is not None:
            return _answer(adjustment_id, sku, remembered, outcome, digest)
    # A SKU the caller's tenant's catalog lacks (another tenant's, say) is refused before anything is
    # written: the agent would refuse it too, but only after the command had been written and its
    # refusal stored as a stock row of that SKU. No answer in time: written, and the agent decides.
    product = await found.reads.state_within("catalog", stock_key, found.settings.read_miss_wait_seconds
                                             + EXISTING_READ_SECONDS, wait=found.settings.read_miss_wait_seconds)
    if product is None:
        raise ApiError(404, "unknown_sku", "the SKU is not in the catalog; create the product first")
    command = AdjustStock(adjustment_id=adjustment_id, sku=sku, delta=body.delta, reason=body.reason,
                          request_hash=digest)
    await found.writer.write(Envelope.new(who.tenant, command))
    found_verdict = await await_verdict(found.reads, "inventory", stock_key, outcome_in)
    if found_verdict is None:
        return web.json_response({"adjustment_id": str(adjustment_id), "status": "pending", "sku": sku}, status=202)
    stock, outcome = found_verdict
    return _answer(adjustment_id, sku, stock, outcome, digest)


async def get_stock(request: web.Request) -> web.Response:
    who = principal(request)
    sku = path_identifier(request, "sku", "SKU")
    found = services(request)
    key = sku_key(who.tenant, sku).decode()
    stock = await found.reads.state("inventory", key, wait=found.settings.read_miss_wait_seconds)
    # A row that holds nothing may be a refusal's (an order or a campaign of a SKU not in the catalog):
    # that SKU is as unknown as one without a row.
    if stock is not None and (stock["on_hand"] or stock["reserved"] or stock["holds"]):
        return web.json_response(_stock_view(stock))
    if await found.reads.state("catalog", key) is None:
        raise not_found(f"SKU {sku}")
    return web.json_response(_stock_view(stock) if stock is not None else
                             {"sku": sku, "on_hand": 0, "reserved": 0, "available": 0})
