"""Browse and search the catalog through the gateway on a real stack: the gateway's catalog view follows
`catalog.products` and `inventory.availability`; a price change is an event on `catalog.price-changes`.

Given the seeded catalog and a few products upserted through the API, when they are listed and searched,
then each role sees what it may, in the documented order, with availability that follows a stock
adjustment; another tenant sees none of it.
"""

from __future__ import annotations

from typing import Any

import pytest

from streams.models import Envelope
from tests.conftest import Api, read_topic, token
from tests.harness import Stack, eventually_async

SETTLE_SECONDS = 30.0
VENDOR, CUSTOMER, OTHER = token("vendor", sub="vera"), token("customer"), token("customer", tenant="globex")
PRODUCTS = [
    {"sku": "SRCH-1", "name": "Zircon blue bowl", "price": {"amount": 1500, "currency": "EUR"},
     "images": ["https://img.example.com/srch-1.jpg"], "attributes": {"colour": "blue"}},
    {"sku": "SRCH-2", "name": "Zircon red bowl", "description": "A bowl for zircon collectors",
     "price": {"amount": 900, "currency": "EUR"}},
    {"sku": "SRCH-3", "name": "Zircon lamp", "price": {"amount": 3000, "currency": "EUR"}, "status": "draft"},
]


@pytest.fixture
def api(seeded_api: Api) -> Api:
    return seeded_api


async def listed(api: Api, query: str, who: str = CUSTOMER) -> dict[str, Any]:
    reply = await api.get(f"/v1/products?{query}", who)
    assert reply.status == 200, reply.body
    return dict(reply.body)


async def skus_when(api: Api, query: str, expected: list[str], who: str = CUSTOMER) -> list[dict[str, Any]]:
    """The listing's products once its SKUs are `expected` (the view follows the topics)."""
    found: dict[str, Any] = {}

    async def check() -> bool:
        found.update(await listed(api, query, who))
        return [p["sku"] for p in found["products"]] == expected

    await eventually_async(check, SETTLE_SECONDS, f"{query} listing {expected}, last {found}")
    return list(found["products"])


async def test_products_upserted_through_the_api_are_listed_searched_and_paged(api: Api) -> None:
    # Given three zircon products, one a draft
    for product in PRODUCTS:
        assert (await api.post("/v1/products", VENDOR, product)).status == 202

    # Then a customer finds the active ones, the word in name and description first
    products = await skus_when(api, "q=zircon", ["SRCH-2", "SRCH-1"])
    assert products[1] == {
        "sku": "SRCH-1", "name": "Zircon blue bowl", "description": "", "price": {"amount": 1500, "currency": "EUR"},
        "images": ["https://img.example.com/srch-1.jpg"], "attributes": {"colour": "blue"}, "status": "active",
        "created_at": products[1]["created_at"], "updated_at": products[1]["updated_at"],
        "in_stock": False}
    # the vendor sees the draft too, and may ask for drafts only
    await skus_when(api, "q=zircon", ["SRCH-2", "SRCH-1", "SRCH-3"], VENDOR)
    await skus_when(api, "q=zirc&status=draft", ["SRCH-3"], VENDOR)
    # by price, within a range, and a prefix of the last word
    await skus_when(api, "q=bowl%20zir&sort=price_desc&max_price=1500", ["SRCH-1", "SRCH-2"])
    # a customer cannot read the draft by its SKU; the vendor can
    assert (await api.get("/v1/products/SRCH-3", CUSTOMER)).status == 404
    vendor_view = await api.get("/v1/products/SRCH-3", VENDOR)
    assert (vendor_view.status, vendor_view.body["status"]) == (200, "draft")
    # another tenant sees none of it
    assert await listed(api, "q=zircon", OTHER) == {"products": [], "next_cursor": None}

    # When the vendor pages through them one at a time
    pages, cursor = [], ""
    while True:
        page = await listed(api, f"q=zircon&sort=price_asc&limit=1{cursor}", VENDOR)
        pages.append([p["sku"] for p in page["products"]])
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    # Then each comes once, cheapest first
    assert pages == [["SRCH-2"], ["SRCH-1"], ["SRCH-3"]]
    bad = await api.get("/v1/products?cursor=not-a-cursor", CUSTOMER)
    assert (bad.status, bad.body["error"]["code"]) == (400, "invalid_cursor")


async def test_in_stock_follows_a_stock_adjustment_and_the_seeded_stock_is_listed(api: Api) -> None:
    # Given the seeded mug (50 on hand) and a zircon bowl without stock
    assert (await api.post("/v1/products", VENDOR, PRODUCTS[0])).status == 202
    mug = (await skus_when(api, "q=stoneware%20mug&in_stock=true", ["MUG-1"]))[0]
    assert mug["in_stock"] is True
    bowl = (await skus_when(api, "q=zircon%20blue", ["SRCH-1"]))[0]
    assert bowl["in_stock"] is False
    await skus_when(api, "q=zircon%20blue&in_stock=true", [])

    # When the vendor stocks it
    reply = await api.post("/v1/inventory/SRCH-1/adjustments", VENDOR, {"delta": 4, "reason": "restock"})
    assert reply.status == 202, reply.body

    # Then the listing shows it in stock (0 -> 4 units: it went in stock, which is announced)
    product = (await skus_when(api, "q=zircon%20blue&in_stock=true", ["SRCH-1"]))[0]
    assert product["in_stock"] is True


async def test_a_price_change_is_an_event_and_keeps_the_products_place_among_the_newest(
        api: Api, stack: Stack) -> None:
    # Given a product listed at 20.00 EUR
    product = {"sku": "SRCH-9", "name": "Zircon vase", "price": {"amount": 2000, "currency": "EUR"}}
    assert (await api.post("/v1/products", VENDOR, product)).status == 202
    before = (await skus_when(api, "q=vase", ["SRCH-9"]))[0]

    # When the vendor changes its price to 25.00 EUR
    assert (await api.post("/v1/products", VENDOR, {**product, "price": {"amount": 2500, "currency": "EUR"}})).status == 202

    # Then the listing shows the new price with the same creation time
    async def repriced() -> bool:
        return (await listed(api, "q=vase"))["products"][0]["price"]["amount"] == 2500

    await eventually_async(repriced, SETTLE_SECONDS, "the new price listed")
    after = (await listed(api, "q=vase"))["products"][0]
    assert after["created_at"] == before["created_at"] and after["updated_at"] != before["updated_at"]
    # and the catalog agent announced the change with both prices
    changes = [Envelope.from_bytes(m.value()) for m in read_topic(stack.bootstrap, stack.topic("catalog.price-changes"))]
    assert [(e.tenant, e.payload.model_dump(mode="json")) for e in changes if e.payload.sku == "SRCH-9"] == [  # type: ignore[attr-defined]
        ("acme", {"sku": "SRCH-9", "old_price": {"amount": 2000, "currency": "EUR"},
                  "new_price": {"amount": 2500, "currency": "EUR"}})]
