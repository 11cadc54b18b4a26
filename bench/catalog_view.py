"""The gateway's catalog view in-process: memory per product and search latency on a large catalog.

    .venv/bin/python -m bench.catalog_view                 # 100k products of one tenant (about 1 min)
    .venv/bin/python -m bench.catalog_view --products 20000 --queries 200

No Kafka, no HTTP: the records are applied to a `CatalogView` as its feed would apply them, then
each kind of listing is asked `--queries` times from random cursors' worth of first pages. Memory is
what `tracemalloc` sees allocated by the view (Python objects, the index and the sorted lists)
divided by the number of products. Descriptions are 20-60 words from a 2,000-word vocabulary.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
import tracemalloc
from datetime import UTC, datetime, timedelta

from gateway.catalog_view import CatalogView, Query
from streams.models import AvailabilityChanged, Envelope, Money, ProductUpserted

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ACTIVE = frozenset({"active"})


def records(n: int, seed: int = 7) -> list[Envelope]:
    rng = random.Random(seed)
    vocabulary = [f"w{i}" for i in range(2000)] + ["mug", "cup", "blue", "stoneware", "plate", "glazed"]
    found = []
    for i in range(n):
        name = " ".join(rng.choices(vocabulary, k=rng.randint(2, 5)))
        description = " ".join(rng.choices(vocabulary, k=rng.randint(20, 60)))
        at = T0 + timedelta(seconds=i)
        found.append(Envelope.new("acme", ProductUpserted(
            sku=f"SKU-{i:06d}", name=name, description=description,
            price=Money(amount=rng.randrange(100, 100_000), currency="EUR"),
            status=rng.choice(["active"] * 8 + ["draft", "archived"]), created_at=at,
            images=(f"https://img.example.com/{i}.jpg",), attributes={"colour": rng.choice(["red", "blue"])}),
            occurred_at=at))
        # The view keeps in_stock only: half the SKUs out of stock, as the filter's selectivity.
        available = rng.choice([0, 0, 3, 12])
        found.append(Envelope.new("acme", AvailabilityChanged(sku=f"SKU-{i:06d}", available=available,
                                                              in_stock=available > 0)))
    return found


QUERIES = {
    "newest, no words": Query(sort="newest", statuses=ACTIVE),
    "price_asc, no words": Query(sort="price_asc", statuses=ACTIVE),
    "price_desc in range, in stock": Query(sort="price_desc", min_price=20_000, max_price=30_000, in_stock=True,
                                           statuses=ACTIVE),
    "q=mug (common word), relevance": Query(q="mug", sort="relevance", statuses=ACTIVE),
    "q=blue mug, price_asc": Query(q="blue mug", sort="price_asc", statuses=ACTIVE),
    "q=w1 (2 letters: whole word), relevance": Query(q="w1", sort="relevance", statuses=ACTIVE),
    "q=w19 (prefix: w19, w190..w199)": Query(q="w19", sort="relevance", statuses=ACTIVE),
    "q=w12 w7, newest": Query(q="w12 w7", sort="newest", statuses=ACTIVE),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args()
    # Traced from before the records exist: the view keeps their strings, the rest is freed with them.
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    feed = records(args.products)
    view = CatalogView()
    started = time.perf_counter()
    for event in feed:
        view.apply(event)
    applied = time.perf_counter() - started
    del feed
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    gc.freeze()  # as the gateway's feed does once caught up (gateway/catalog_feed.py)
    print(f"{args.products} products: {(after - before) / args.products:,.0f} bytes per product in the view "
          f"(tracemalloc), applied at {args.products / applied:,.0f} products/s (with their availability)")
    for name, query in QUERIES.items():
        times = []
        for _ in range(args.queries):
            t = time.perf_counter()
            page = view.search("acme", query)
            times.append(time.perf_counter() - t)
        times.sort()
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
        print(f"{name:45s} median {statistics.median(times) * 1000:7.2f} ms  p99 {p99 * 1000:7.2f} ms  "
              f"({len(page.items)} items, next page: {page.next_cursor is not None})")


if __name__ == "__main__":
    main()
