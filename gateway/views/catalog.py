"""`POST /v1/products`, `GET /v1/products` (browse and search) and `GET /v1/products/{sku}`.

Listings answer from the gateway's catalog view (gateway/catalog_view.py), never from the workers;
one product by SKU is read from the catalog table's owner, as every other read. Customers see
`active` products only; the tenant's vendors and admins see all of theirs.
"""

from __future__ import annotations

from aiohttp import web

from gateway.auth import Principal, principal
from gateway.catalog_view import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    SORTS,
    STATUSES,
    CursorError,
    Query,
    decode_cursor,
    words,
)
from gateway.errors import ApiError, not_found
from gateway.requests import ProductRequest
from gateway.services import services
from gateway.views.common import parse_body, path_identifier
from streams.models import Envelope, ProductStatus, ProductUpserted, utc_now
from streams.topics import sku_key

STAFF = ("vendor", "admin")


def _sees_every_status(who: Principal) -> bool:
    return who.role in STAFF


async def upsert_product(request: web.Request) -> web.Response:
    who = principal(request)
    who.require(*STAFF)
    body = await parse_body(request, ProductRequest)
    found = services(request)
    now = utc_now()
    # The creation time travels in every version, so the compacted topic's latest record still has it.
    created_at = found.catalog.created_at(who.tenant, body.sku) or now
    event = Envelope.new(who.tenant, ProductUpserted(
        sku=body.sku, name=body.name, price=body.price, description=body.description, images=body.images,
        attributes=body.attributes, status=body.status, created_at=created_at), occurred_at=now)
    await found.writer.write(event)
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
    status = product.get("status", ProductStatus.ACTIVE) if product is not None else None
    if product is None or (status != ProductStatus.ACTIVE and not _sees_every_status(who)):
        raise not_found(f"product {sku}")
    return web.json_response({
        "sku": product["sku"], "name": product["name"], "price": product["price"], "updated_at": product["updated_at"],
        "description": product.get("description", ""), "images": product.get("images", []),
        "attributes": product.get("attributes", {}), "status": status, "created_at": product.get("created_at"),
    })


def _invalid(message: str) -> ApiError:
    return ApiError(422, "invalid_query", message)


def _whole(request: web.Request, name: str, low: int, high: int) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
        raise _invalid(f"{name} must be a whole number from {low} to {high}, not {raw!r}")
    return int(raw)


def listing_query(request: web.Request, who: Principal) -> Query:
    """The query of `GET /v1/products`, validated: 422 for a bad parameter, 400 for a bad cursor."""
    params = request.query
    q = params.get("q", "").strip()
    if len(q) > 200:
        raise _invalid("q must be at most 200 characters")
    has_words = bool(words(q))  # "?!" has none: a listing without words
    sort = params.get("sort", "relevance" if has_words else "newest")
    if sort not in SORTS:
        raise _invalid(f"sort must be one of {', '.join(SORTS)}, not {sort!r}")
    if sort == "relevance" and not has_words:
        raise _invalid("sort=relevance needs words to match: give q, or sort by price_asc, price_desc or newest")
    min_price = _whole(request, "min_price", 0, 10**15)
    max_price = _whole(request, "max_price", 0, 10**15)
    if min_price is not None and max_price is not None and min_price > max_price:
        raise _invalid("min_price must not be above max_price")
    currency = params.get("currency")
    if currency is not None and not (len(currency) == 3 and currency.isascii() and currency.isalpha()
                                     and currency.isupper()):
        raise _invalid(f"currency must be an ISO 4217 code such as EUR, not {currency!r}")
    in_stock_raw = params.get("in_stock", "false")
    if in_stock_raw not in ("true", "false"):
        raise _invalid(f"in_stock must be true or false, not {in_stock_raw!r}")
    status = params.get("status")
    if status is not None and status not in STATUSES:
        raise _invalid(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    if _sees_every_status(who):
        statuses = frozenset({status}) if status else frozenset(STATUSES)
    else:
        if status not in (None, ProductStatus.ACTIVE):
            raise ApiError(403, "forbidden", "customers see active products only; status may only be active")
        statuses = frozenset({ProductStatus.ACTIVE})
    limit = _whole(request, "limit", 1, MAX_LIMIT)
    after = None
    if cursor := params.get("cursor"):
        try:
            after = decode_cursor(cursor, sort)
        except CursorError as exc:
            raise ApiError(400, "invalid_cursor", str(exc)) from None
    return Query(q=q, min_price=min_price, max_price=max_price, currency=currency, in_stock=in_stock_raw == "true",
                 statuses=statuses, sort=sort, after=after, limit=DEFAULT_LIMIT if limit is None else limit)


async def list_products(request: web.Request) -> web.Response:
    who = principal(request)
    query = listing_query(request, who)
    page = services(request).catalog.search(who.tenant, query)
    return web.json_response({"products": page.items, "next_cursor": page.next_cursor})
