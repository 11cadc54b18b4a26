"""The gateway's read model of listings: every tenant's products and whether they are in stock, searchable.

`GET /v1/products` answers from here and never asks the workers. A background thread of each
gateway process (`gateway/catalog_feed.py`) fills it from the compacted `catalog.products` (the
latest `ProductUpserted` of each `<tenant>/<sku>`) and `inventory.availability` (the latest
`AvailabilityChanged`, announced when the SKU goes in or out of stock: the view keeps its
`in_stock` only), as Kafka Streams' GlobalKTable does: the same records in every process,
so every gateway answers the same pages, a few hundred milliseconds behind the workers.

Per tenant it keeps the products by SKU, an inverted index (word -> SKU -> where the word is: in
the name, in the description or both) and two sorted lists, `(price amount, sku)` and `(creation
time, sku)`. A search without words walks the list of its order from the cursor; a search with
words intersects the words' postings and sorts what passes the filters.

Paging is keyset paging: a cursor is the last item's sort key and SKU, and the next page is the
items strictly after it in the order. The keys of `newest` (creation time, kept across upserts)
and of `relevance` (for an unchanged product) never move, so items that exist throughout paging
are neither skipped nor repeated, whatever is inserted meanwhile; an item inserted during paging
shows or not depending on where it sorts. A product whose price changes during price-ordered
paging moves, and may be seen twice or not at all.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import json
import re
import threading
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from streams.models import AvailabilityChanged, Envelope, Money, ProductUpserted

SORTS = ("relevance", "price_asc", "price_desc", "newest")
STATUSES = ("draft", "active", "archived")
MAX_LIMIT = 100
DEFAULT_LIMIT = 20
MAX_QUERY_WORDS = 10
MIN_PREFIX = 3  # a shorter last word is matched whole: "a" would be a prefix of half the vocabulary
NAME, DESCRIPTION = 1, 2  # where a word is in a product, as bits
NAME_WEIGHT, DESCRIPTION_WEIGHT = 2, 1  # relevance: a query word in the name counts twice one in the description
_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """Lower-cased word tokens (letters, digits, underscore; any script)."""
    return _WORD.findall(text.lower())


class CursorError(ValueError):
    """A cursor that this view did not make, or made for another order."""


@dataclass(slots=True)
class Listed:
    """A product as the view keeps it."""

    sku: str
    name: str
    description: str
    price: Money
    images: tuple[str, ...]
    attributes: dict[str, str]
    status: str
    created_at: datetime
    updated_at: datetime
    created_key: int  # created_at in microseconds since the epoch: the `newest` order's key

    def answer(self, in_stock: bool) -> dict[str, Any]:
        return {
            "sku": self.sku, "name": self.name, "description": self.description,
            "price": {"amount": self.price.amount, "currency": self.price.currency}, "images": list(self.images),
            "attributes": self.attributes, "status": self.status, "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(), "in_stock": in_stock,
        }


def _micros(at: datetime) -> int:
    return int(at.timestamp()) * 1_000_000 + at.microsecond


@dataclass(frozen=True)
class Query:
    """What a listing asks: words, filters, an order, where to go on from and how many."""

    q: str = ""
    min_price: int | None = None
    max_price: int | None = None
    currency: str | None = None
    in_stock: bool = False
    statuses: frozenset[str] = frozenset(STATUSES)
    sort: str = "newest"
    after: tuple[int, str] | None = None  # the decoded cursor: the last item's key and SKU
    limit: int = DEFAULT_LIMIT

    @property
    def terms(self) -> list[str]:
        return words(self.q)[:MAX_QUERY_WORDS]


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


def encode_cursor(sort: str, key: int, sku: str) -> str:
    raw = json.dumps({"sort": sort, "key": key, "sku": sku}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str, sort: str) -> tuple[int, str]:
    """The key and SKU a cursor of `sort` holds; CursorError for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError):
        raise CursorError("the cursor is not one this API made; pass next_cursor as it was answered") from None
    if not isinstance(data, dict) or set(data) != {"sort", "key", "sku"} or not isinstance(data["sku"], str) \
            or not isinstance(data["key"], int) or isinstance(data["key"], bool) or data["sort"] not in SORTS:
        raise CursorError("the cursor is not one this API made; pass next_cursor as it was answered")
    if data["sort"] != sort:
        raise CursorError(f"the cursor was made for sort={data['sort']}, not sort={sort}; keep the sort while paging")
    return data["key"], data["sku"]


