"""Group-buying campaigns: open, pledge, withdraw, read, list.

`POST /v1/campaigns` (vendor, admin) opens one; it holds max_quantity units of the SKU, or is
rejected with a reason. `POST /v1/campaigns/{id}/pledges` (customer) pledges or replaces the
customer's pledge, `DELETE` withdraws it; both answer with the campaign agent's verdict (or
"pending" if it takes longer than a few seconds; `GET .../pledges/mine` reads it back).
`GET /v1/campaigns/{id}` long-polls like orders (`?wait=S&known=<status>`);
`GET /v1/campaigns?sku=` lists the tenant's campaigns of a SKU, newest last. `DELETE
/v1/campaigns/{id}` (vendor, admin) cancels a campaign that takes pledges: nobody pays, the units go back.

Retries (gateway/idempotency.py for the semantics):
- opening: the campaign id is the key. Given in the body, it names the campaign; without one, an
  Idempotency-Key derives it (without either, each request opens a new campaign). The request's
  hash is stored with the campaign: the same request from the same principal again gets 202 with
  the campaign, another request for the id 409 (`campaign_exists` for a campaign id of the body,
  `idempotency_key_reused` for one of a key), concurrent ones too (the campaigns agent keeps the
  first OpenCampaign of an id).
- pledging and withdrawing: an Idempotency-Key derives the request's pledge id; the agent decides
  a pledge id once and keeps the verdict with the request's hash among the customer's latest
  REMEMBERED_PLEDGE_REQUESTS, so a replay gets the first verdict (with the campaign as it is now)
  or, with another body or the other operation, 409 `idempotency_key_reused`.
- cancelling needs no key: the campaign id names it and the agent cancels a campaign once; a retry
  finds it cancelled (409 `not_cancellable`) and changes nothing.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from gateway.auth import Principal, principal
from gateway.errors import ApiError, not_found
from gateway.idempotency import derived_id, idempotency_key, key_reused, request_hash
from gateway.requests import CampaignRequest, PledgeRequest
from gateway.services import Services, services
from gateway.views.common import await_verdict, long_poll, parse_body, path_identifier, query_identifier
from streams.models import CampaignStatus, CancelCampaign, Envelope, OpenCampaign, PledgeToCampaign, WithdrawPledge
from streams.topics import campaign_key, sku_key

VIEW_FIELDS = ("campaign_id", "sku", "status", "pledged_quantity", "participants", "target_quantity",
               "max_quantity", "group_price", "ends_at", "reason")

# How long opening a campaign looks for one of the same id before writing regardless.
EXISTING_READ_SECONDS = 1.0
CAMPAIGN_NAMESPACE = uuid.UUID("9a0c2f7e-6b1d-4e3a-8c5f-1d7b3e9a4c62")
PLEDGE_NAMESPACE = uuid.UUID("3e5b7d19-c8a2-4f60-9b14-6a2e0d8f5c73")


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


def _opened(campaign_id: str, view: dict[str, Any]) -> web.Response:
    return web.json_response(view, status=202, headers={"Location": f"/v1/campaigns/{campaign_id}"})


async def open_campaign(request: web.Request) -> web.Response:
    """Writes the OpenCampaign and answers with the campaign as decided, or "opening" after a few
    seconds. A campaign of the id that exists is this request's first answer only if this
    principal opened it with this very request (the hash stored with it): concurrent requests for
    one id all write, the campaigns agent keeps the first, and the others get the 409 once they
    read it. A write never waits for a worker: with no answer in time the answer is "opening"."""
    who = principal(request)
    who.require("vendor", "admin")
    body = await parse_body(request, CampaignRequest)
    idempotency = idempotency_key(request)
    if body.campaign_id is not None:
        campaign_id = body.campaign_id
        conflict = ApiError(409, "campaign_exists", f"campaign {campaign_id} exists; choose another campaign_id")
    else:
        named = uuid.uuid4() if idempotency is None else derived_id(CAMPAIGN_NAMESPACE, who, idempotency)
        campaign_id = f"c-{named.hex[:12]}"
        conflict = key_reused({"campaign_id": campaign_id})
    digest = request_hash("open campaign", body)
    found = services(request)
    key = _key(who, campaign_id)

    def this_request(campaign: dict[str, Any]) -> bool:
        return campaign.get("request_hash") == digest and campaign["opened_by"] == who.sub

    existing = await found.reads.state_within("campaigns", key, EXISTING_READ_SECONDS)
    if isinstance(existing, dict):
        if not this_request(existing):
            raise conflict
        return _opened(campaign_id, _view(existing))
    command = OpenCampaign(
        campaign_id=campaign_id, sku=body.sku, group_price=body.group_price, target_quantity=body.target_quantity,
        max_quantity=body.max_quantity, ends_at=body.ends_at, opened_by=who.sub, request_hash=digest,
    )
    await found.writer.write(Envelope.new(who.tenant, command))
    decided = await await_verdict(found.reads, "campaigns", key,
                                  lambda c: c if c["status"] != CampaignStatus.OPENING or not this_request(c) else None)
    if decided is None:
        return _opened(campaign_id, {"campaign_id": campaign_id, "status": CampaignStatus.OPENING})
    if not this_request(decided[0]):
        raise conflict
    return _opened(campaign_id, _view(decided[0]))


async def cancel_campaign(request: web.Request) -> web.Response:
    who = principal(request)
    who.require("vendor", "admin")
    found = services(request)
    campaign = await _campaign(found, who, path_identifier(request, "campaign_id", "campaign"))
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
    campaign_id = path_identifier(request, "campaign_id", "campaign")
    campaign = await _campaign(services(request), who, campaign_id, wait, known)
    return web.json_response(_view(campaign))


async def list_campaigns(request: web.Request) -> web.Response:
    who = principal(request)
    sku = query_identifier(request, "sku", "/v1/campaigns?sku=<sku>")
    found = services(request)
    stock = await found.reads.state("inventory", sku_key(who.tenant, sku).decode())
    campaigns = [await _campaign(found, who, campaign_id) for campaign_id in (stock or {}).get("campaigns", [])]
    return web.json_response({"sku": sku, "campaigns": [_view(c) for c in campaigns]})


async def pledge(request: web.Request) -> web.Response:
    who = principal(request)
    who.require("customer")
    body = await parse_body(request, PledgeRequest)
    campaign_id = path_identifier(request, "campaign_id", "campaign")
    command = PledgeToCampaign(campaign_id=campaign_id, pledge_id=_pledge_id(request, who, campaign_id),
                               customer=who.sub, quantity=body.quantity, request_hash=request_hash("pledge", body))
    return await _pledge_verdict(request, who, command)


async def withdraw(request: web.Request) -> web.Response:
    who = principal(request)
    who.require("customer")
    campaign_id = path_identifier(request, "campaign_id", "campaign")
    command = WithdrawPledge(campaign_id=campaign_id, pledge_id=_pledge_id(request, who, campaign_id),
                             customer=who.sub, request_hash=request_hash("withdraw"))
    return await _pledge_verdict(request, who, command)


def _pledge_id(request: web.Request, who: Principal, campaign_id: str) -> uuid.UUID:
    """A pledge's or withdrawal's request id: its Idempotency-Key's (same for both operations, so
    that one key sent to the other is refused), or a new one."""
    key = idempotency_key(request)
    return uuid.uuid4() if key is None else derived_id(PLEDGE_NAMESPACE, who, key, campaign_id)


def _result(campaign: dict[str, Any], customer: str, pledge_id: str) -> dict[str, Any] | None:
    """The verdict on the customer's request `pledge_id`, if the campaign still remembers it."""
    latest = campaign["results"].get(customer)
    if latest is not None and latest["pledge_id"] == pledge_id:
        return latest  # type: ignore[no-any-return]
    return next((r for r in campaign.get("earlier_results", {}).get(customer, ()) if r["pledge_id"] == pledge_id), None)


