"""Outbound webhooks: signed POSTs of events to HTTPS endpoints a tenant's admin registered.

    problem = target_problem(url, allow_private=settings.webhook_allow_private_targets)  # at registration
    secret = new_secret()                                        # "whsec_...", shown to the admin once
    sender = WebhookSender(settings.webhook_timeout_seconds, settings.webhook_allow_private_targets)
    attempt = await sender.deliver(url, secret, body, delivery_id=..., event_id=..., event_type=..., now=...)
    await sender.close()                                         # on shutdown: closes the HTTP session

Signing is Stripe's scheme, so receivers can reuse what they know: `FC-Signature: t=<unix time>,
v1=<hex HMAC-SHA256 of "<t>." + body, keyed by the secret>`. A receiver recomputes the HMAC, compares
in constant time and refuses a timestamp more than a few minutes off (`verify` does exactly that;
the README shows it). Each POST also carries `FC-Event-Id` (the same for every delivery of an
event: receivers deduplicate on it), `FC-Delivery-Id` (one per endpoint and event, the same over
retries) and `FC-Event-Type`.

An attempt (`deliver`) never raises for what the endpoint or the network does: it says what became
of the POST in an `Attempt` (delivered on a 2xx; redirects are not followed, a 3xx is a failure).
The whole attempt, connection, TLS, request and reading at most 64 KiB of the answer, is bounded by
`timeout_seconds`; retries and giving up are the agent's (streams/agents/webhooks.py).

Server-side request forgery: a URL is the admin's input, and the platform must not be made to POST
to itself, its network or the cloud metadata service (169.254.169.254). `target_problem` refuses
such URLs at registration without DNS. DNS can change afterwards (a name resolving to a public
address at registration and to 10.0.0.5 at delivery: "DNS rebinding"), so at delivery the session's
connector uses `PublicAddressResolver`, which drops every non-public address that DNS answers: the
connection is only made to an address that was checked, with nothing resolved between the check
and the connect. aiohttp does not ask the resolver for IP literals, so `deliver` checks those
itself. Redirects are not followed and proxies from the environment are ignored, since either
would connect to an address that was not checked. `deliver` leaves the scheme (HTTPS only) to
registration; what it enforces is where connections go. With `allow_private`
(WEBHOOK_ALLOW_PRIVATE_TARGETS, on in development) every address is allowed, and http://.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import secrets
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from connectors import stripe_webhooks

SIGNATURE_HEADER = "FC-Signature"
EVENT_ID_HEADER = "FC-Event-Id"
DELIVERY_ID_HEADER = "FC-Delivery-Id"
EVENT_TYPE_HEADER = "FC-Event-Type"
USER_AGENT = "FusionCommerce-Webhooks/1"
# Receivers answer with a status; their body is read only so that a small answer leaves the
# connection reusable, and never more than this (a hostile endpoint could send gigabytes).
ANSWER_LIMIT = 64 * 1024

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

CGNAT = ipaddress.IPv4Network("100.64.0.0/10")  # carrier-grade NAT: inside a provider's network
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # an IPv4 address seen through a NAT64 gateway
LOCAL_NAMES = ("localhost",)
LOCAL_SUFFIXES = (".localhost", ".local", ".internal")
# The forms inet_aton accepts besides dotted decimal (2130706433, 127.1, 0x7f.1, 0177.0.0.1): a
# resolver or a socket may read them as an address while ipaddress refuses them, so they are refused.
NUMERIC_HOST = re.compile(r"(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}\.?", re.IGNORECASE)


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """The `FC-Signature` value of `body` sent at `timestamp` (Unix seconds): Stripe's scheme."""
    return stripe_webhooks.sign(body, secret, timestamp)


def verify(secret: str, header: str, body: bytes, now: int, tolerance: int = 300) -> bool:
    """What a receiver does: whether `header` signs `body` with `secret` at a time within
    `tolerance` seconds of `now`. Several `v1` values may be given (one per secret while a secret
    is rotated); one match is enough. A malformed header is False, never an error."""
    try:
        stripe_webhooks.check_signature(body, header, secret, tolerance, now)
    except stripe_webhooks.InvalidWebhook:
        return False
    return True


