"""Helpers shared by views: body parsing and long-poll parameters."""

from __future__ import annotations

from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel

from gateway.errors import ApiError

Body = TypeVar("Body", bound=BaseModel)
MAX_WAIT_SECONDS = 30.0


async def parse_body(request: web.Request, model: type[Body]) -> Body:
    raw = await request.read()
    if not raw:
        raise ApiError(422, "invalid_body", "the request needs a JSON body")
    return model.model_validate_json(raw)


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
