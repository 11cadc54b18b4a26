"""Bearer JWT authentication: HS256, claims `sub`, `role`, `tenant`, `exp`."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import jwt
from aiohttp import web

from gateway.errors import ApiError

ROLES = ("customer", "vendor", "admin")
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


@dataclass(frozen=True)
class Principal:
    sub: str
    role: str
    tenant: str

    def require(self, *roles: str) -> None:
        if self.role not in roles:
            raise ApiError(403, "forbidden", f"this needs the role {' or '.join(roles)}; your token has {self.role}")


def decode(token: str, secret: str) -> Principal:
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["exp", "sub", "role", "tenant"]})
    except jwt.ExpiredSignatureError:
        raise ApiError(401, "token_expired", "the bearer token has expired; mint a new one") from None
    except jwt.InvalidTokenError as exc:
        raise ApiError(401, "invalid_token", f"the bearer token is not valid: {exc}") from None
    role, tenant, sub = claims["role"], claims["tenant"], claims["sub"]
    if role not in ROLES:
        raise ApiError(401, "invalid_token", f"role must be one of {', '.join(ROLES)}")
    if not isinstance(tenant, str) or not _TENANT.match(tenant):
        raise ApiError(401, "invalid_token", "tenant must be letters, digits, '.', '_', ':' or '-'")
    if not isinstance(sub, str) or not sub:
        raise ApiError(401, "invalid_token", "sub must be a non-empty string")
    return Principal(sub=sub, role=role, tenant=tenant)


def auth_middleware(secret: str, public_paths: frozenset[str] = frozenset()) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Bearer JWT on every /v1/ path except `public_paths`, which authenticate otherwise (Stripe's signature)."""

    @web.middleware
    async def authenticate(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path.startswith("/v1/") and request.path not in public_paths:
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token:
                raise ApiError(401, "missing_token", "send `Authorization: Bearer <JWT>`; "
                                                     "`make token` mints a development token")
            request["principal"] = decode(token.strip(), secret)
        return await handler(request)

    return authenticate


def principal(request: web.Request) -> Principal:
    return request["principal"]  # type: ignore[no-any-return]
