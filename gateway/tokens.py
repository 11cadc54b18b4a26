"""Mint development tokens: `python -m gateway.tokens --role vendor --tenant acme --sub alice`.

Signed with GATEWAY_JWT_SECRET (its development default unless set), valid for `--hours`.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import jwt

from gateway.auth import ROLES
from streams.settings import load


def mint(secret: str, sub: str, role: str, tenant: str, ttl: timedelta = timedelta(hours=12)) -> str:
    claims = {"sub": sub, "role": role, "tenant": tenant, "exp": datetime.now(UTC) + ttl}
    return jwt.encode(claims, secret, algorithm="HS256")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--role", choices=ROLES, required=True)
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--sub", required=True, help="the user: a customer id, a vendor's staff id")
    parser.add_argument("--hours", type=float, default=12.0)
    args = parser.parse_args()
    print(mint(load().jwt_secret, args.sub, args.role, args.tenant, timedelta(hours=args.hours)))


if __name__ == "__main__":
    main()
