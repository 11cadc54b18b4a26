"""Shipping agent: the tracking index, resolving carrier updates to their order.

Input: `shipping.tracking` (RegisterTracking from the orders agent when a shipment is created;
CarrierUpdateReceived from the gateway's verified carrier webhook), keyed by tracking number.
State: table `tracking` (TrackingRegistration: the order, shipment and tenant of a tracking number).
Output: `shipments.commands` (TrackShipment, key order id, with the order's tenant), which the
orders agent applies to the shipment. An update for a tracking number nobody registered goes to
`shipping.tracking.dlq` with the reason (the gateway acknowledged it already).

The order's shipments themselves are decided by the orders agent (streams/tables/shipping.py):
one writer per order, so a shipment and a cancel never both win.
"""

from __future__ import annotations

from datetime import datetime

from streams import topics
from streams.models import Envelope, TrackingRegistration
from streams.runtime.agent import Agent, Table, Tables
from streams.tables import shipping
from streams.tables.decision import Decision

TABLE = Table("tracking", TrackingRegistration)


def agent() -> Agent:
    def decide(state: TrackingRegistration | None, event: Envelope, now: datetime,
               tables: Tables) -> Decision[TrackingRegistration | None]:
        return shipping.resolve(state, event, now)

    return Agent(name="shipping", sources=(topics.SHIPPING_TRACKING,), table=TABLE, decide=decide)
