"""Mint development tokens: `python -m gateway.tokens --role vendor --tenant acme --sub alice`.

Signed with GATEWAY_JWT_SECRET (its development default in development mode, FC_DEVELOPMENT=1),
carrying GATEWAY_JWT_ISSUER and GATEWAY_JWT_AUDIENCE as `iss` and `aud` when they are set, valid for
`--hours`. An admin token says the admin signed in with MFA (`amr` ["pwd", "mfa"]) unless `--no-mfa`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from gateway.auth import MFA, ROLES
from streams.settings import load


def mint(secret: str, sub: str, role: str, tenant: str, ttl: timedelta = timedelta(hours=12), *,
         amr: Sequence[str] | None = None, issuer: str = "", audience: str = "") -> str:
    """A signed token; `amr` by default ["pwd", "mfa"] for an admin, ["pwd"] for the other roles."""
    claims: dict[str, Any] = {
        "sub": sub, "role": role, "tenant": tenant, "exp": datetime.now(UTC) + ttl,
        "amr": list(amr) if amr is not None else ["pwd", MFA] if role == "admin" else ["pwd"],
    }
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm="HS256")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--role", choices=ROLES, required=True)
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--sub", required=True, help="the user: a customer id, a vendor's staff id")
    parser.add_argument("--hours", type=float, default=12.0)
    parser.add_argument("--no-mfa", action="store_true",
                        help='amr ["pwd"] only: a sign-in without MFA, which admin actions refuse (403 mfa_required)')
    args = parser.parse_args()
    settings = load()
    if not settings.jwt_secret:
        raise SystemExit("GATEWAY_JWT_SECRET is not set: set it to the gateway's secret, or FC_DEVELOPMENT=1 "
                         "for the development one (what `make run` uses)")
    amr = ["pwd"] if args.no_mfa else None
    print(mint(settings.jwt_secret, args.sub, args.role, args.tenant, timedelta(hours=args.hours), amr=amr,
               issuer=settings.jwt_issuer, audience=settings.jwt_audience))


if __name__ == "__main__":
    main()
