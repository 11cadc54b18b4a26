"""Campaigns agent: the only writer of a group-buying campaign's counters.

Inputs: `campaigns.commands` (OpenCampaign, PledgeToCampaign, WithdrawPledge, from the gateway;
CloseCampaign, from the deadline timer) and `inventory.campaign-holds` (CampaignStockHeld,
CampaignStockRefused, from the inventory agent), both keyed by `<tenant>/<campaign_id>` and
co-partitioned.
State: table `campaigns` (Campaign) and table `campaign-deadlines` (campaign -> ends_at while it
takes pledges), same key and partitions.
Outputs: `campaigns.events` (the funnel: opened, pledged, withdrawn, tipped, succeeded, failed),
`inventory.commands` (HoldForCampaign, ReleaseCampaignHold; key `<tenant>/<sku>`) and
`orders.commands` (PlaceOrder per pledge of a succeeded campaign; key order id).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from streams import topics
from streams.models import Campaign, CloseCampaign, Envelope
from streams.processing import Processor, StateTable
from streams.tables import campaigns
from streams.worker import Worker

SOURCES = (topics.CAMPAIGNS_COMMANDS, topics.INVENTORY_CAMPAIGN_HOLDS)


def register(worker: Worker) -> StateTable[Campaign]:
    table = StateTable(worker.table("campaigns"), Campaign)

    def closes_at(campaign: Campaign) -> datetime | None:
        return campaign.ends_at if campaign.status in campaigns.ACCEPTING else None

    def close(key: bytes, campaign: Campaign) -> Envelope:
        return Envelope.new(campaign.tenant, CloseCampaign(campaign_id=campaign.campaign_id))

    track_deadline = worker.deadlines("campaign-deadlines", table, closes_at, close)
    processor = Processor(worker.binder, SOURCES, table, campaigns.decide, worker.watchers, on_stored=track_deadline)

    @worker.app.agent(worker.binder.source(*SOURCES), name="campaigns")
    async def campaigns_agent(stream):  # type: ignore[no-untyped-def]
        async for event in stream.events():
            await processor.handle(event)

    worker.serve_state(table, render=render)
    return table


def render(campaign: Campaign) -> dict[str, Any]:
    return {**campaign.model_dump(mode="json"), "pledged_quantity": campaign.pledged_quantity,
            "participants": len(campaign.pledges)}
