"""The gateway's Prometheus metrics and its `/metrics` door.

`GET /metrics` serves `GATEWAY` (below) beside prometheus-client's default registry (process and
Python collectors, the Stripe calls of connectors/stripe.py) to a caller with the workers' read
credential, `Authorization: Bearer <credential>` (streams/runtime/reads.py, derived from the JWT
secret), as a Prometheus scrape config sends it (`authorization: {credentials: ...}`); anyone else
gets 401. It is an operator's door, not part of the API contract (schemas/openapi.json).

Labels are bounded: a request is counted under its route's canonical path (`/v1/orders/{order_id}`,
never the path it was sent to; `unmatched` for none), one of a fixed set of methods (`other` for the
rest) and its status code. The README's "Metrics" section lists every metric.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway.errors import error_response
from streams.runtime.metrics import exposition
from streams.runtime.reads import presents_credential

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

GATEWAY = CollectorRegistry(auto_describe=True)

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"

REQUESTS = Counter(
    "fc_http_requests", "Requests answered by the gateway, by route (canonical path), method and status",
    ["route", "method", "status"], registry=GATEWAY)
REQUEST_SECONDS = Histogram(
    "fc_http_request_duration_seconds", "Time from a request's arrival to its answer (long-polls: their wait included)",
    ["route", "method"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=GATEWAY)
RATE_LIMIT_REFUSALS = Counter(
    "fc_rate_limit_refusals", "Requests refused with 429 by the edge: kind address, write, read, long_poll "
    "(a budget was empty) or concurrent_long_polls (GATEWAY_MAX_LONG_POLLS were waiting)", ["kind"],
    registry=GATEWAY)
LONG_POLLS_WAITING = Gauge(
    "fc_long_polls_waiting", "Long-polls (GET with wait > 0) waiting for an answer now", registry=GATEWAY)


def route_of(request: web.Request) -> str:
    """The canonical path of the route that matched `request`, or `unmatched`: never the raw path."""
    resource = request.match_info.route.resource
    return UNMATCHED if resource is None else resource.canonical


def method_of(request: web.Request) -> str:
    return request.method if request.method in METHODS else "other"


@web.middleware
async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count every answer, the edge's and the error middleware's included (outermost middleware).
    A request whose client went away before the answer is not counted."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = 0
        raise
    finally:
        if status:
            route, method = route_of(request), method_of(request)
            REQUESTS.labels(route, method, str(status)).inc()
            REQUEST_SECONDS.labels(route, method).observe(time.perf_counter() - started)


def metrics_view(credential: str) -> Handler:
    async def metrics(request: web.Request) -> web.StreamResponse:
        if not presents_credential(request.headers, credential):
            return error_response(401, "unauthorized", "send `Authorization: Bearer <worker read credential>`, "
                                                       "the credential the workers' read endpoints take")
        body, content_type = exposition(GATEWAY)
        return web.Response(body=body, headers={"Content-Type": content_type})

    return metrics
