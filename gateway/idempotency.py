"""`Idempotency-Key`, with Stripe's semantics: the same key with the same request gets the first
answer; the same key with another request gets 409 `idempotency_key_reused`.

A key (1 to 255 characters) belongs to the principal (tenant and sub) and to the resource it is
sent to: the id of what the request makes (an order, a stock adjustment, a pledge, a campaign) is
derived from them, so a replay names the same thing, and the hash of the request travels with the
command. The agent owning that id's partition is the single writer: it keeps the first request
and its hash, and ignores every later command with the id. So concurrent requests with one key,
through one gateway or several, all write their command; each then reads the agent's verdict and
compares the hash stored with it to its own. No gateway decides from its own memory.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from gateway.auth import Principal
from gateway.errors import ApiError
from gateway.workers import WorkerReads

HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY = 255


def idempotency_key(request: web.Request) -> str | None:
    """The request's key, None without one; 422 when it is empty or longer than 255 characters."""
    key = request.headers.get(HEADER)
    if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
        raise ApiError(422, "invalid_idempotency_key", f"Idempotency-Key must have 1 to {MAX_IDEMPOTENCY_KEY} characters")
    return key


def derived_id(namespace: uuid.UUID, who: Principal, key: str, *resource: str) -> uuid.UUID:
    """The id a key names: fixed by the principal, the resource the request is sent to and the key."""
    return uuid.uuid5(namespace, "\n".join((who.tenant, who.sub, *resource, key)))


def request_hash(operation: str, body: BaseModel | None = None) -> str:
    """What tells a replay from another request under the same key: the operation and its body as
    validated (so formatting, key order and equal spellings of a time do not count)."""
    raw = f"{operation}\n{body.model_dump_json() if body is not None else ''}"
    return hashlib.blake2b(raw.encode(), digest_size=16).hexdigest()


def key_reused(details: dict[str, Any] | None = None) -> ApiError:
    return ApiError(409, "idempotency_key_reused",
                    "this Idempotency-Key was used for a different request; use a new key", details)


async def appeared(reads: WorkerReads, table: str, key: str, seconds: float) -> dict[str, Any] | None:
    """`table[key]` once it exists, long-polling its owner (which answers right after the commit that
    made it); None when it has not appeared, or no worker answered, within `seconds`."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0.01:
        state = await reads.state_within(table, key, left, wait=max(left - 0.05, 0.0))
        if isinstance(state, dict):
            return state
        if state is not None:  # UNKNOWN: no worker answered in time
            return None
    return None
