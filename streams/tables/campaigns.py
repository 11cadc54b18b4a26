"""Group-buying campaigns, keyed by <tenant>/<campaign_id>: pledges, a tipping point, a deadline.

Opening a campaign asks the SKU's owner to hold `max_quantity` units (`HoldForCampaign`); it opens
when they are held and is rejected otherwise. Pledges are counted here, the only writer of the
campaign's counters, so no pledge can pass `max_quantity`: each customer has one pledge (pledging
again replaces it), withdrawable while the campaign is open; the latest verdict per customer is
kept for them to read back, and the few before it, so that a request delivered again (an
Idempotency-Key retry) is recognised by its id and changes nothing. At `ends_at` the deadline
timer asks to close (`CloseCampaign`): a tipped campaign succeeds and places one order per pledge
at the group price, drawing on the campaign's hold; an untipped one fails. Either way what was not
pledged goes back to stock (`ReleaseCampaignHold(keep=pledged)`, absolute, so it may reach the SKU
before or after the orders).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from streams.models import (
    CancelCampaign,
    Campaign,
    CampaignCancelled,
    CampaignFailed,
    CampaignOpened,
    CampaignRejected,
    CampaignStatus,
    CampaignStockHeld,
    CampaignStockRefused,
    CampaignSucceeded,
    CampaignTipped,
    CloseCampaign,
    Envelope,
    HoldForCampaign,
    OpenCampaign,
    OrderLine,
    Payload,
    PlaceOrder,
    PledgeAccepted,
    PledgeRejected,
    PledgeResult,
    PledgeToCampaign,
    PledgeWithdrawn,
    ReleaseCampaignHold,
    WithdrawPledge,
)
from streams.tables.decision import Decision, UnhandledEvent

ACCEPTING = (CampaignStatus.OPEN, CampaignStatus.TIPPED)
# Verdicts remembered per customer of a campaign (the latest and the ones before it): a pledge or
# withdrawal whose id is among them is a replay and changes nothing; an older one is decided anew.
REMEMBERED_PLEDGE_REQUESTS = 10
PLEDGE_ORDER_NAMESPACE = uuid.UUID("5b8f9e0c-3f0e-4d53-a1c1-7d2e4b6a9c11")


def pledge_order_id(tenant: str, campaign_id: str, customer: str) -> uuid.UUID:
    """The order a succeeded campaign places for a customer's pledge: the same on every replay."""
    return uuid.uuid5(PLEDGE_ORDER_NAMESPACE, f"{tenant}/{campaign_id}/{customer}")


def open_campaign(event: Envelope, command: OpenCampaign, now: datetime) -> Decision[Campaign]:
    campaign = Campaign(
        campaign_id=command.campaign_id, tenant=event.tenant, sku=command.sku, group_price=command.group_price,
        target_quantity=command.target_quantity, max_quantity=command.max_quantity, ends_at=command.ends_at,
        status=CampaignStatus.OPENING, opened_by=command.opened_by, request_hash=command.request_hash,
    )
    problem = None
    if command.target_quantity > command.max_quantity:
        problem = f"invalid_target: target_quantity {command.target_quantity} exceeds max_quantity {command.max_quantity}"
    elif command.ends_at <= now:
        problem = f"ends_in_the_past: ends_at {command.ends_at.isoformat()} has passed"
    if problem is not None:
        return _reject(campaign, problem)
    hold = HoldForCampaign(campaign_id=command.campaign_id, sku=command.sku, quantity=command.max_quantity)
    return Decision(campaign, [hold])


def _reject(campaign: Campaign, reason: str) -> Decision[Campaign]:
    rejected = campaign.model_copy(update={"status": CampaignStatus.REJECTED, "reason": reason})
    return Decision(rejected, [CampaignRejected(campaign_id=campaign.campaign_id, sku=campaign.sku, reason=reason)])


def stock_held(campaign: Campaign, event: CampaignStockHeld) -> Decision[Campaign]:
    if campaign.status != CampaignStatus.OPENING:
        return Decision(campaign)
    opened = CampaignOpened(
        campaign_id=campaign.campaign_id, sku=campaign.sku, group_price=campaign.group_price,
        target_quantity=campaign.target_quantity, max_quantity=campaign.max_quantity, ends_at=campaign.ends_at,
    )
    return Decision(campaign.model_copy(update={"status": CampaignStatus.OPEN}), [opened])


def stock_refused(campaign: Campaign, event: CampaignStockRefused) -> Decision[Campaign]:
    if campaign.status != CampaignStatus.OPENING:
        return Decision(campaign)
    return _reject(campaign, event.reason)


