"""Bearer JWT authentication: HS256, claims `sub`, `role`, `tenant`, `exp`; `iss` and `aud` when the
gateway is configured with an issuer or audience; `amr` (RFC 8176) containing "mfa" for admins.

An admin token acts for its whole tenant (every customer's orders, the catalog, stock, campaigns), so
every request made with one is an admin action and needs a sign-in with multi-factor authentication.
Refusals carry fixed messages of ours, never PyJWT's exception text.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import jwt
from aiohttp import web

from gateway.errors import ApiError
from streams.models import is_identifier

ROLES = ("customer", "vendor", "admin")
REQUIRED_CLAIMS = ("exp", "sub", "role", "tenant")
MFA = "mfa"

# PyJWT's refusals in the order they are tried (subclasses before their bases), each with our message.
_REFUSALS: tuple[tuple[type[jwt.InvalidTokenError], str, str], ...] = (
    (jwt.ExpiredSignatureError, "token_expired", "the bearer token has expired; sign in again for a new one"),
    (jwt.ImmatureSignatureError, "invalid_token", "the bearer token is not valid yet: its nbf or iat is in the future"),
    (jwt.InvalidSignatureError, "invalid_token", "the bearer token's signature does not verify"),
    (jwt.InvalidAlgorithmError, "invalid_token", "the bearer token must be signed with HS256"),
    (jwt.DecodeError, "invalid_token", "the bearer token is not a well-formed JWT"),
    (jwt.InvalidIssuerError, "invalid_token", "the bearer token was issued by an issuer this gateway does not trust"),
    (jwt.InvalidAudienceError, "invalid_token", "the bearer token is meant for another audience than this gateway"),
    (jwt.InvalidIssuedAtError, "invalid_token", "the bearer token's iat claim is not a time"),
)


@dataclass(frozen=True)
class Principal:
    sub: str
    role: str
    tenant: str
    amr: tuple[str, ...] = ()

    @property
    def signed_in_with_mfa(self) -> bool:
        return MFA in self.amr

    def require(self, *roles: str) -> None:
        if self.role not in roles:
            raise ApiError(403, "forbidden", f"this needs the role {' or '.join(roles)}; your token has {self.role}")



PRINCIPAL = web.RequestKey("principal", Principal)

def _refusal(exc: jwt.InvalidTokenError) -> ApiError:
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return ApiError(401, "invalid_token", f"the bearer token lacks the claim {exc.claim}")
    for kind, code, message in _REFUSALS:
        if isinstance(exc, kind):
            return ApiError(401, code, message)
    return ApiError(401, "invalid_token", "the bearer token is not valid")


def decode(token: str, secret: str, issuer: str = "", audience: str = "") -> Principal:
    """The token's principal, or a 401 ApiError saying what is wrong with it in our words."""
    required = [*REQUIRED_CLAIMS, *(["iss"] if issuer else []), *(["aud"] if audience else [])]
    try:
        claims: dict[str, Any] = jwt.decode(token, secret, algorithms=["HS256"], issuer=issuer or None,
                                            audience=audience or None, options={"require": required})
    except jwt.InvalidTokenError as exc:
        raise _refusal(exc) from None
    role, tenant, sub, amr = claims["role"], claims["tenant"], claims["sub"], claims.get("amr", [])
    if role not in ROLES:
        raise ApiError(401, "invalid_token", f"role must be one of {', '.join(ROLES)}")
    # The tenant becomes part of message keys: the models' rule for identifiers, matched in full.
    if not isinstance(tenant, str) or not is_identifier(tenant):
        raise ApiError(401, "invalid_token", "tenant must be 1 to 64 letters, digits, '.', '_', ':' or '-', "
                                             "starting with a letter or digit")
    if not isinstance(sub, str) or not sub:
        raise ApiError(401, "invalid_token", "sub must be a non-empty string")
    if not isinstance(amr, list) or not all(isinstance(method, str) for method in amr):
        raise ApiError(401, "invalid_token", "amr must be a list of strings (RFC 8176)")
    return Principal(sub=sub, role=role, tenant=tenant, amr=tuple(amr))


def auth_middleware(secret: str, public_paths: frozenset[str] = frozenset(), *, issuer: str = "",
                    audience: str = "") -> Callable[..., Awaitable[web.StreamResponse]]:
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
            who = decode(token.strip(), secret, issuer, audience)
            if who.role == "admin" and not who.signed_in_with_mfa:
                raise ApiError(403, "mfa_required", "admin actions need a sign-in with multi-factor authentication: "
                                                    'the token\'s amr claim must contain "mfa"')
            request[PRINCIPAL] = who
        return await handler(request)

    return authenticate


def principal(request: web.Request) -> Principal:
    return request[PRINCIPAL]
