"""Group-buying campaigns: open, pledge, withdraw, read, list.

`POST /v1/campaigns` (vendor, admin) opens one; it holds max_quantity units of the SKU, or is
rejected with a reason. `POST /v1/campaigns/{id}/pledges` (customer) pledges or replaces the
customer's pledge, `DELETE` withdraws it; both answer with the campaign agent's verdict (or
"pending" if it takes longer than a few seconds; `GET .../pledges/mine` reads it back).
`GET /v1/campaigns/{id}` long-polls like orders (`?wait=S&known=<status>`);
`GET /v1/campaigns?sku=` lists the tenant's campaigns of a SKU, newest last. `DELETE
/v1/campaigns/{id}` (vendor, admin) cancels a campaign that takes pledges: nobody pays, the units go back.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from gateway.auth import Principal, principal
from gateway.errors import ApiError, not_found
from gateway.requests import CampaignRequest, PledgeRequest
from gateway.services import Services, services
from gateway.views.common import await_verdict, long_poll, parse_body
from streams.models import CampaignStatus, CancelCampaign, Envelope, OpenCampaign, PledgeToCampaign, WithdrawPledge
from streams.topics import campaign_key, sku_key

VIEW_FIELDS = ("campaign_id", "sku", "status", "pledged_quantity", "participants", "target_quantity",
               "max_quantity", "group_price", "ends_at", "reason")

# How long opening a campaign looks for one of the same id before writing regardless.
EXISTING_READ_SECONDS = 1.0


def _view(campaign: dict[str, Any]) -> dict[str, Any]:
    return {name: campaign[name] for name in VIEW_FIELDS}


def _key(who: Principal, campaign_id: str) -> str:
    return campaign_key(who.tenant, campaign_id).decode()


async def _campaign(found: Services, who: Principal, campaign_id: str, wait: float = 0.0,
                    known: str | None = None) -> dict[str, Any]:
    campaign = await found.reads.state("campaigns", _key(who, campaign_id), wait=wait, known=known)
    if campaign is None:
        raise not_found(f"campaign {campaign_id}")
    return campaign


async def open_campaign(request: web.Request) -> web.Response:
    who = principal(request)
    who.require("vendor", "admin")
    body = await parse_body(request, CampaignRequest)
    campaign_id = body.campaign_id or f"c-{uuid.uuid4().hex[:12]}"
    found = services(request)
    key = _key(who, campaign_id)
    # A write never waits for a worker: with no answer in time the command is written anyway, and
    # the campaigns agent ignores an OpenCampaign for a campaign it already has.
    existing = await found.reads.state_within("campaigns", key, EXISTING_READ_SECONDS)
    if isinstance(existing, dict):
        raise ApiError(409, "campaign_exists", f"campaign {campaign_id} exists; choose another campaign_id")
    command = OpenCampaign(
        campaign_id=campaign_id, sku=body.sku, group_price=body.group_price, target_quantity=body.target_quantity,
        max_quantity=body.max_quantity, ends_at=body.ends_at, opened_by=who.sub,
    )
    await found.writer.write(Envelope.new(who.tenant, command))
    decided = await await_verdict(found.reads, "campaigns", key,
                                  lambda c: c if c["status"] != CampaignStatus.OPENING else None)
    view = _view(decided[0]) if decided else {"campaign_id": campaign_id, "status": CampaignStatus.OPENING}
    return web.json_response(view, status=202, headers={"Location": f"/v1/campaigns/{campaign_id}"})


async def cancel_campaign(request: web.Request) -> web.Response:
    who = principal(request)
    who.require("vendor", "admin")
    found = services(request)
    campaign = await _campaign(found, who, request.match_info["campaign_id"])
    if campaign["status"] not in (CampaignStatus.OPEN, CampaignStatus.TIPPED):
        raise ApiError(409, "not_cancellable", f"the campaign is {campaign['status']}; only an open or tipped "
                                               "campaign can be cancelled")
    await found.writer.write(Envelope.new(who.tenant, CancelCampaign(campaign_id=campaign["campaign_id"],
                                                                     requested_by=who.sub)))
    decided = await await_verdict(found.reads, "campaigns", _key(who, campaign["campaign_id"]),
                                  lambda c: c if c["status"] not in (CampaignStatus.OPEN, CampaignStatus.TIPPED) else None)
    return web.json_response(_view(decided[0]) if decided else {"campaign_id": campaign["campaign_id"],
                                                                  "status": "cancelling"}, status=202)


async def get_campaign(request: web.Request) -> web.Response:
    who = principal(request)
    wait, known = long_poll(request)
    campaign = await _campaign(services(request), who, request.match_info["campaign_id"], wait, known)
    return web.json_response(_view(campaign))


async def list_campaigns(request: web.Request) -> web.Response:
    who = principal(request)
    sku = request.query.get("sku")
    if not sku:
        raise ApiError(422, "invalid_query", "give the SKU: /v1/campaigns?sku=<sku>")
    found = services(request)
    stock = await found.reads.state("inventory", sku_key(who.tenant, sku).decode())
    campaigns = [await _campaign(found, who, campaign_id) for campaign_id in (stock or {}).get("campaigns", [])]
    return web.json_response({"sku": sku, "campaigns": [_view(c) for c in campaigns]})


async def pledge(request: web.Request) -> web.Response:
    who = principal(request)
    who.require("customer")
    body = await parse_body(request, PledgeRequest)
    command = PledgeToCampaign(campaign_id=request.match_info["campaign_id"], pledge_id=uuid.uuid4(),
                               customer=who.sub, quantity=body.quantity)
    return await _pledge_verdict(request, who, command)


async def withdraw(request: web.Request) -> web.Response:
    who = principal(request)
    who.require("customer")
    command = WithdrawPledge(campaign_id=request.match_info["campaign_id"], pledge_id=uuid.uuid4(), customer=who.sub)
    return await _pledge_verdict(request, who, command)


async def _pledge_verdict(request: web.Request, who: Principal, command: PledgeToCampaign | WithdrawPledge,
                          ) -> web.Response:
    found = services(request)
    await _campaign(found, who, command.campaign_id)  # 404 before anything is written
    await found.writer.write(Envelope.new(who.tenant, command))
    pledge_id = str(command.pledge_id)

    def result_of(campaign: dict[str, Any]) -> dict[str, Any] | None:
        result = campaign["results"].get(who.sub)
        return result if result is not None and result["pledge_id"] == pledge_id else None

    decided = await await_verdict(found.reads, "campaigns", _key(who, command.campaign_id), result_of)
    if decided is None:
        return web.json_response({"pledge_id": pledge_id, "status": "pending"}, status=202)
    campaign, result = decided
    if not result["accepted"]:
        code, _, message = result["reason"].partition(": ")
        raise ApiError(409, code, message or code, {"pledge_id": pledge_id, "campaign": _view(campaign)})
    return web.json_response({"pledge_id": pledge_id, "status": "accepted", "quantity": result["quantity"],
                              "campaign": _view(campaign)})


async def my_pledge(request: web.Request) -> web.Response:
    who = principal(request)
    who.require("customer")
    campaign = await _campaign(services(request), who, request.match_info["campaign_id"])
    order_id = campaign["orders"].get(who.sub)
    return web.json_response({
        "campaign_id": campaign["campaign_id"],
        "quantity": campaign["pledges"].get(who.sub, 0),
        "latest": campaign["results"].get(who.sub),
        "order_id": order_id,
        "campaign_status": campaign["status"],
    })
