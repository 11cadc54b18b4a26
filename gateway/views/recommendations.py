"""`GET /v1/products/{sku}/recommendations?limit=5`: the products bought with a product.

The recommendations agent (streams/agents/recommendations.py) keeps, per `<tenant>/<sku>`, the
decayed scores of the SKUs bought with it, and per tenant (`<tenant>/*`) how often each SKU was
ordered. This view reads both entries and the product from the workers that own them, ranks the
co-purchases by score, keeps what is active and in stock (`eligible`, bounded to `limit` x 3
candidates) and fills up to `limit` from the popularity: `source` says which of the two answered.
Any role of the tenant may read it. Every key read is the caller's tenant's: another tenant's SKU is
a 404, and only the tenant's own orders ever fed its entries.

The asked product is a worker read (with the read-miss wait), so that a product just upserted is
found by its owner. The candidates are not: `eligible` asks the gateway's catalog read model
(gateway/catalog_view.py, `services(request).catalog`, which `/readyz` waits for) for their status,
name, price and whether they are in stock, without a worker read. That model follows the compacted
topics a few hundred milliseconds behind the workers: a candidate just upserted, drafted or sold out
may be judged on its previous state for that long, and one not in it yet is left out.

Each answer is announced as RecommendationsServed on `recommendations.served` (Druid's
click-through), fire and forget: a write that fails is logged and never fails the read.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from gateway.auth import principal
from gateway.catalog_view import CatalogView
from gateway.errors import ApiError, not_found
from gateway.services import services
from gateway.views.common import path_identifier
from streams.models import POPULARITY, Envelope, RecommendationsServed, utc_now
from streams.tables.recommendations import decay_factor, ranked
from streams.topics import sku_key

log = logging.getLogger(__name__)

TABLE = "recommendations"
DEFAULT_LIMIT = 5
MAX_LIMIT = 20
# Candidates checked for being active and in stock, per recommendation asked for.
CANDIDATES_PER_RESULT = 3
# The announcements on their way (a task is kept referenced until it is done).
_ANNOUNCING: set[asyncio.Task[Any]] = set()


def recommendation_limit(request: web.Request) -> int:
    raw = request.query.get("limit", str(DEFAULT_LIMIT))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise ApiError(422, "invalid_query", f"limit must be a whole number between 1 and {MAX_LIMIT}")
    return int(raw)


def eligible(catalog: CatalogView, tenant: str, skus: list[str]) -> list[dict[str, Any]]:
    """The products among `skus` that are active and in stock in the catalog read model, in the order
    given, as an answer shows them: sku, name and price (`{"amount", "currency"}`, as the catalog table
    and the listings show it)."""
    found = []
    for sku in skus:
        product = catalog.product(tenant, sku)
        if product is None or product.status != "active" or not catalog.in_stock(tenant, sku):
            continue
        found.append({"sku": sku, "name": product.name,
                      "price": {"amount": product.price.amount, "currency": product.price.currency}})
    return found


def scored(entry: dict[str, Any] | None, exclude: str, now: datetime, half_life: timedelta) -> list[tuple[str, float]]:
    """An entry's SKUs by score, highest first, the scores decayed from the entry's time to `now`."""
    if not entry or not entry.get("decayed_at"):
        return []
    elapsed = max(now - datetime.fromisoformat(entry["decayed_at"]), timedelta(0))
    keep = decay_factor(elapsed, half_life)
    return [(sku, score * keep) for sku, score in ranked(entry, exclude)]


def _announced(task: asyncio.Task[Any]) -> None:
    _ANNOUNCING.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.warning("recommendations served, not announced: %s", task.exception())


def announce(request: web.Request, event: Envelope) -> None:
    task = asyncio.create_task(services(request).writer.write(event))
    _ANNOUNCING.add(task)
    task.add_done_callback(_announced)


async def get_recommendations(request: web.Request) -> web.Response:
    who = principal(request)
    sku = path_identifier(request, "sku", "SKU")
    limit = recommendation_limit(request)
    found = services(request)
    key = sku_key(who.tenant, sku).decode()
    product, bought_with, popular = await asyncio.gather(
        found.reads.state("catalog", key, wait=found.settings.read_miss_wait_seconds),
        found.reads.state(TABLE, key),
        found.reads.state(TABLE, sku_key(who.tenant, POPULARITY).decode()),
    )
    if product is None or (who.role == "customer" and product.get("status", "active") != "active"):
        raise not_found(f"product {sku}")
    now, half_life = utc_now(), timedelta(days=found.settings.recommendation_half_life_days)
    scores: dict[str, float] = {}
    from_co_purchase: set[str] = set()
    for source, entry in (("co_purchase", bought_with), ("popularity", popular)):
        for candidate, score in scored(entry, sku, now, half_life):
            if candidate not in scores:
                scores[candidate] = score
                if source == "co_purchase":
                    from_co_purchase.add(candidate)
    candidates = list(scores)[:limit * CANDIDATES_PER_RESULT]
    chosen = eligible(found.catalog, who.tenant, candidates)[:limit]
    answer = [{**item, "score": round(scores[item["sku"]], 6)} for item in chosen]
    kinds = {item["sku"] in from_co_purchase for item in chosen}
    source = "mixed" if len(kinds) == 2 else "co_purchase" if kinds == {True} else "popularity"
    announce(request, Envelope.new(who.tenant, RecommendationsServed(
        sku=sku, recommended=tuple(item["sku"] for item in chosen), source=source)))
    return web.json_response({"sku": sku, "recommendations": answer, "source": source})