@dataclass
class TenantCatalog:
    products: dict[str, Listed] = field(default_factory=dict)
    postings: dict[str, dict[str, int]] = field(default_factory=dict)  # word -> sku -> NAME|DESCRIPTION
    vocabulary: list[str] = field(default_factory=list)  # the postings' words, sorted (prefix search)
    by_price: list[tuple[int, str]] = field(default_factory=list)
    by_created: list[tuple[int, str]] = field(default_factory=list)
    in_stock: dict[str, bool] = field(default_factory=dict)  # sku -> the latest announcement's in_stock

    def put(self, product: Listed) -> None:
        old = self.products.get(product.sku)
        if old is not None:
            self._unindex(old)
        self.products[product.sku] = product
        for word, where in _places(product).items():
            skus = self.postings.get(word)
            if skus is None:
                skus = self.postings[word] = {}
                insort(self.vocabulary, word)
            skus[product.sku] = where
        insort(self.by_price, (product.price.amount, product.sku))
        insort(self.by_created, (product.created_key, product.sku))

    def _unindex(self, product: Listed) -> None:
        for word in _places(product):
            skus = self.postings[word]
            del skus[product.sku]
            if not skus:
                del self.postings[word]
                del self.vocabulary[bisect_left(self.vocabulary, word)]
        for sorted_list, key in ((self.by_price, (product.price.amount, product.sku)),
                                 (self.by_created, (product.created_key, product.sku))):
            del sorted_list[bisect_left(sorted_list, key)]

    def words_starting(self, prefix: str) -> list[str]:
        found = []
        for i in range(bisect_left(self.vocabulary, prefix), len(self.vocabulary)):
            if not self.vocabulary[i].startswith(prefix):
                break
            found.append(self.vocabulary[i])
        return found


def _places(product: Listed) -> dict[str, int]:
    places: dict[str, int] = {}
    for word in words(product.name):
        places[word] = NAME
    for word in words(product.description):
        places[word] = places.get(word, 0) | DESCRIPTION
    return places


