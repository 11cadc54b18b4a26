"""Recommendations: co-purchase counts from confirmed orders, two agents of the default worker.

- **co_purchases**: reads `orders.events` (key order id). No state of its own: each confirmed order
  (OrderStatusChanged carrying its lines) becomes one CountCoPurchase per SKU of the order bought with
  another, and one for the tenant's popularity entry, on `recommendations.commands` (key
  `<tenant>/<sku>`, and `<tenant>/*` for the popularity). This re-keys the orders by the state they
  feed, so that one agent writes each SKU's counts.
- **recommendations**: reads `recommendations.commands` into table `recommendations` (CoPurchases,
  keyed `<tenant>/<sku>` and `<tenant>/*`): the decayed co-purchase scores, top 50. No output
  topic; the gateway reads the table (`GET /v1/products/{sku}/recommendations`).

Exactly once as every table: the commands commit with the order event's offset, the counts with
the command's offset, in the workers' transactions. The counting decision is also idempotent on the
order id (streams/tables/recommendations.py), so a command written twice counts once.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from streams import topics
from streams.models import CoPurchases, Envelope
from streams.runtime.agent import Agent, Table, Tables
from streams.settings import Settings
from streams.tables import recommendations
from streams.tables.decision import Decision

TABLE = Table("recommendations", CoPurchases)


def co_purchases() -> Agent:
    def decide(state: None, event: Envelope, now: datetime, tables: Tables) -> Decision[None]:
        return Decision(None, list(recommendations.split(event)))

    return Agent(name="co_purchases", sources=(topics.ORDERS_EVENTS,), table=None, decide=decide)


def agent(settings: Settings) -> Agent:
    half_life = timedelta(days=settings.recommendation_half_life_days)

    def decide(state: CoPurchases | None, event: Envelope, now: datetime, tables: Tables
               ) -> Decision[CoPurchases | None]:
        return recommendations.decide(state, event, now, half_life=half_life)

    return Agent(name="recommendations", sources=(topics.RECOMMENDATIONS_COMMANDS,), table=TABLE, decide=decide)
