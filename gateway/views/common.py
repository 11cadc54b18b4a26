"""Helpers shared by views: body parsing, identifiers in paths and queries, long-poll parameters.

A client's mistake is a 4xx here, before anything is written: a body that does not fit its model
(validated strictly: JSON types as the document has them) is a 422 listing each problem; a SKU or
campaign id in a path that no identifier can be names nothing (404, as an unknown one); one in a
query is a 422.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from gateway.errors import ApiError, not_found, validation_details
from gateway.workers import WorkerReads
from streams.models import is_identifier

Body = TypeVar("Body", bound=BaseModel)
MAX_WAIT_SECONDS = 30.0
# How long a write waits for its agent's verdict before answering "pending", and how often it
# looks: the verdict is usually there within two commit intervals.
VERDICT_WAIT_SECONDS = 5.0
VERDICT_POLL_SECONDS = 0.05


async def parse_body(request: web.Request, model: type[Body]) -> Body:
    raw = await request.read()
    if not raw:
        raise ApiError(422, "invalid_body", "the request needs a JSON body")
    try:
        # Strict: `false` is no amount and "5" no quantity (lax pydantic would take them as 0 and 5).
        return model.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            raise ApiError(422, "invalid_json", "the request body is not JSON", validation_details(exc)) from None
        raise ApiError(422, "invalid_body", "the request body is not valid", validation_details(exc)) from None


IDENTIFIER_RULE = "1 to 64 letters, digits, '.', '_', ':' or '-', starting with a letter or digit"


def path_identifier(request: web.Request, name: str, what: str) -> str:
    """A SKU or campaign id from the path: one that cannot be an identifier names nothing (404)."""
    value = request.match_info[name]
    if not is_identifier(value):
        raise not_found(f"the {what}")
    return value


def query_identifier(request: web.Request, name: str, example: str) -> str:
    value = request.query.get(name)
    if not value:
        raise ApiError(422, "invalid_query", f"give the {name}: {example}")
    if not is_identifier(value):
        raise ApiError(422, "invalid_query", f"{name} must be {IDENTIFIER_RULE}")
    return value


def long_poll(request: web.Request) -> tuple[float, str | None]:
    """`?wait=S&known=<status>`: wait up to S seconds (at most 30) until the status differs."""
    raw = request.query.get("wait", "0")
    try:
        wait = float(raw)
    except ValueError:
        raise ApiError(422, "invalid_query", f"wait must be a number of seconds, not {raw!r}") from None
    if not 0 <= wait <= MAX_WAIT_SECONDS:
        raise ApiError(422, "invalid_query", f"wait must be between 0 and {MAX_WAIT_SECONDS:.0f} seconds")
    return wait, request.query.get("known")


async def await_verdict(reads: WorkerReads, table: str, key: str,
                        verdict_in: Callable[[dict[str, Any]], Any]) -> tuple[dict[str, Any], Any] | None:
    """Read `table[key]` until `verdict_in(state)` finds the agent's verdict on a write just made;
    None when it has not come within VERDICT_WAIT_SECONDS (the write stands, the answer is "pending").
    Reads are bounded by what is left of that: the write is made, so no worker missing may turn it into a 503."""
    deadline = time.monotonic() + VERDICT_WAIT_SECONDS
    while (left := deadline - time.monotonic()) > 0:
        state = await reads.state_within(table, key, left, wait=VERDICT_POLL_SECONDS)
        verdict = verdict_in(state) if isinstance(state, dict) else None
        if verdict is not None:
            return state, verdict  # type: ignore[return-value]
        await asyncio.sleep(VERDICT_POLL_SECONDS)
    return None
