"""Outbound webhooks, the gateway's side: a tenant's admin registers, lists, reads, deletes and
enables endpoints and reads each one's delivery log. Every route is the admin's only (a vendor or a
customer gets 403 `forbidden`) and names endpoints of the token's tenant only.

- `POST /v1/webhooks` {url, events, description?}: the URL must be an acceptable target
  (connectors/webhooks.py `target_problem`: public addresses over HTTPS unless
  WEBHOOK_ALLOW_PRIVATE_TARGETS) and the events types of streams/topics.py WEBHOOK_EVENT_TYPES or
  "*" (422 otherwise, nothing written). The gateway makes the signing secret, writes
  `RegisterWebhookEndpoint` to `webhooks.commands` (key `<tenant>/<endpoint_id>`) and reads
  `webhook_endpoints` until the webhooks agent has it: 201 with the endpoint and its secret, the
  only answer that shows it, or 202 `pending` after a few seconds.
- `GET /v1/webhooks`: the tenant's endpoints, from `webhook_registry` (key `<tenant>`), each read
  from `webhook_endpoints`; `GET /v1/webhooks/{id}` one of them (404 for an unknown, deleted or
  other tenant's id); `GET /v1/webhooks/{id}/deliveries?limit=50` its log, newest first, and what
  waits for another attempt.
- `DELETE /v1/webhooks/{id}`, `POST /v1/webhooks/{id}/enable`: 404 for an unknown endpoint,
  else the command is written and answered 202 (the agent deletes once, and enables only a
  disabled endpoint: a retry changes nothing).

Idempotency-Key (gateway/idempotency.py): the endpoint id is derived from the key and the
principal; the request's hash is kept with the endpoint by the agent, which keeps the first
registration of an id. A replay with the same body gets the first answer, secret included (the
client lost it): a keyed registration's secret is derived from the endpoint id under the gateway's
JWT secret, as the workers' read credential is, since the worker never serves secrets; the stored
hash carries a fingerprint of that secret, so a replay after the JWT secret was changed is refused
(409 `secret_unavailable`) rather than answered with a secret that signs nothing. Without a key the
secret is `new_secret()`'s. A replay with another body is 409 `idempotency_key_reused`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import uuid
from datetime import datetime
from typing import Any

from aiohttp import web

from connectors.webhooks import new_secret, target_problem
from gateway.auth import Principal, principal
from gateway.errors import ApiError, not_found
from gateway.idempotency import derived_id, idempotency_key, key_reused, request_hash
from gateway.requests import WebhookEndpointRequest
from gateway.services import Services, services
from gateway.views.common import await_verdict, parse_body
from streams.models import (
    DeleteWebhookEndpoint,
    EnableWebhookEndpoint,
    Envelope,
    RegisterWebhookEndpoint,
    WebhookEndpointStatus,
)
from streams.topics import endpoint_key

ENDPOINTS_TABLE = "webhook_endpoints"
REGISTRY_TABLE = "webhook_registry"
ENDPOINT_NAMESPACE = uuid.UUID("c4a1e7d2-3b5f-4e8a-9d60-2f7b1c8e5a94")
SECRET_LABEL = b"fusioncommerce webhook endpoint secret\n"
# How long a keyed registration looks for its endpoint before writing regardless.
EXISTING_READ_SECONDS = 1.0
DEFAULT_LOG_LINES = 50
MAX_LOG_LINES = 200
VIEW_FIELDS = ("endpoint_id", "url", "events", "description", "status", "created_at", "created_by", "disabled_reason")


def endpoint_view(endpoint: dict[str, Any]) -> dict[str, Any]:
    """What an admin sees of an endpoint as the worker serves it (which is already without secret)."""
    return {name: endpoint.get(name) for name in VIEW_FIELDS}


def created_view(endpoint: dict[str, Any], secret: str) -> dict[str, Any]:
    return {**endpoint_view(endpoint), "secret": secret}


def deliveries_view(endpoint: dict[str, Any], limit: int) -> dict[str, Any]:
    """The endpoint's log newest first (the worker keeps it newest last), at most `limit` lines, and
    how many deliveries wait for an attempt and the earliest of those attempts."""
    pending = endpoint.get("pending", ())
    next_attempts = [delivery["next_attempt_at"] for delivery in pending]
    return {
        "endpoint_id": endpoint["endpoint_id"],
        "status": endpoint["status"],
        "deliveries": list(reversed(endpoint.get("log", ())))[:limit],
        "pending": {"count": len(pending),
                    "next_attempt_at": min(next_attempts, key=datetime.fromisoformat) if next_attempts else None},
    }


def keyed_secret(jwt_secret: str, endpoint_id: uuid.UUID) -> str:
    """The secret of a registration made with an Idempotency-Key: the same for its replays."""
    digest = hmac.new(jwt_secret.encode(), SECRET_LABEL + str(endpoint_id).encode(), hashlib.sha256).digest()
    return "whsec_" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def fingerprint(secret: str) -> str:
    return hashlib.blake2b(secret.encode(), digest_size=8).hexdigest()


def stored_hash(body: WebhookEndpointRequest, secret: str) -> str:
    """The request's hash as the endpoint keeps it: the body's, and which secret the answer showed."""
    return f"{request_hash('register webhook endpoint', body)}:{fingerprint(secret)}"


def replay_answer(endpoint: dict[str, Any], who: Principal, hashed: str, secret: str) -> web.Response:
    """The answer to a registration whose endpoint exists: the first answer, or 409."""
    stored_request, _, stored_secret = (endpoint.get("request_hash") or "").partition(":")
    this_request, _, this_secret = hashed.partition(":")
    if stored_request != this_request or endpoint.get("created_by") != who.sub:
        raise key_reused({"endpoint_id": endpoint["endpoint_id"]})
    if stored_secret != this_secret:
        raise ApiError(409, "secret_unavailable",
                       "this endpoint was registered, but its secret can no longer be shown (the gateway's secret "
                       "changed since); delete it and register a new one", {"endpoint_id": endpoint["endpoint_id"]})
    return web.json_response(created_view(endpoint, secret), status=201,
                             headers={"Location": f"/v1/webhooks/{endpoint['endpoint_id']}"})


def _key(who: Principal, endpoint_id: uuid.UUID | str) -> str:
    return endpoint_key(who.tenant, endpoint_id).decode()


def parse_endpoint_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["endpoint_id"])
    except ValueError:
        raise not_found(f"webhook endpoint {request.match_info['endpoint_id']}") from None


def visible(endpoint: dict[str, Any] | None, who: Principal) -> bool:
    return (endpoint is not None and endpoint.get("tenant") == who.tenant
            and endpoint.get("status") != WebhookEndpointStatus.DELETED)


async def _endpoint(found: Services, who: Principal, endpoint_id: uuid.UUID) -> dict[str, Any]:
    endpoint = await found.reads.state(ENDPOINTS_TABLE, _key(who, endpoint_id),
                                       wait=found.settings.read_miss_wait_seconds)
    if not visible(endpoint, who):
        raise not_found(f"webhook endpoint {endpoint_id}")
    return endpoint  # type: ignore[return-value]


def _admin(request: web.Request) -> Principal:
    who = principal(request)
    who.require("admin")
    return who


async def register_endpoint(request: web.Request) -> web.Response:
    who = _admin(request)
    body = await parse_body(request, WebhookEndpointRequest)
    found = services(request)
    problem = target_problem(body.url, found.settings.webhook_allow_private_targets)
    if problem is not None:
        raise ApiError(422, "invalid_body", f"the url is not an acceptable webhook target: {problem}",
                       [{"field": "url", "problem": problem}])
    key = idempotency_key(request)
    if key is None:
        endpoint_id, secret = uuid.uuid4(), new_secret()
    else:
        endpoint_id = derived_id(ENDPOINT_NAMESPACE, who, key)
        secret = keyed_secret(found.settings.jwt_secret, endpoint_id)
    hashed = stored_hash(body, secret)
    table_key = _key(who, endpoint_id)
    if key is not None:
        existing = await found.reads.state_within(ENDPOINTS_TABLE, table_key, EXISTING_READ_SECONDS)
        if isinstance(existing, dict):  # a replay: nothing written
            return replay_answer(existing, who, hashed, secret)
    command = RegisterWebhookEndpoint(endpoint_id=endpoint_id, url=body.url, events=body.events, secret=secret,
                                      description=body.description, requested_by=who.sub, request_hash=hashed)
    await found.writer.write(Envelope.new(who.tenant, command))
    registered = await await_verdict(found.reads, ENDPOINTS_TABLE, table_key, lambda endpoint: endpoint)
    if registered is None:
        return web.json_response({"endpoint_id": str(endpoint_id), "status": "pending"}, status=202,
                                 headers={"Location": f"/v1/webhooks/{endpoint_id}"})
    return replay_answer(registered[0], who, hashed, secret)


async def list_endpoints(request: web.Request) -> web.Response:
    who = _admin(request)
    found = services(request)
    registry = await found.reads.state(REGISTRY_TABLE, who.tenant)
    ids = sorted((registry or {}).get("endpoints", {}))
    read = await asyncio.gather(*(found.reads.state(ENDPOINTS_TABLE, _key(who, endpoint_id)) for endpoint_id in ids))
    # An endpoint deleted since the registry was read is left out.
    shown = sorted((e for e in read if visible(e, who)), key=lambda e: (e["created_at"], e["endpoint_id"]))  # type: ignore[index]
    return web.json_response({"endpoints": [endpoint_view(e) for e in shown]})  # type: ignore[arg-type]


async def get_endpoint(request: web.Request) -> web.Response:
    who = _admin(request)
    endpoint = await _endpoint(services(request), who, parse_endpoint_id(request))
    return web.json_response(endpoint_view(endpoint))


async def _command(request: web.Request, command: type[DeleteWebhookEndpoint] | type[EnableWebhookEndpoint],
                   status: str, headers: dict[str, str] | None = None) -> web.Response:
    """Write an admin's command about an existing endpoint of their tenant (404 first: the agent
    dead-letters a command for an unknown endpoint)."""
    who = _admin(request)
    found = services(request)
    endpoint_id = parse_endpoint_id(request)
    await _endpoint(found, who, endpoint_id)
    await found.writer.write(Envelope.new(who.tenant, command(endpoint_id=endpoint_id, requested_by=who.sub)))
    return web.json_response({"endpoint_id": str(endpoint_id), "status": status}, status=202, headers=headers)


async def delete_endpoint(request: web.Request) -> web.Response:
    return await _command(request, DeleteWebhookEndpoint, "deleting")


async def enable_endpoint(request: web.Request) -> web.Response:
    return await _command(request, EnableWebhookEndpoint, "enabling",
                          {"Location": f"/v1/webhooks/{request.match_info['endpoint_id']}"})


def log_limit(request: web.Request) -> int:
    raw = request.query.get("limit", str(DEFAULT_LOG_LINES))
    if not re.fullmatch(r"[0-9]{1,6}", raw):  # not int(): it takes "+5", " 5" and "1_0"
        raise ApiError(422, "invalid_query", f"limit must be a whole number of log lines, not {raw[:20]!r}")
    limit = int(raw)
    if not 1 <= limit <= MAX_LOG_LINES:
        raise ApiError(422, "invalid_query", f"limit must be between 1 and {MAX_LOG_LINES}")
    return limit


async def list_deliveries(request: web.Request) -> web.Response:
    who = _admin(request)
    endpoint_id = parse_endpoint_id(request)
    limit = log_limit(request)
    endpoint = await _endpoint(services(request), who, endpoint_id)
    return web.json_response(deliveries_view(endpoint, limit))
