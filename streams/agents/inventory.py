"""Inventory agent: the single writer of each SKU's stock.

Input: `inventory.commands`, key `<tenant>/<sku>` (AdjustStock, ReserveStock, ReleaseStock).
State: table `inventory` (StockLevel), same key; reads table `catalog` (co-partitioned) for prices.
Outputs: `inventory.stock-changes` (key `<tenant>/<sku>`), `inventory.reservations` (key order id).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from streams import topics
from streams.models import Envelope, Product, StockLevel
from streams.processing import Processor, StateTable
from streams.tables import inventory
from streams.tables.decision import Decision
from streams.worker import Worker


def render(level: StockLevel) -> dict[str, Any]:
    return {
        "sku": level.sku,
        "on_hand": level.on_hand,
        "reserved": level.reserved,
        "available": level.available,
        "holds": level.holds,
        "campaigns": list(level.campaigns),
        "recent_adjustments": {key: o.model_dump() for key, o in level.recent_adjustments.items()},
    }


def register(worker: Worker, products: StateTable[Product]) -> StateTable[StockLevel]:
    stock = StateTable(worker.table("inventory"), StockLevel)

    def decide(state: StockLevel | None, event: Envelope, now: datetime) -> Decision[StockLevel]:
        product = products.get(topics.INVENTORY_COMMANDS.key_of(event))
        return inventory.decide(state, event, now, product=product)

    processor = Processor(worker.binder, (topics.INVENTORY_COMMANDS,), stock, decide, worker.watchers)

    @worker.app.agent(worker.binder.source(topics.INVENTORY_COMMANDS), name="inventory")
    async def inventory_agent(stream):  # type: ignore[no-untyped-def]
        async for event in stream.events():
            await processor.handle(event)

    worker.serve_state(stock, render=render)
    return stock