def decided(campaign: Campaign, customer: str, pledge_id: uuid.UUID) -> PledgeResult | None:
    """The verdict on this request of the customer's, if it is one of those remembered."""
    latest = campaign.results.get(customer)
    if latest is not None and latest.pledge_id == pledge_id:
        return latest
    return next((r for r in campaign.earlier_results.get(customer, ()) if r.pledge_id == pledge_id), None)


def _verdict(campaign: Campaign, customer: str, result: PledgeResult) -> Campaign:
    """The customer's latest verdict is `result`; the one it replaces joins the earlier ones (bounded)."""
    update: dict[str, object] = {"results": {**campaign.results, customer: result}}
    previous = campaign.results.get(customer)
    if previous is not None:
        earlier = (*campaign.earlier_results.get(customer, ()), previous)[-(REMEMBERED_PLEDGE_REQUESTS - 1):]
        update["earlier_results"] = {**campaign.earlier_results, customer: earlier}
    return campaign.model_copy(update=update)


def _refusal(campaign: Campaign, command: PledgeToCampaign | WithdrawPledge, quantity: int, reason: str,
             ) -> Decision[Campaign]:
    result = PledgeResult(pledge_id=command.pledge_id, accepted=False, quantity=quantity, reason=reason,
                          request_hash=command.request_hash)
    rejected = PledgeRejected(campaign_id=campaign.campaign_id, sku=campaign.sku, customer=command.customer,
                              quantity=quantity, reason=reason)
    return Decision(_verdict(campaign, command.customer, result), [rejected])


def _closed_reason(campaign: Campaign, now: datetime) -> str | None:
    if campaign.status not in ACCEPTING:
        return f"campaign_closed: the campaign is {campaign.status}"
    if now >= campaign.ends_at:
        return f"campaign_ended: the campaign ended at {campaign.ends_at.isoformat()}"
    return None


def _retipped(campaign: Campaign, events: list[Payload]) -> Decision[Campaign]:
    """Tipped while the pledges reach the target, open again if a withdrawal drops below it."""
    reached = campaign.pledged_quantity >= campaign.target_quantity
    if reached and campaign.status == CampaignStatus.OPEN:
        tipped = CampaignTipped(campaign_id=campaign.campaign_id, sku=campaign.sku,
                                pledged_quantity=campaign.pledged_quantity)
        return Decision(campaign.model_copy(update={"status": CampaignStatus.TIPPED}), [*events, tipped])
    if not reached and campaign.status == CampaignStatus.TIPPED:
        return Decision(campaign.model_copy(update={"status": CampaignStatus.OPEN}), events)
    return Decision(campaign, events)


def pledge(campaign: Campaign, command: PledgeToCampaign, now: datetime) -> Decision[Campaign]:
    if decided(campaign, command.customer, command.pledge_id) is not None:
        return Decision(campaign)  # a replay of a pledge already decided (an Idempotency-Key retry, say)
    closed = _closed_reason(campaign, now)
    if closed is not None:
        return _refusal(campaign, command, command.quantity, closed)
    if command.quantity < 1:
        return _refusal(campaign, command, command.quantity, "invalid_quantity: pledge at least 1 unit")
    before = campaign.pledges.get(command.customer, 0)
    pledged = campaign.pledged_quantity - before + command.quantity
    if pledged > campaign.max_quantity:
        left = campaign.max_quantity - campaign.pledged_quantity + before
        return _refusal(campaign, command, command.quantity,
                        f"max_quantity_reached: {left} of {campaign.max_quantity} units are left for you")
    result = PledgeResult(pledge_id=command.pledge_id, accepted=True, quantity=command.quantity,
                          request_hash=command.request_hash)
    updated = _verdict(campaign, command.customer, result).model_copy(
        update={"pledges": {**campaign.pledges, command.customer: command.quantity}}
    )
    accepted = PledgeAccepted(
        campaign_id=campaign.campaign_id, sku=campaign.sku, customer=command.customer, quantity=command.quantity,
        delta=command.quantity - before, replaced=before > 0,
    )
    return _retipped(updated, [accepted])