class CatalogView:
    """Products and whether they are in stock per tenant, applied from the topics' records, searched by listings.

    Thread-safe: the feed's thread applies records while the event loop searches (one lock)."""

    def __init__(self) -> None:
        self._tenants: dict[str, TenantCatalog] = {}
        self._lock = threading.Lock()
        self.ready = threading.Event()  # set by the feed once it has read up to the ends it saw at start

    def _tenant(self, tenant: str) -> TenantCatalog:
        catalog = self._tenants.get(tenant)
        if catalog is None:
            catalog = self._tenants[tenant] = TenantCatalog()
        return catalog

    def apply(self, event: Envelope) -> None:
        payload = event.payload
        with self._lock:
            catalog = self._tenant(event.tenant)
            if isinstance(payload, ProductUpserted):
                known = catalog.products.get(payload.sku)
                created = payload.created_at or (known.created_at if known is not None else event.occurred_at)
                catalog.put(Listed(
                    sku=payload.sku, name=payload.name, description=payload.description, price=payload.price,
                    images=payload.images, attributes=payload.attributes, status=payload.status,
                    created_at=created, updated_at=event.occurred_at, created_key=_micros(created)))
            elif isinstance(payload, AvailabilityChanged):
                catalog.in_stock[payload.sku] = payload.in_stock

    def product(self, tenant: str, sku: str) -> Listed | None:
        with self._lock:
            catalog = self._tenants.get(tenant)
            return catalog.products.get(sku) if catalog is not None else None

    def in_stock(self, tenant: str, sku: str) -> bool:
        """Whether the SKU is in stock as last announced (False when never stocked)."""
        with self._lock:
            catalog = self._tenants.get(tenant)
            return catalog.in_stock.get(sku, False) if catalog is not None else False

    def created_at(self, tenant: str, sku: str) -> datetime | None:
        known = self.product(tenant, sku)
        return known.created_at if known is not None else None

    def search(self, tenant: str, query: Query) -> Page:
        with self._lock:
            catalog = self._tenants.get(tenant)
            if catalog is None:
                return Page([], None)
            found = list(self._found(catalog, query))
            more = len(found) > query.limit
            page = found[:query.limit]
            items = [catalog.products[sku].answer(catalog.in_stock.get(sku, False)) for _, sku in page]
        cursor = encode_cursor(query.sort, *page[-1]) if more and page else None
        return Page(items, cursor)

    def _passes(self, catalog: TenantCatalog, product: Listed, query: Query) -> bool:
        return (product.status in query.statuses
                and (query.min_price is None or product.price.amount >= query.min_price)
                and (query.max_price is None or product.price.amount <= query.max_price)
                and (query.currency is None or product.price.currency == query.currency)
                and (not query.in_stock or catalog.in_stock.get(product.sku, False)))

    def _found(self, catalog: TenantCatalog, query: Query) -> Iterator[tuple[int, str]]:
        """Up to limit + 1 (key, sku) of the order after the cursor, passing the filters."""
        terms = query.terms
        if terms:
            yield from self._searched(catalog, query, terms)
            return
        if query.sort == "relevance":
            return  # nothing is relevant to no words (the view refuses such a query)
        wanted = query.limit + 1
        for key, sku in self._walk(catalog, query):
            if self._passes(catalog, catalog.products[sku], query):
                yield key, sku
                wanted -= 1
                if wanted == 0:
                    return

    def _walk(self, catalog: TenantCatalog, query: Query) -> Iterator[tuple[int, str]]:
        """The whole tenant's (key, sku) in the query's order, from just after the cursor."""
        ordered = catalog.by_price if query.sort in ("price_asc", "price_desc") else catalog.by_created
        after = query.after
        if query.sort == "price_asc":
            start = bisect_right(ordered, after) if after is not None else 0
            if query.min_price is not None:
                start = max(start, bisect_left(ordered, (query.min_price, "")))
            for i in range(start, len(ordered)):
                if query.max_price is not None and ordered[i][0] > query.max_price:
                    return
                yield ordered[i]
            return
        end = bisect_left(ordered, after) if after is not None else len(ordered)
        if query.sort == "price_desc" and query.max_price is not None:
            end = min(end, bisect_right(ordered, (query.max_price, "\U0010ffff")))
        for i in range(end - 1, -1, -1):
            if query.sort == "price_desc" and query.min_price is not None and ordered[i][0] < query.min_price:
                return
            yield ordered[i]

    def _searched(self, catalog: TenantCatalog, query: Query, terms: list[str]) -> list[tuple[int, str]]:
        """The first limit + 1 products after the cursor with all the words (the last one as a prefix
        when it has MIN_PREFIX letters or more), filtered, in the query's order."""
        last = terms[-1]
        prefix = len(last) >= MIN_PREFIX
        exact = [catalog.postings.get(term, {}) for term in (terms[:-1] if prefix else terms)]
        prefixed = [catalog.postings[word] for word in catalog.words_starting(last)] if prefix else []
        if any(not places for places in exact) or (prefix and not prefixed):
            return []
        exact.sort(key=len)
        # The prefix's words, merged into one posting (cost: their sizes) unless looking each candidate
        # of the exact words up in them costs less.
        if prefix and (not exact or sum(map(len, prefixed)) <= len(exact[0]) * len(prefixed)):
            merged: dict[str, int] = {}
            for places in prefixed:
                for sku, where in places.items():
                    merged[sku] = merged.get(sku, 0) | where
            exact.append(merged)
            exact.sort(key=len)
            prefix = False
        candidates: Iterable[str] = (sku for sku in exact[0] if all(sku in places for places in exact[1:]))
        descending = query.sort in ("price_desc", "newest")
        after = query.after
        found: list[tuple[int, str]] = []
        for sku in candidates:
            score = 0
            if prefix:
                where = 0
                for places in prefixed:
                    where |= places.get(sku, 0)
                if not where:
                    continue
                score = _weight(where)
            product = catalog.products[sku]
            if not self._passes(catalog, product, query):
                continue
            if query.sort == "relevance":
                key = (-(score + sum(_weight(places[sku]) for places in exact)), sku)
            elif query.sort in ("price_asc", "price_desc"):
                key = (product.price.amount, sku)
            else:
                key = (product.created_key, sku)
            if after is None or (key < after if descending else key > after):
                found.append(key)
        wanted = query.limit + 1
        return heapq.nlargest(wanted, found) if descending else heapq.nsmallest(wanted, found)

    def sizes(self) -> dict[str, int]:
        with self._lock:
            return {tenant: len(catalog.products) for tenant, catalog in self._tenants.items()}


def _weight(where: int) -> int:
    return (NAME_WEIGHT if where & NAME else 0) + (DESCRIPTION_WEIGHT if where & DESCRIPTION else 0)
