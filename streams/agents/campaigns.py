"""Campaigns agent: the only writer of a group-buying campaign's counters.

Inputs: `campaigns.commands` (OpenCampaign, PledgeToCampaign, WithdrawPledge, CancelCampaign, from
the gateway; CloseCampaign, from the deadline timer) and `inventory.campaign-holds`
(CampaignStockHeld, CampaignStockRefused, from the inventory agent), both keyed by
`<tenant>/<campaign_id>` and co-partitioned.
State: table `campaigns` (Campaign), same key and partitions, with the due time of each campaign
that takes pledges.
Outputs: `campaigns.events` (the funnel: opened, pledged, withdrawn, tipped, succeeded, failed),
`inventory.commands` (HoldForCampaign, ReleaseCampaignHold; key `<tenant>/<sku>`) and
`orders.commands` (PlaceOrder per pledge of a succeeded campaign; key order id).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from streams import topics
from streams.models import Campaign, CloseCampaign, Envelope
from streams.runtime.agent import Agent, Deadline, Table
from streams.tables import campaigns

SOURCES = (topics.CAMPAIGNS_COMMANDS, topics.INVENTORY_CAMPAIGN_HOLDS)
TABLE = Table("campaigns", Campaign)


def closes_at(campaign: Campaign) -> datetime | None:
    return campaign.ends_at if campaign.status in campaigns.ACCEPTING else None


def close(key: bytes, campaign: Campaign) -> Envelope:
    return Envelope.new(campaign.tenant, CloseCampaign(campaign_id=campaign.campaign_id))


def render(campaign: Campaign) -> dict[str, Any]:
    return {**campaign.model_dump(mode="json"), "pledged_quantity": campaign.pledged_quantity,
            "participants": len(campaign.pledges)}


def agent() -> Agent:
    return Agent(name="campaigns", sources=SOURCES, table=TABLE,
                 decide=lambda state, event, now, tables: campaigns.decide(state, event, now),
                 deadline=Deadline(due_at=closes_at, ask=close), render=render)
