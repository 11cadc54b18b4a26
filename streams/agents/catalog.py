"""Catalog agent.

Input: `catalog.products`, key `<tenant>/<sku>` (ProductUpserted).
State: table `catalog`, same key and partitions (co-partitioned with `inventory.commands`, so the
inventory agent reads a SKU's price from the worker that holds its stock).
Outputs: `catalog.price-changes`, key `<tenant>/<sku>` (ProductPriceChanged, when an upsert changes the price).
"""

from __future__ import annotations

from streams import topics
from streams.models import Product
from streams.runtime.agent import Agent, Table
from streams.tables import catalog

TABLE = Table("catalog", Product)


def agent() -> Agent:
    return Agent(name="catalog", sources=(topics.CATALOG_PRODUCTS,), table=TABLE,
                 decide=lambda state, event, now, tables: catalog.decide(state, event, now))