async def _pledge_verdict(request: web.Request, who: Principal, command: PledgeToCampaign | WithdrawPledge,
                          ) -> web.Response:
    found = services(request)
    known = await _campaign(found, who, command.campaign_id)  # 404 before anything is written
    pledge_id = str(command.pledge_id)
    remembered = _result(known, who.sub, pledge_id)
    if remembered is not None:  # an Idempotency-Key replay of a request decided: nothing written
        return _pledge_answer(known, remembered, command)
    await found.writer.write(Envelope.new(who.tenant, command))
    decided = await await_verdict(found.reads, "campaigns", _key(who, command.campaign_id),
                                  lambda campaign: _result(campaign, who.sub, pledge_id))
    if decided is None:
        return web.json_response({"pledge_id": pledge_id, "status": "pending"}, status=202)
    campaign, result = decided
    return _pledge_answer(campaign, result, command)


def _pledge_answer(campaign: dict[str, Any], result: dict[str, Any], command: PledgeToCampaign | WithdrawPledge,
                   ) -> web.Response:
    """The answer a verdict gives, the same to its first request and to its replays (with the campaign as it is)."""
    pledge_id = str(command.pledge_id)
    if result.get("request_hash") != command.request_hash:
        raise key_reused({"pledge_id": pledge_id})
    if not result["accepted"]:
        code, _, message = result["reason"].partition(": ")
        raise ApiError(409, code, message or code, {"pledge_id": pledge_id, "campaign": _view(campaign)})
    return web.json_response({"pledge_id": pledge_id, "status": "accepted", "quantity": result["quantity"],
                              "campaign": _view(campaign)})


def _public(result: dict[str, Any] | None) -> dict[str, Any] | None:
    """A verdict without the hash of the request it decided (the gateway's business only)."""
    return None if result is None else {name: value for name, value in result.items() if name != "request_hash"}


async def my_pledge(request: web.Request) -> web.Response:
    who = principal(request)
    who.require("customer")
    campaign = await _campaign(services(request), who, path_identifier(request, "campaign_id", "campaign"))
    order_id = campaign["orders"].get(who.sub)
    return web.json_response({
        "campaign_id": campaign["campaign_id"],
        "quantity": campaign["pledges"].get(who.sub, 0),
        "latest": _public(campaign["results"].get(who.sub)),
        "order_id": order_id,
        "campaign_status": campaign["status"],
    })