def is_public(address: IPAddress) -> bool:
    """Whether `address` is global unicast, reachable on the internet and nothing else."""
    if isinstance(address, ipaddress.IPv6Address):
        # An IPv4 address inside an IPv6 one reaches that IPv4 address: judge that one.
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public(embedded)
        if address.is_site_local:
            return False
    elif address in CGNAT:
        return False
    if (address.is_loopback or address.is_private or address.is_link_local or address.is_multicast
            or address.is_reserved or address.is_unspecified):
        return False
    return address.is_global


def _literal(host: str) -> IPAddress | None:
    """The address `host` is when it is an IP literal, None when it is a name; ValueError for a
    host that looks like an address but is not one in the usual notation."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        if ":" in host or NUMERIC_HOST.fullmatch(host):
            raise
        return None


def _meaning(host: str) -> str:
    try:
        return f" (it would reach {ipaddress.IPv4Address(socket.inet_aton(host.rstrip('.')))})"
    except (OSError, ValueError):  # not a form inet_aton reads either
        return ""


def target_problem(url: str, allow_private: bool) -> str | None:
    """What is wrong with `url` as a webhook endpoint, and what to do, for the admin registering
    it; None when it is acceptable. No DNS: names are judged by their form, and `deliver` checks
    the addresses they resolve to."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # read for its ValueError: a port that is not a number in 0..65535
    except ValueError as exc:
        return f"the URL cannot be read ({exc}): give a full URL such as https://example.com/webhooks"
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes:
        wanted = "https:// (or http://)" if allow_private else "https:// (webhooks are only sent over HTTPS)"
        return f"the URL must start with {wanted}"
    if parts.username is not None or parts.password is not None:
        return ("the URL contains a user name or password: remove it; receivers authenticate deliveries "
                f"by checking the {SIGNATURE_HEADER} header")
    host = parts.hostname
    if not host:
        return "the URL has no host: give one, as in https://example.com/webhooks"
    if parts.fragment or url.strip().endswith("#"):
        return "the URL has a #fragment, which is never sent to a server: remove it"
    try:
        address = _literal(host)
    except ValueError:
        return (f"{host} is an IP address in an unusual notation{_meaning(host)}: give a host name or "
                "the address in the usual notation (such as 203.0.113.7 or [2001:db8::1])")
    if allow_private:
        return None
    if address is not None:
        if not is_public(address):
            return (f"{host} is not a public internet address: webhooks are only sent to public addresses; "
                    "give a public host name or address")
        return None
    name = host.rstrip(".")
    if name in LOCAL_NAMES or name.endswith(LOCAL_SUFFIXES):
        return (f"{host} names a local or internal host: webhooks are only sent to hosts on the public "
                "internet; give a public host name")
    return None


class TargetNotPublic(OSError):
    """The address a connection would go to is not public (and private targets are not allowed)."""


class PublicAddressResolver(AbstractResolver):
    """Resolves through `delegate` (aiohttp's default resolver) and keeps only public addresses,
    unless `allow_private`; raises OSError naming the address when none is left, which aiohttp
    reports as a connection failure before any connection is made."""

    def __init__(self, allow_private: bool, delegate: AbstractResolver | None = None) -> None:
        self.allow_private = allow_private
        self.delegate = delegate if delegate is not None else DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        resolved = await self.delegate.resolve(host, port, family)
        if self.allow_private:
            return resolved
        kept, refused = [], []
        for result in resolved:
            try:
                public = is_public(ipaddress.ip_address(result["host"]))
            except ValueError:
                public = False
            (kept if public else refused).append(result)
        if not kept:
            names = ", ".join(dict.fromkeys(result["host"] for result in refused)) or "none"
            raise TargetNotPublic(f"target address {names} is not public" if len(refused) == 1
                                  else f"target addresses {names} are not public")
        return kept

    async def close(self) -> None:
        await self.delegate.close()


