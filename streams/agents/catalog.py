"""Catalog agent.

Input: `catalog.products`, key `<tenant>/<sku>` (ProductUpserted).
State: table `catalog`, same key and partitions (co-partitioned with `inventory.commands`, so the
inventory agent reads a SKU's price from the worker that holds its stock).
Outputs: none.
"""

from __future__ import annotations

from streams import topics
from streams.models import Product
from streams.processing import Processor, StateTable
from streams.tables import catalog
from streams.worker import Worker


def register(worker: Worker) -> StateTable[Product]:
    products = StateTable(worker.table("catalog"), Product)
    processor = Processor(worker.binder, (topics.CATALOG_PRODUCTS,), products, catalog.decide, worker.watchers)

    @worker.app.agent(worker.binder.source(topics.CATALOG_PRODUCTS), name="catalog")
    async def catalog_agent(stream):  # type: ignore[no-untyped-def]
        async for event in stream.events():
            await processor.handle(event)

    worker.serve_state(products)
    return products
