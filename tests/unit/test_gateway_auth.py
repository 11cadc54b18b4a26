"""Bearer tokens at the gateway: issuer and audience when configured, tenants matched in full, admins
only with MFA, and refusals in the gateway's own words (no Kafka: the auth middleware before a probe)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.auth import auth_middleware, principal
from gateway.errors import error_middleware
from gateway.tokens import mint

SECRET = "auth-unit-tests-secret-of-32-bytes-or-more"
ISSUER = "https://id.fusioncommerce.test"
AUDIENCE = "fusioncommerce-gateway"
Call = Callable[..., Awaitable[tuple[int, dict[str, Any]]]]


def claims(**overrides: Any) -> dict[str, Any]:
    """A valid customer's claims, with `overrides` (None removes a claim)."""
    base: dict[str, Any] = {"sub": "alice", "role": "customer", "tenant": "acme", "exp": int(time.time()) + 600}
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}


def signed(secret: str = SECRET, **overrides: Any) -> str:
    return jwt.encode(claims(**overrides), secret, algorithm="HS256")


def unsigned(**overrides: Any) -> str:
    """An `alg: none` token: a header, the claims and an empty signature."""
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims(**overrides))}."


def gateway(issuer: str = "", audience: str = "") -> web.Application:
    """The gateway's two middlewares before a probe that answers who called."""
    async def probe(request: web.Request) -> web.Response:
        who = principal(request)
        return web.json_response({"sub": who.sub, "role": who.role, "tenant": who.tenant, "amr": list(who.amr)})

    app = web.Application(middlewares=[error_middleware,
                                       auth_middleware(SECRET, issuer=issuer, audience=audience)])
    app.router.add_get("/v1/probe", probe)
    return app


@pytest.fixture
async def call() -> AsyncIterator[Call]:
    clients: dict[tuple[str, str], TestClient] = {}

    async def request(token: str | None, issuer: str = "", audience: str = "") -> tuple[int, dict[str, Any]]:
        if (issuer, audience) not in clients:
            clients[issuer, audience] = TestClient(TestServer(gateway(issuer, audience), host="127.0.0.1", port=0))
            await clients[issuer, audience].start_server()
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        response = await clients[issuer, audience].get("/v1/probe", headers=headers)
        return response.status, await response.json()

    yield request
    for client in clients.values():
        await client.close()


async def test_a_valid_token_passes_with_its_principal(call: Call) -> None:
    status, body = await call(signed(amr=["pwd"]))
    assert (status, body) == (200, {"sub": "alice", "role": "customer", "tenant": "acme", "amr": ["pwd"]})


# Each refusal with its fixed message; none carries PyJWT's own text. Tokens are made when the test
# runs (not at collection, which may be long before in a whole-suite run).
@pytest.mark.parametrize(
    ("make", "code", "message"),
    [
        (lambda: "not-a-jwt", "invalid_token", "the bearer token is not a well-formed JWT"),
        (lambda: signed(secret="another-secret-of-at-least-32-bytes!!"), "invalid_token",
         "the bearer token's signature does not verify"),
        (lambda: signed(exp=int(time.time()) - 60), "token_expired",
         "the bearer token has expired; sign in again for a new one"),
        (lambda: signed(nbf=int(time.time()) + 600), "invalid_token",
         "the bearer token is not valid yet: its nbf or iat is in the future"),
        (lambda: unsigned(), "invalid_token", "the bearer token must be signed with HS256"),
        (lambda: signed(role=None), "invalid_token", "the bearer token lacks the claim role"),
        (lambda: signed(tenant=None), "invalid_token", "the bearer token lacks the claim tenant"),
        (lambda: signed(exp=None), "invalid_token", "the bearer token lacks the claim exp"),
        (lambda: signed(aud="someone-else"), "invalid_token",
         "the bearer token is meant for another audience than this gateway"),
        (lambda: signed(role="root"), "invalid_token", "role must be one of customer, vendor, admin"),
        (lambda: signed(sub=""), "invalid_token", "sub must be a non-empty string"),
        (lambda: signed(amr="mfa"), "invalid_token", "amr must be a list of strings (RFC 8176)"),
        (lambda: signed(amr=["pwd", 1]), "invalid_token", "amr must be a list of strings (RFC 8176)"),
    ],
    ids=["malformed", "bad-signature", "expired", "not-yet-valid", "alg-none", "no-role", "no-tenant", "no-exp",
         "unexpected-audience", "unknown-role", "empty-sub", "amr-string", "amr-not-strings"],
)
async def test_a_bad_token_is_refused_in_our_words(call: Call, make: Callable[[], str], code: str,
                                                    message: str) -> None:
    status, body = await call(make())
    assert status == 401
    assert body == {"error": {"code": code, "message": message, "details": None}}


