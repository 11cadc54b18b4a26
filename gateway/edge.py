"""The gateway's edge: body size, CORS and rate limits, in front of every route.

`Edge.cors` is outermost: it answers preflights of the origins in `GATEWAY_CORS_ORIGINS` and marks
every answer to them, errors included, as readable by that origin. `Edge.admission` runs before
authentication, so that what an anonymous client sends is limited too: a body over
`GATEWAY_MAX_BODY_BYTES` is a 413 before it is read (aiohttp's `client_max_size` catches a body
without a length), and every request counts against its client address's budget. `Edge.inner` runs after
authentication, with the principal (tenant + sub) known: each request counts against the
principal's budget of its category (writes, reads, long-polls), and at most `GATEWAY_MAX_LONG_POLLS`
long-polls of one principal wait at once, so that one client cannot hold the gateway's connections
to the workers. A refusal is a 429 with `Retry-After`; answers carry the IETF draft's
`RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` of the budget they counted against.

The budgets live in this process (token buckets, `Buckets`): N gateways behind a load balancer allow N times the budget. A deployment that needs one budget
across gateways needs a shared store (Redis, as the `limits` library's storages do); the README says so.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Literal

from aiohttp import web
from limits import RateLimitItem, parse_many

from gateway.auth import PRINCIPAL
from gateway.errors import ApiError, error_response
from gateway.metrics import LONG_POLLS_WAITING, RATE_LIMIT_REFUSALS
from streams.settings import Settings

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Category = Literal["write", "read", "long_poll"]

ALLOWED_METHODS = "GET, POST, DELETE, OPTIONS"
ALLOWED_HEADERS = "Authorization, Content-Type, Idempotency-Key"
EXPOSED_HEADERS = "Location, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset"
PREFLIGHT_MAX_AGE = "600"
# What a refused long-poll is told to wait: one of the principal's others may have ended by then.
LONG_POLL_RETRY_SECONDS = 1


def category(request: web.Request) -> Category:
    if request.method in ("GET", "HEAD"):
        return "long_poll" if request.query.get("wait", "0") not in ("", "0") else "read"
    return "write"


class Edge:
    def __init__(self, settings: Settings) -> None:
        self.max_body_bytes = settings.max_body_bytes
        self.origins = frozenset(settings.cors_origins)
        self.max_long_polls = settings.max_long_polls
        self.budgets: dict[Category, Buckets] = {
            "write": _budget(settings.rate_limit_writes),
            "read": _budget(settings.rate_limit_reads),
            "long_poll": _budget(settings.rate_limit_long_polls),
        }
        self.per_address = _budget(settings.rate_limit_per_address)
        self.long_polls: Counter[tuple[str, str]] = Counter()

    # -- outermost: CORS on every answer, errors included ------------------------------------------

    @web.middleware
    async def cors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is None:
            return await handler(request)
        allowed = "*" in self.origins or origin in self.origins
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            if not allowed:
                return error_response(403, "origin_not_allowed", "this origin may not call the gateway from a "
                                      "browser; the operator lists allowed origins in GATEWAY_CORS_ORIGINS")
            return web.Response(status=204, headers={
                "Access-Control-Allow-Origin": origin, "Access-Control-Allow-Methods": ALLOWED_METHODS,
                "Access-Control-Allow-Headers": ALLOWED_HEADERS, "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
                "Vary": "Origin",
            })
        response = await handler(request)
        if allowed:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
            response.headers["Vary"] = "Origin"
        return response

    # -- before authentication: what anyone may send -------------------------------------------------

    @web.middleware
    async def admission(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.content_length is not None and request.content_length > self.max_body_bytes:
            raise ApiError(413, "body_too_large", f"a request body may have at most {self.max_body_bytes} bytes")
        self._count(self.per_address, "address", request.remote or "unknown")
        return await handler(request)

    # -- after authentication -------------------------------------------------------------------

    @web.middleware
    async def inner(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        who = request.get(PRINCIPAL)
        if who is None:  # public paths: /healthz, /readyz, the Stripe webhook, the contract
            return await handler(request)
        kind = category(request)
        headers = self._count(self.budgets[kind], kind, who.tenant, who.sub)
        if kind != "long_poll":
            return _with_headers(await _answer(handler, request, headers), headers)
        waiting = (who.tenant, who.sub)
        if self.long_polls[waiting] >= self.max_long_polls:
            RATE_LIMIT_REFUSALS.labels("concurrent_long_polls").inc()
            raise ApiError(429, "too_many_long_polls",
                           f"at most {self.max_long_polls} long-polls of one client wait at once; "
                           "wait for one to end before starting another",
                           headers={**headers, "Retry-After": str(LONG_POLL_RETRY_SECONDS)})
        self.long_polls[waiting] += 1
        LONG_POLLS_WAITING.inc()
        try:
            return _with_headers(await _answer(handler, request, headers), headers)
        finally:
            LONG_POLLS_WAITING.dec()
            self.long_polls[waiting] -= 1
            if not self.long_polls[waiting]:
                del self.long_polls[waiting]

    def _count(self, budget: Buckets, *identifiers: str) -> dict[str, str]:
        """Take one request from `identifiers`' buckets of `budget`; a 429 when one is empty.
        `identifiers[0]` is the budget's kind (address, write, read, long_poll), the metrics' label."""
        refused = budget.take(identifiers, time.monotonic())
        if refused is not None:
            RATE_LIMIT_REFUSALS.labels(identifiers[0]).inc()
            limit, wait = refused
            retry = max(1, math.ceil(wait))
            raise ApiError(429, "rate_limited", f"too many requests: at most {limit.amount} per "
                                                f"{limit.get_expiry()} s; retry in {retry} s",
                           headers={**_limit_headers(limit.amount, 0, retry), "Retry-After": str(retry)})
        return budget.headers(identifiers)


class Buckets:
    """Token buckets, one per identifiers and window of a budget: a window "N per T seconds" is a
    bucket of N tokens refilled at N/T a second, so a client may burst N and then go on at the rate.
    The `limits` library parses the budgets; its memory storage was not used because it starts a
    thread every 10 ms that scans every key, which cost 30 % of the gateway's CPU per read
    (bench/gateway_edge.py). Buckets that have filled up again are forgotten now and then, so that
    memory follows the clients of the last hour or so, not all clients ever."""

    def __init__(self, windows: list[RateLimitItem]) -> None:
        self.windows = windows
        self.rates = [window.amount / window.get_expiry() for window in windows]
        # identifiers -> [when last taken, tokens of each window]
        self.buckets: dict[tuple[str, ...], list[float]] = {}
        self.refill_seconds = max((window.get_expiry() for window in windows), default=0)
        self.next_sweep = 0.0

    def take(self, identifiers: tuple[str, ...], now: float) -> tuple[RateLimitItem, float] | None:
        """Take a token from each window; None, or the empty window and the seconds until it has one."""
        if not self.windows:
            return None
        if now >= self.next_sweep:
            self._sweep(now)
        bucket = self.buckets.get(identifiers)
        if bucket is None:
            bucket = self.buckets[identifiers] = [now, *(float(window.amount) for window in self.windows)]
        elapsed = now - bucket[0]
        bucket[0] = now
        for index, (window, rate) in enumerate(zip(self.windows, self.rates, strict=True), start=1):
            bucket[index] = min(float(window.amount), bucket[index] + elapsed * rate)
        for index, (window, rate) in enumerate(zip(self.windows, self.rates, strict=True), start=1):
            if bucket[index] < 1:
                return window, (1 - bucket[index]) / rate
        for index in range(1, len(bucket)):
            bucket[index] -= 1
        return None

    def headers(self, identifiers: tuple[str, ...]) -> dict[str, str]:
        """RateLimit headers of the window with the fewest tokens left (after `take`)."""
        bucket = self.buckets.get(identifiers)
        if bucket is None:
            return {}
        index = min(range(1, len(bucket)), key=lambda i: bucket[i])
        window, tokens = self.windows[index - 1], bucket[index]
        return _limit_headers(window.amount, int(tokens), math.ceil((window.amount - tokens) / self.rates[index - 1]))

    def _sweep(self, now: float) -> None:
        self.buckets = {key: bucket for key, bucket in self.buckets.items() if now - bucket[0] < self.refill_seconds}
        self.next_sweep = now + self.refill_seconds


def _budget(setting: str) -> Buckets:
    return Buckets([] if setting == "off" else parse_many(setting))


def _limit_headers(limit: int, remaining: int, reset_seconds: int) -> dict[str, str]:
    return {"RateLimit-Limit": str(limit), "RateLimit-Remaining": str(remaining),
            "RateLimit-Reset": str(reset_seconds)}


async def _answer(handler: Handler, request: web.Request, headers: dict[str, str]) -> web.StreamResponse:
    """The handler's answer; its refusals (ApiError) carry the budget's headers too."""
    try:
        return await handler(request)
    except ApiError as exc:
        exc.headers = {**headers, **(exc.headers or {})}
        raise


def _with_headers(response: web.StreamResponse, headers: dict[str, str]) -> web.StreamResponse:
    response.headers.update(headers)
    return response