def withdraw(campaign: Campaign, command: WithdrawPledge, now: datetime) -> Decision[Campaign]:
    if decided(campaign, command.customer, command.pledge_id) is not None:
        return Decision(campaign)
    closed = _closed_reason(campaign, now)
    if closed is not None:
        return _refusal(campaign, command, 0, closed)
    if command.customer not in campaign.pledges:
        return _refusal(campaign, command, 0, "no_pledge: you have no pledge to withdraw")
    pledges = dict(campaign.pledges)
    units = pledges.pop(command.customer)
    result = PledgeResult(pledge_id=command.pledge_id, accepted=True, quantity=0, request_hash=command.request_hash)
    updated = _verdict(campaign, command.customer, result).model_copy(update={"pledges": pledges})
    withdrawn = PledgeWithdrawn(campaign_id=campaign.campaign_id, sku=campaign.sku, customer=command.customer,
                                delta=-units)
    return _retipped(updated, [withdrawn])


def close(campaign: Campaign, now: datetime) -> Decision[Campaign]:
    if campaign.status not in ACCEPTING or now < campaign.ends_at:
        return Decision(campaign)
    pledged = campaign.pledged_quantity
    if campaign.status == CampaignStatus.OPEN:
        reason = f"target_not_reached: {pledged} of {campaign.target_quantity} units pledged"
        failed = campaign.model_copy(update={"status": CampaignStatus.FAILED, "reason": reason})
        return Decision(failed, [
            CampaignFailed(campaign_id=campaign.campaign_id, sku=campaign.sku, pledged_quantity=pledged, reason=reason),
            ReleaseCampaignHold(campaign_id=campaign.campaign_id, sku=campaign.sku, keep=0),
        ])
    orders = {
        customer: pledge_order_id(campaign.tenant, campaign.campaign_id, customer) for customer in campaign.pledges
    }
    placed: list[Payload] = [
        PlaceOrder(
            order_id=orders[customer], customer=customer, lines=(OrderLine(sku=campaign.sku, quantity=units),),
            request_hash=f"campaign:{campaign.campaign_id}", campaign=campaign.campaign_id,
            unit_price=campaign.group_price,
        )
        for customer, units in campaign.pledges.items()
    ]
    succeeded = campaign.model_copy(update={"status": CampaignStatus.SUCCEEDED, "orders": orders})
    return Decision(succeeded, [
        CampaignSucceeded(campaign_id=campaign.campaign_id, sku=campaign.sku, pledged_quantity=pledged,
                          participants=len(campaign.pledges), orders=len(placed)),
        ReleaseCampaignHold(campaign_id=campaign.campaign_id, sku=campaign.sku, keep=pledged),
        *placed,
    ])


def cancel(campaign: Campaign, command: CancelCampaign) -> Decision[Campaign]:
    """A vendor calls it off while it takes pledges: nobody pays and every held unit goes back."""
    if campaign.status not in ACCEPTING:
        return Decision(campaign)
    reason = f"cancelled by {command.requested_by}"
    cancelled = campaign.model_copy(update={"status": CampaignStatus.CANCELLED, "reason": reason})
    return Decision(cancelled, [
        CampaignCancelled(campaign_id=campaign.campaign_id, sku=campaign.sku,
                          pledged_quantity=campaign.pledged_quantity, reason=reason),
        ReleaseCampaignHold(campaign_id=campaign.campaign_id, sku=campaign.sku, keep=0),
    ])


def decide(state: Campaign | None, event: Envelope, now: datetime) -> Decision[Campaign | None]:
    """Time is the event's own (`occurred_at`: when the customer asked, when the deadline timer
    fired), never the time of processing: an event reprocessed after a crash, perhaps past the
    deadline, must be decided as it was the first time."""
    now = event.occurred_at
    payload = event.payload
    if isinstance(payload, OpenCampaign):
        return Decision(state) if state is not None else open_campaign(event, payload, now)  # type: ignore[return-value]
    if not isinstance(payload, (CampaignStockHeld, CampaignStockRefused, PledgeToCampaign, WithdrawPledge,
                                CancelCampaign, CloseCampaign)):
        raise UnhandledEvent(f"campaigns do not handle {event.type}")
    if state is None:
        if isinstance(payload, PledgeToCampaign | WithdrawPledge):
            raise UnhandledEvent(f"campaign {payload.campaign_id} does not exist")
        return Decision(None)
    if isinstance(payload, CampaignStockHeld):
        return stock_held(state, payload)  # type: ignore[return-value]
    if isinstance(payload, CampaignStockRefused):
        return stock_refused(state, payload)  # type: ignore[return-value]
    if isinstance(payload, PledgeToCampaign):
        return pledge(state, payload, now)  # type: ignore[return-value]
    if isinstance(payload, WithdrawPledge):
        return withdraw(state, payload, now)  # type: ignore[return-value]
    if isinstance(payload, CancelCampaign):
        return cancel(state, payload)  # type: ignore[return-value]
    return close(state, now)  # type: ignore[return-value]
