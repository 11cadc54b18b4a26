"""Inventory agent: the single writer of each SKU's stock.

Input: `inventory.commands`, key `<tenant>/<sku>` (AdjustStock, ReserveStock, ReleaseStock,
CommitStock, HoldForCampaign, ReleaseCampaignHold).
State: table `inventory` (StockLevel), same key; reads table `catalog` (co-partitioned) for prices.
Outputs: `inventory.stock-changes` (key `<tenant>/<sku>`), `inventory.reservations` (key order id),
`inventory.campaign-holds` (key `<tenant>/<campaign_id>`), `inventory.availability` (key
`<tenant>/<sku>`, compacted: AvailabilityChanged when the SKU goes in or out of stock).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from streams import topics
from streams.agents.catalog import TABLE as CATALOG
from streams.models import Envelope, StockLevel
from streams.runtime.agent import Agent, Table, Tables
from streams.tables import inventory
from streams.tables.decision import Decision

TABLE = Table("inventory", StockLevel)


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


def decide(state: StockLevel | None, event: Envelope, now: datetime, tables: Tables) -> Decision[StockLevel]:
    product = tables.get(CATALOG, topics.INVENTORY_COMMANDS.key_of(event))
    return inventory.decide_and_announce(state, event, now, product=product)


def agent() -> Agent:
    return Agent(name="inventory", sources=(topics.INVENTORY_COMMANDS,), table=TABLE, reads=(CATALOG,),
                 decide=decide, render=render)