@dataclass(frozen=True)
class Attempt:
    status_code: int | None  # None when no HTTP answer came
    error: str | None  # None when delivered, else what went wrong, in a few words for the admin
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class WebhookSender:
    def __init__(self, timeout_seconds: float, allow_private: bool) -> None:
        self.timeout_seconds = timeout_seconds
        self.allow_private = allow_private
        self._session: aiohttp.ClientSession | None = None
        self._resolver: PublicAddressResolver | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Made by the first delivery, inside the running loop it then belongs to.
        if self._session is None:
            self._resolver = PublicAddressResolver(self.allow_private)
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(resolver=self._resolver),
                timeout=aiohttp.ClientTimeout(total=self.timeout_seconds),
                # Endpoints of different tenants share the session: none may set cookies the others get.
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,  # an HTTP(S)_PROXY from the environment would bypass the address check
                auto_decompress=False,  # the answer is discarded: no need to inflate it
            )
        return self._session

    async def deliver(self, url: str, secret: str, body: str, *, delivery_id: str, event_id: str,
                      event_type: str, now: int) -> Attempt:
        """POST `body` (JSON) to `url`, signed with `secret` at time `now`; what became of it."""
        started = time.monotonic()

        def attempt(status_code: int | None, error: str | None) -> Attempt:
            return Attempt(status_code, error, round((time.monotonic() - started) * 1000))

        problem = self._literal_problem(url)
        if problem is not None:
            return attempt(None, problem)
        data = body.encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: signature(secret, data, now),
            EVENT_ID_HEADER: event_id,
            DELIVERY_ID_HEADER: delivery_id,
            EVENT_TYPE_HEADER: event_type,
        }
        try:
            async with asyncio.timeout(self.timeout_seconds):
                async with self._client().post(url, data=data, headers=headers, allow_redirects=False) as response:
                    read = 0
                    while read < ANSWER_LIMIT and (chunk := await response.content.read(ANSWER_LIMIT - read)):
                        read += len(chunk)
                    status = response.status
        except TimeoutError:  # asyncio's, and aiohttp's own timeouts subclass it
            return attempt(None, f"timed out after {self.timeout_seconds:g}s")
        except aiohttp.ClientSSLError as exc:
            return attempt(None, f"TLS failed: {exc.os_error}")
        except aiohttp.ClientConnectorError as exc:
            return attempt(None, _connect_error(exc.os_error))
        except aiohttp.ClientError as exc:
            return attempt(None, _client_error(exc))
        except OSError as exc:
            return attempt(None, _connect_error(exc))
        if 200 <= status < 300:
            return attempt(status, None)
        if 300 <= status < 400:
            return attempt(status, f"HTTP {status} (redirects are not followed)")
        return attempt(status, f"HTTP {status}")

    def _literal_problem(self, url: str) -> str | None:
        # aiohttp connects to an IP literal without asking the resolver: the check is made here.
        try:
            host = urlsplit(url).hostname
        except ValueError as exc:
            return f"invalid URL: {exc}"
        if not host or self.allow_private:
            return None
        try:
            address = _literal(host)
        except ValueError:
            return f"target address {host} is not in the usual notation"
        if address is not None and not is_public(address):
            return f"target address {host} is not public"
        return None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._resolver is not None:
            await self._resolver.close()
            self._resolver = None


def _connect_error(error: OSError) -> str:
    if isinstance(error, TargetNotPublic):
        return str(error)
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, socket.gaierror):
        return f"host not found ({error.strerror})"
    return f"connection failed ({error.strerror or error})"


def _client_error(error: aiohttp.ClientError) -> str:
    if isinstance(error, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without answering"
    if isinstance(error, aiohttp.InvalidURL):
        return f"invalid URL: {error}"
    return f"{type(error).__name__}: {error}"
