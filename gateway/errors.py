"""One error shape for every failure: `{"error": {"code", "message", "details"}}`."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from pydantic import ValidationError

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: Any = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} does not exist or is not visible to you")


def error_response(status: int, code: str, message: str, details: Any = None,
                   headers: Mapping[str, str] | None = None) -> web.Response:
    body = {"error": {"code": code, "message": message, "details": details}}
    return web.json_response(body, status=status, headers=headers)


def validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]}
        for e in exc.errors(include_url=False)
    ]


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)
    except json.JSONDecodeError as exc:
        return error_response(422, "invalid_json", f"the request body is not JSON: {exc}")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(exc.status, "http_error")
        # A 405 says which methods the path has (RFC 9110): aiohttp's Allow header is kept.
        kept = {name: exc.headers[name] for name in ("Allow", "Retry-After") if name in exc.headers}
        return error_response(exc.status, code, exc.reason, headers=kept)
    except Exception:
        # A ValidationError here is no client's fault (bodies are validated by `parse_body`): data the
        # gateway built or read did not fit a model, which is ours to fix, not a 422.
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "the gateway failed; the error is in its log")