async def test_no_token_is_refused(call: Call) -> None:
    status, body = await call(None)
    assert status == 401 and body["error"]["code"] == "missing_token"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({}, "the bearer token lacks the claim iss"),
        ({"iss": "https://evil.example", "aud": AUDIENCE},
         "the bearer token was issued by an issuer this gateway does not trust"),
        ({"iss": ISSUER}, "the bearer token lacks the claim aud"),
        ({"iss": ISSUER, "aud": "another-api"}, "the bearer token is meant for another audience than this gateway"),
    ],
    ids=["no-iss", "wrong-iss", "no-aud", "wrong-aud"],
)
async def test_a_configured_issuer_and_audience_are_required(call: Call, overrides: dict[str, Any],
                                                             message: str) -> None:
    status, body = await call(signed(**overrides), issuer=ISSUER, audience=AUDIENCE)
    assert (status, body["error"]["message"]) == (401, message)


async def test_a_token_of_the_configured_issuer_and_audience_passes(call: Call) -> None:
    assert (await call(signed(iss=ISSUER, aud=AUDIENCE), issuer=ISSUER, audience=AUDIENCE))[0] == 200
    # an audience among several the token names is enough (RFC 7519 4.1.3)
    assert (await call(signed(iss=ISSUER, aud=["other", AUDIENCE]), issuer=ISSUER, audience=AUDIENCE))[0] == 200
    # and an issuer alone checks only the issuer
    assert (await call(signed(iss=ISSUER), issuer=ISSUER))[0] == 200


@pytest.mark.parametrize(
    ("tenant", "status"),
    [
        ("acme", 200),
        ("a" * 64, 200),
        ("acme.eu:shop_1-b", 200),
        ("acme\n", 401),  # `re.match` with `$` took it
        ("acme/other", 401),  # would split a message key
        ("a" * 65, 401),
        (".acme", 401),
        ("", 401),
        (7, 401),
    ],
)
async def test_the_tenant_claim_is_matched_in_full(call: Call, tenant: Any, status: int) -> None:
    reply_status, body = await call(signed(tenant=tenant))
    assert reply_status == status
    if status == 401:
        assert body["error"]["message"].startswith("tenant must be 1 to 64 letters, digits")


@pytest.mark.parametrize(
    ("amr", "status"),
    [(["pwd", "mfa"], 200), (["mfa"], 200), (["pwd"], 403), ([], 403), (None, 403), (["pwd", "otp"], 403)],
)
async def test_an_admin_needs_mfa(call: Call, amr: list[str] | None, status: int) -> None:
    reply_status, body = await call(signed(role="admin", amr=amr))
    assert reply_status == status
    if status == 403:
        assert body["error"]["code"] == "mfa_required"
        assert "multi-factor authentication" in body["error"]["message"]


@pytest.mark.parametrize("role", ["customer", "vendor"])
async def test_other_roles_need_no_mfa(call: Call, role: str) -> None:
    assert (await call(signed(role=role, amr=None)))[0] == 200


def test_minted_tokens_say_mfa_for_admins_and_carry_issuer_and_audience() -> None:
    def decoded(token: str) -> dict[str, Any]:
        return jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_aud": False})

    assert decoded(mint(SECRET, "root", "admin", "acme"))["amr"] == ["pwd", "mfa"]
    assert decoded(mint(SECRET, "root", "admin", "acme", amr=["pwd"]))["amr"] == ["pwd"]
    assert decoded(mint(SECRET, "alice", "customer", "acme"))["amr"] == ["pwd"]
    plain = decoded(mint(SECRET, "alice", "customer", "acme"))
    assert "iss" not in plain and "aud" not in plain
    scoped = decoded(mint(SECRET, "alice", "customer", "acme", issuer=ISSUER, audience=AUDIENCE))
    assert (scoped["iss"], scoped["aud"]) == (ISSUER, AUDIENCE)


async def test_a_minted_admin_token_passes_and_one_without_mfa_does_not(call: Call) -> None:
    assert (await call(mint(SECRET, "root", "admin", "acme")))[0] == 200
    assert (await call(mint(SECRET, "root", "admin", "acme", amr=["pwd"])))[0] == 403
