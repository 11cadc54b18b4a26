"""The gateway's catalog view (gateway/catalog_view.py): search, filters, orders, visibility, paging.

Given a fixture catalog of two tenants applied as the topics' records would be, when it is searched,
then the answers are the lists written below by hand (not computed by the code under test).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from gateway.catalog_view import STATUSES, CatalogView, CursorError, Query, decode_cursor, encode_cursor, words
from streams.models import AvailabilityChanged, Envelope, Money, ProductUpserted

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
ACME, GLOBEX = "acme", "globex"
ACTIVE = frozenset({"active"})
EVERY = frozenset(STATUSES)

# sku, name, description, amount, currency, status, available, created (minutes after T0)
FIXTURE = [
    (ACME, "MUG-1", "Blue stoneware mug", "A glazed mug for coffee", 1299, "EUR", "active", 5, 1),
    (ACME, "MUG-2", "Red mug", "Stoneware, dishwasher safe", 999, "EUR", "active", 0, 2),
    (ACME, "CUP-1", "Espresso cup", "Small porcelain cup for espresso and coffee", 650, "EUR", "active", 12, 3),
    (ACME, "PLATE-1", "Dinner plate", "Stoneware plate", 1500, "EUR", "active", 3, 4),
    (ACME, "TEAPOT-1", "Teapot", "A stoneware teapot with a mug-shaped lid", 4500, "EUR", "draft", 7, 5),
    (ACME, "BOWL-1", "Old bowl", "Discontinued stoneware bowl", 800, "EUR", "archived", 0, 6),
    (ACME, "MUG-3", "Travel mug", "Steel, keeps coffee hot", 1999, "USD", "active", 1, 7),
    (GLOBEX, "MUG-9", "Blue mug", "Stoneware mug", 500, "EUR", "active", 4, 8),
]


def upsert(tenant: str, sku: str, name: str, description: str = "", amount: int = 100, currency: str = "EUR",
           status: str = "active", created: datetime = T0, at: datetime | None = None) -> Envelope:
    return Envelope.new(tenant, ProductUpserted(
        sku=sku, name=name, description=description, price=Money(amount=amount, currency=currency), status=status,
        created_at=created), occurred_at=at or created)


def availability(tenant: str, sku: str, available: int) -> Envelope:
    return Envelope.new(tenant, AvailabilityChanged(sku=sku, available=available, in_stock=available > 0))


@pytest.fixture
def view() -> CatalogView:
    catalog = CatalogView()
    for tenant, sku, name, description, amount, currency, status, available, minutes in FIXTURE:
        created = T0 + timedelta(minutes=minutes)
        catalog.apply(upsert(tenant, sku, name, description, amount, currency, status, created))
        if available:
            catalog.apply(availability(tenant, sku, available))
    # MUG-2 sold out: an availability of 0 after some stock
    catalog.apply(availability(ACME, "MUG-2", 2))
    catalog.apply(availability(ACME, "MUG-2", 0))
    return catalog


def skus(view: CatalogView, tenant: str = ACME, **query: object) -> list[str]:
    return [item["sku"] for item in view.search(tenant, Query(**query)).items]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # a word in name and description (3) before a word in the name only (2); ties by SKU
        ({"q": "mug", "sort": "relevance"}, ["MUG-1", "MUG-2", "MUG-3"]),
        ({"q": "MUG", "sort": "relevance"}, ["MUG-1", "MUG-2", "MUG-3"]),  # lower-cased
        # every word must be there; the draft teapot (stoneware and mug in its description) is not a customer's
        ({"q": "stoneware mug", "sort": "relevance"}, ["MUG-1", "MUG-2"]),
        # the last word as a prefix: "coff" is coffee, in three descriptions (1 each): by SKU
        ({"q": "coff", "sort": "relevance"}, ["CUP-1", "MUG-1", "MUG-3"]),
        ({"q": "cup espresso", "sort": "relevance"}, ["CUP-1"]),
        # only the last word is a prefix: "mu" is no word of its own
        ({"q": "mu stoneware", "sort": "relevance"}, []),
        # and only from 3 letters on: a shorter last word is matched whole
        ({"q": "mu", "sort": "relevance"}, []),
        ({"q": "espresso cu", "sort": "relevance"}, []),
        ({"q": "saucer", "sort": "relevance"}, []),
        # a price range on the amount, whatever the currency (MUG-3 is USD), or in one currency
        ({"q": "mug", "sort": "relevance", "min_price": 1000, "max_price": 2000}, ["MUG-1", "MUG-3"]),
        ({"q": "mug", "sort": "relevance", "min_price": 1000, "currency": "EUR"}, ["MUG-1"]),
        ({"q": "mug", "sort": "price_asc"}, ["MUG-2", "MUG-1", "MUG-3"]),
        ({"q": "mug", "sort": "price_desc"}, ["MUG-3", "MUG-1", "MUG-2"]),
        ({"q": "mug", "sort": "newest"}, ["MUG-3", "MUG-2", "MUG-1"]),
        ({"q": "mug", "sort": "relevance", "in_stock": True}, ["MUG-1", "MUG-3"]),
        # no words: the whole active catalog in each order
        ({"sort": "newest"}, ["MUG-3", "PLATE-1", "CUP-1", "MUG-2", "MUG-1"]),
        ({"sort": "price_asc"}, ["CUP-1", "MUG-2", "MUG-1", "PLATE-1", "MUG-3"]),
        ({"sort": "price_desc"}, ["MUG-3", "PLATE-1", "MUG-1", "MUG-2", "CUP-1"]),
        ({"sort": "newest", "in_stock": True}, ["MUG-3", "PLATE-1", "CUP-1", "MUG-1"]),
        ({"sort": "price_asc", "min_price": 900, "max_price": 1500}, ["MUG-2", "MUG-1", "PLATE-1"]),
        ({"sort": "price_desc", "min_price": 900, "max_price": 1500}, ["PLATE-1", "MUG-1", "MUG-2"]),
        ({"sort": "newest", "min_price": 1000}, ["MUG-3", "PLATE-1", "MUG-1"]),
        ({"sort": "price_asc", "max_price": 649}, []),
    ],
)
def test_a_customer_finds_the_active_products_matching_the_query(view, query, expected):
    assert skus(view, statuses=ACTIVE, **query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"sort": "newest"}, ["MUG-3", "BOWL-1", "TEAPOT-1", "PLATE-1", "CUP-1", "MUG-2", "MUG-1"]),
        ({"sort": "newest", "statuses": frozenset({"draft"})}, ["TEAPOT-1"]),
        ({"sort": "price_asc", "statuses": frozenset({"archived"})}, ["BOWL-1"]),
        # stoneware (name 2 / description 1) + mug (name and description 3 / name 2 / description 1)
        ({"q": "stoneware mug", "sort": "relevance"}, ["MUG-1", "MUG-2", "TEAPOT-1"]),
        ({"q": "stoneware", "sort": "price_desc"}, ["TEAPOT-1", "PLATE-1", "MUG-1", "MUG-2", "BOWL-1"]),
    ],
)
def test_vendors_and_admins_see_every_status_of_their_tenant(view, query, expected):
    assert skus(view, **{"statuses": EVERY, **query}) == expected


def test_another_tenants_products_are_never_visible(view):
    # Given acme's catalog and globex's blue stoneware mug
    # When each tenant searches for what both have
    # Then each finds its own only
    assert skus(view, ACME, q="blue", sort="relevance", statuses=EVERY) == ["MUG-1"]
    assert skus(view, GLOBEX, q="stoneware mug", sort="relevance", statuses=EVERY) == ["MUG-9"]
    assert skus(view, GLOBEX, sort="newest", statuses=EVERY) == ["MUG-9"]
    assert skus(view, "initech", sort="newest", statuses=EVERY) == []
    assert view.product(GLOBEX, "MUG-1") is None


def test_each_product_is_answered_with_whether_it_is_in_stock(view):
    items = view.search(ACME, Query(q="mug", sort="relevance", statuses=ACTIVE)).items
    assert [(i["sku"], i["in_stock"]) for i in items] == [("MUG-1", True), ("MUG-2", False), ("MUG-3", True)]
    assert (view.in_stock(ACME, "CUP-1"), view.in_stock(ACME, "BOWL-1"), view.in_stock(GLOBEX, "CUP-1")) == (
        True, False, False)
    assert items[0] == {
        "sku": "MUG-1", "name": "Blue stoneware mug", "description": "A glazed mug for coffee",
        "price": {"amount": 1299, "currency": "EUR"}, "images": [], "attributes": {}, "status": "active",
        "created_at": "2026-11-01T09:01:00+00:00", "updated_at": "2026-11-01T09:01:00+00:00",
        "in_stock": True,
    }


def test_the_latest_announcement_says_whether_a_product_is_in_stock(view):
    # Given MUG-1 (in stock) sold out, and MUG-2 (sold out) restocked
    view.apply(availability(ACME, "MUG-1", 0))
    view.apply(availability(ACME, "MUG-2", 3))

    # Then the in-stock listing has MUG-2 and no longer MUG-1
    assert (view.in_stock(ACME, "MUG-1"), view.in_stock(ACME, "MUG-2")) == (False, True)
    assert skus(view, q="mug", sort="relevance", statuses=ACTIVE, in_stock=True) == ["MUG-2", "MUG-3"]


def test_an_upsert_replaces_the_product_in_every_index_and_keeps_its_creation_time(view):
    # Given MUG-1 renamed, repriced, archived later, its upsert without a creation time
    later = T0 + timedelta(days=1)
    view.apply(Envelope.new(ACME, ProductUpserted(sku="MUG-1", name="Green jug", description="Earthenware",
                                                  price=Money(amount=2500, currency="EUR")), occurred_at=later))

    # Then the old words find it no more, the new ones do, at its new price and original place in `newest`
    assert skus(view, q="blue", sort="relevance", statuses=EVERY) == []
    assert skus(view, q="earthen", sort="relevance", statuses=EVERY) == ["MUG-1"]
    assert skus(view, sort="price_desc", statuses=ACTIVE) == ["MUG-1", "MUG-3", "PLATE-1", "MUG-2", "CUP-1"]
    assert skus(view, sort="newest", statuses=ACTIVE) == ["MUG-3", "PLATE-1", "CUP-1", "MUG-2", "MUG-1"]
    assert view.product(ACME, "MUG-1").created_at == T0 + timedelta(minutes=1)  # type: ignore[union-attr]
    assert view.product(ACME, "MUG-1").updated_at == later  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("query", "pages"),
    [
        ({"sort": "newest", "limit": 2}, [["MUG-3", "PLATE-1"], ["CUP-1", "MUG-2"], ["MUG-1"]]),
        ({"sort": "price_asc", "limit": 2}, [["CUP-1", "MUG-2"], ["MUG-1", "PLATE-1"], ["MUG-3"]]),
        ({"sort": "price_desc", "limit": 3}, [["MUG-3", "PLATE-1", "MUG-1"], ["MUG-2", "CUP-1"]]),
        ({"q": "mug", "sort": "relevance", "limit": 1}, [["MUG-1"], ["MUG-2"], ["MUG-3"]]),
        ({"sort": "newest", "limit": 5}, [["MUG-3", "PLATE-1", "CUP-1", "MUG-2", "MUG-1"]]),  # no empty last page
    ],
)
def test_pages_follow_each_other_through_the_cursor(view, query, pages):
    got, after = [], None
    while True:
        page = view.search(ACME, Query(statuses=ACTIVE, after=after, **query))
        got.append([item["sku"] for item in page.items])
        if page.next_cursor is None:
            break
        after = decode_cursor(page.next_cursor, query["sort"])
    assert got == pages


@pytest.mark.parametrize(
    ("cursor", "sort", "problem"),
    [
        ("not base64 at all!", "newest", "not one this API made"),
        (encode_cursor("price_asc", 999, "MUG-2"), "newest", "made for sort=price_asc"),
        ("eyJzb3J0IjoibmV3ZXN0In0", "newest", "not one this API made"),  # {"sort":"newest"}
        ("eyJzb3J0IjoibmV3ZXN0Iiwia2V5IjoiMSIsInNrdSI6IlgifQ", "newest", "not one this API made"),  # key "1"
        ("W10", "newest", "not one this API made"),  # []
    ],
)
def test_a_cursor_this_api_did_not_make_for_the_sort_is_refused(cursor, sort, problem):
    with pytest.raises(CursorError, match=problem):
        decode_cursor(cursor, sort)


def test_words_are_lower_cased_word_tokens():
    assert words("Blue-Stoneware  MUG, 350ml (ÉTÉ)") == ["blue", "stoneware", "mug", "350ml", "été"]


QUERIES = [
    {"sort": "newest"},
    {"sort": "price_asc"},
    {"sort": "price_desc"},
    {"sort": "price_asc", "min_price": 300, "max_price": 700},
    {"q": "red", "sort": "relevance"},
    {"q": "red mug", "sort": "newest"},
    {"q": "gre", "sort": "price_desc", "in_stock": True},
    {"q": "glazed stoneware", "sort": "relevance"},
    {"q": "mug sto", "sort": "relevance"},
]
VOCABULARY = ["red", "green", "mug", "cup", "plate", "jug", "glazed", "stoneware"]


def random_product(rng: random.Random, tenant: str, sku: str) -> Envelope:
    return upsert(tenant, sku, " ".join(rng.sample(VOCABULARY, 2)), " ".join(rng.sample(VOCABULARY, 3)),
                  rng.randrange(100, 1000, 50), status=rng.choice(["active", "active", "draft"]),
                  created=T0 + timedelta(seconds=rng.randrange(0, 3600)))


def expected_order(products: dict[str, ProductUpserted], stock: dict[str, int], query: dict) -> list[str]:
    """The customer's answer to `query` over `products`, by brute force: plain `split()` words, every
    word of q exact but the last, a prefix if it has 3 letters or more; the orders as the API documents them."""
    terms = query.get("q", "").split()

    def has(text: str, term: str, prefix: bool) -> bool:
        return any(w == term or (prefix and w.startswith(term)) for w in text.split())

    ranked = []
    for sku, p in products.items():
        prefix = [i == len(terms) - 1 and len(t) >= 3 for i, t in enumerate(terms)]
        where = [(has(p.name, t, prefix[i]), has(p.description, t, prefix[i])) for i, t in enumerate(terms)]
        if p.status != "active" or not all(n or d for n, d in where) \
                or not query.get("min_price", 0) <= p.price.amount <= query.get("max_price", 10**9) \
                or (query.get("in_stock") and stock[sku] == 0):
            continue
        score = sum(2 * n + d for n, d in where)
        created = p.created_at
        ranked.append((sku, score, p.price.amount, created))
    sort = query["sort"]
    if sort == "relevance":
        ranked.sort(key=lambda r: (-r[1], r[0]))
    elif sort == "price_asc":
        ranked.sort(key=lambda r: (r[2], r[0]))
    elif sort == "price_desc":
        ranked.sort(key=lambda r: (r[2], r[0]), reverse=True)
    else:
        ranked.sort(key=lambda r: (r[3], r[0]), reverse=True)
    return [r[0] for r in ranked]


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: "-".join(f"{k}={v}" for k, v in q.items()))
@pytest.mark.parametrize("seed", range(4))
def test_paging_neither_skips_nor_repeats_products_present_throughout_while_others_are_inserted(query, seed):
    # Given 200 products of acme (many ties on price and creation time) and some of another tenant
    rng = random.Random(seed)
    view = CatalogView()
    products: dict[str, ProductUpserted] = {}
    stock: dict[str, int] = {}
    for n in range(200):
        sku = f"P-{n:03d}"
        event = random_product(rng, ACME, sku)
        products[sku] = event.payload  # type: ignore[assignment]
        stock[sku] = rng.choice([0, 3])
        view.apply(event)
        view.apply(availability(ACME, sku, stock[sku]))
        view.apply(random_product(rng, GLOBEX, sku))
    expected = expected_order(products, stock, query)

    # When the catalog is paged 7 at a time, with 5 products inserted (anywhere in the order) before each page
    seen: list[str] = []
    keys: list[tuple[int, str]] = []
    after, inserted = None, 0
    while True:
        for _ in range(5):
            view.apply(random_product(rng, ACME, f"NEW-{inserted:04d}"))
            inserted += 1
        page = view.search(ACME, Query(statuses=ACTIVE, after=after, limit=7, **query))
        seen += [item["sku"] for item in page.items]
        if page.next_cursor is None:
            break
        after = decode_cursor(page.next_cursor, query["sort"])
        keys.append(after)

    # Then every product present throughout is seen exactly once, in the order, and nothing is seen twice
    assert len(expected) > 7
    assert len(seen) == len(set(seen))
    assert [sku for sku in seen if sku in products] == expected
    # and the cursors move one way through the order
    descending = query["sort"] in ("price_desc", "newest")
    assert keys == sorted(keys, reverse=descending)
