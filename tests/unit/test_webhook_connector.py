"""Outbound webhooks (connectors/webhooks.py): signing and verifying, the registration check of
target URLs, and deliveries to a real local aiohttp server that records what it is sent."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import ClientSession, TCPConnector, web
from aiohttp.abc import AbstractResolver, ResolveResult

from connectors.webhooks import (
    SIGNATURE_HEADER,
    Attempt,
    PublicAddressResolver,
    WebhookSender,
    is_public,
    new_secret,
    signature,
    target_problem,
    verify,
)

SECRET = "whsec_test"
BODY = '{"type": "order.placed", "note": "caf\u00e9"}'
NOW = 1_714_564_800


@dataclass
class Recorder:
    """A local HTTP server: /ok answers 200, /fail 500, /redirect 302 to /ok, /hang never answers."""

    base: str
    requests: list[web.Request] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)


@pytest.fixture
async def recording_server() -> AsyncIterator[Recorder]:
    release = asyncio.Event()
    recorder: Recorder

    async def record(request: web.Request) -> web.Response:
        recorder.requests.append(request)
        recorder.bodies.append(await request.read())
        if request.path == "/fail":
            return web.Response(status=500, text="boom")
        if request.path == "/redirect":
            return web.Response(status=302, headers={"Location": "/ok"})
        if request.path == "/hang":
            await release.wait()
        return web.Response(text="thanks")

    app = web.Application()
    app.router.add_post("/{name}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    recorder = Recorder(base=f"http://127.0.0.1:{port}")
    yield recorder
    release.set()  # lets the hanging handler end, so the cleanup does not wait for it
    await runner.cleanup()


@pytest.fixture
async def sender() -> AsyncIterator[WebhookSender]:
    webhooks = WebhookSender(timeout_seconds=0.5, allow_private=True)
    yield webhooks
    await webhooks.close()


@pytest.fixture
async def strict_sender() -> AsyncIterator[WebhookSender]:
    webhooks = WebhookSender(timeout_seconds=0.5, allow_private=False)
    yield webhooks
    await webhooks.close()


async def deliver(webhooks: WebhookSender, url: str) -> Attempt:
    return await webhooks.deliver(url, SECRET, BODY, delivery_id="dlv-1", event_id="evt-1",
                                  event_type="order.placed", now=NOW)


# Signing and verifying


def test_a_new_secret_is_prefixed_and_unguessable() -> None:
    first, second = new_secret(), new_secret()
    assert first.startswith("whsec_") and len(first) >= 6 + 43 and first != second


def test_the_signature_is_stripes_scheme() -> None:
    body = BODY.encode()
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + body, hashlib.sha256).hexdigest()
    assert signature(SECRET, body, NOW) == f"t={NOW},v1={expected}"


def test_verify_accepts_its_own_header() -> None:
    assert verify(SECRET, signature(SECRET, b"{}", NOW), b"{}", now=NOW + 299)


@pytest.mark.parametrize(("secret", "body", "now"), [
    (SECRET, b'{"a": 2}', NOW),  # a changed body
    ("whsec_other", b"{}", NOW),  # a wrong secret
    (SECRET, b"{}", NOW + 301),  # a timestamp too old
    (SECRET, b"{}", NOW - 301),  # a timestamp from the future
], ids=["changed body", "wrong secret", "too old", "from the future"])
def test_verify_rejects(secret: str, body: bytes, now: int) -> None:
    assert not verify(secret, signature(SECRET, b"{}", NOW), body, now=now)


def test_verify_accepts_a_header_with_two_v1_values_of_which_one_matches() -> None:
    good = signature(SECRET, b"{}", NOW).split("v1=")[1]
    assert verify(SECRET, f"t={NOW}, v1={'0' * 64}, v1={good}", b"{}", now=NOW)
    assert not verify(SECRET, f"t={NOW},v1={'0' * 64},v1={'1' * 64}", b"{}", now=NOW)


@pytest.mark.parametrize("header", ["", "v1=abc", f"t={NOW}", f"t=+{NOW},v1=x", f"t={NOW},t={NOW},v1=x", "garbage",
                                    f"t={NOW},v1=\u00e9t\u00e9"])
def test_verify_says_false_to_a_malformed_header(header: str) -> None:
    assert verify(SECRET, header, b"{}", now=NOW) is False


# Targets


@pytest.mark.parametrize(("url", "allow_private", "refused"), [
    ("https://hooks.example.com/fc", False, False),
    ("https://hooks.example.com:8443/fc?tenant=acme", False, False),
    ("https://93.184.216.34/fc", False, False),
    ("https://[2606:4700:4700::1111]/fc", False, False),
    ("https://cafe.de/fc", False, False),  # only hex letters, but a name
    ("http://hooks.example.com/fc", False, True),
    ("http://hooks.example.com/fc", True, False),
    ("ftp://hooks.example.com/fc", True, True),
    ("https:///fc", False, True),
    ("https://user:pw@hooks.example.com/fc", False, True),
    ("https://hooks.example.com/fc#top", False, True),
    ("https://10.1.2.3/fc", False, True),
    ("https://172.16.0.1/fc", False, True),
    ("https://192.168.1.1/fc", False, True),
    ("https://100.64.0.1/fc", False, True),
    ("https://169.254.169.254/latest/meta-data", False, True),
    ("https://127.0.0.1/fc", False, True),
    ("https://[::1]/fc", False, True),
    ("https://[::ffff:127.0.0.1]/fc", False, True),
    ("https://[fe80::1]/fc", False, True),
    ("https://[fd00::1]/fc", False, True),
    ("https://0.0.0.0/fc", False, True),
    ("https://224.0.0.1/fc", False, True),
    ("https://0x7f000001/fc", False, True),
    ("https://0x7f.1/fc", False, True),
    ("https://2130706433/fc", False, True),
    ("https://127.1/fc", False, True),
    ("https://0177.0.0.1/fc", True, True),  # ambiguous notation even where private targets are allowed
    ("https://localhost/fc", False, True),
    ("https://LOCALHOST./fc", False, True),
    ("https://api.localhost/fc", False, True),
    ("https://printer.local/fc", False, True),
    ("https://foo.internal/fc", False, True),
    ("https://127.0.0.1:8080/fc", True, False),
    ("http://[::1]:8080/fc", True, False),
    ("http://localhost:8080/fc", True, False),
    ("https://hooks.example.com:99999/fc", True, True),
])
def test_target_problem(url: str, allow_private: bool, refused: bool) -> None:
    problem = target_problem(url, allow_private)
    assert (problem is not None) is refused, problem


def test_a_refusal_says_what_is_wrong() -> None:
    assert "https://" in target_problem("http://hooks.example.com/", allow_private=False)  # type: ignore[operator]
    assert "127.0.0.1" in target_problem("https://0x7f000001/", allow_private=False)  # type: ignore[operator]


@pytest.mark.parametrize(("address", "public"), [
    ("93.184.216.34", True),
    ("2606:4700:4700::1111", True),
    ("10.0.0.5", False),
    ("172.31.255.255", False),
    ("192.168.0.1", False),
    ("127.0.0.1", False),
    ("169.254.169.254", False),
    ("100.64.0.1", False),
    ("0.0.0.0", False),
    ("224.0.0.251", False),
    ("240.0.0.1", False),
    ("255.255.255.255", False),
    ("::", False),
    ("::1", False),
    ("fe80::1", False),
    ("fc00::1", False),
    ("ff02::1", False),
    ("::ffff:10.0.0.5", False),
    ("::ffff:169.254.169.254", False),
    ("::ffff:93.184.216.34", True),
    ("2002:a00:5::1", False),  # 6to4 of 10.0.0.5
    ("64:ff9b::a9fe:a9fe", False),  # NAT64 of 169.254.169.254
])
def test_is_public(address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public


# Deliveries


async def test_a_delivery_answered_200_is_signed_and_carries_the_event_headers(
        sender: WebhookSender, recording_server: Recorder) -> None:
    attempt = await deliver(sender, f"{recording_server.base}/ok")
    assert attempt.delivered and attempt.status_code == 200 and attempt.error is None
    [request], [body] = recording_server.requests, recording_server.bodies
    assert body == BODY.encode("utf-8")
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + body, hashlib.sha256).hexdigest()
    assert request.headers[SIGNATURE_HEADER] == f"t={NOW},v1={expected}"
    assert request.headers["FC-Event-Id"] == "evt-1"
    assert request.headers["FC-Delivery-Id"] == "dlv-1"
    assert request.headers["FC-Event-Type"] == "order.placed"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == "FusionCommerce-Webhooks/1"


async def test_a_500_is_a_failure_with_its_code(sender: WebhookSender, recording_server: Recorder) -> None:
    attempt = await deliver(sender, f"{recording_server.base}/fail")
    assert not attempt.delivered
    assert (attempt.status_code, attempt.error) == (500, "HTTP 500")


async def test_a_redirect_is_not_followed(sender: WebhookSender, recording_server: Recorder) -> None:
    attempt = await deliver(sender, f"{recording_server.base}/redirect")
    assert not attempt.delivered
    assert (attempt.status_code, attempt.error) == (302, "HTTP 302 (redirects are not followed)")
    assert [request.path for request in recording_server.requests] == ["/redirect"]


async def test_a_server_that_never_answers_times_out(sender: WebhookSender, recording_server: Recorder) -> None:
    attempt = await deliver(sender, f"{recording_server.base}/hang")
    assert not attempt.delivered
    assert (attempt.status_code, attempt.error) == (None, "timed out after 0.5s")


async def test_a_closed_port_is_a_connection_error(sender: WebhookSender) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    attempt = await deliver(sender, f"http://127.0.0.1:{port}/ok")
    assert (attempt.status_code, attempt.error) == (None, "connection refused")


async def test_the_session_is_reused_across_deliveries(sender: WebhookSender, recording_server: Recorder) -> None:
    assert (await deliver(sender, f"{recording_server.base}/ok")).delivered
    assert (await deliver(sender, f"http://localhost:{recording_server.base.rsplit(':', 1)[1]}/ok")).delivered
    assert len(recording_server.requests) == 2


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_without_private_targets_a_loopback_target_is_refused_before_connecting(
        strict_sender: WebhookSender, recording_server: Recorder, host: str) -> None:
    port = recording_server.base.rsplit(":", 1)[1]
    attempt = await deliver(strict_sender, f"http://{host}:{port}/ok")
    assert attempt.status_code is None and not attempt.delivered
    assert attempt.error is not None and "is not public" in attempt.error
    assert recording_server.requests == []


class FixedResolver(AbstractResolver):
    """DNS as a test wants it: every name resolves to `addresses`."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses
        self.asked: list[str] = []

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        self.asked.append(host)
        return [ResolveResult(hostname=host, host=address, port=port, family=socket.AF_INET, proto=0, flags=0)
                for address in self.addresses]

    async def close(self) -> None:
        pass


async def test_the_resolver_keeps_only_public_addresses() -> None:
    resolver = PublicAddressResolver(allow_private=False, delegate=FixedResolver("10.0.0.5", "93.184.216.34"))
    assert [result["host"] for result in await resolver.resolve("rebound.example", 443)] == ["93.184.216.34"]


async def test_the_resolver_names_the_address_when_none_is_public() -> None:
    resolver = PublicAddressResolver(allow_private=False, delegate=FixedResolver("169.254.169.254"))
    with pytest.raises(OSError, match="target address 169.254.169.254 is not public"):
        await resolver.resolve("rebound.example", 443)
    allowing = PublicAddressResolver(allow_private=True, delegate=FixedResolver("169.254.169.254"))
    assert len(await allowing.resolve("rebound.example", 443)) == 1


async def test_aiohttp_connects_to_an_ip_literal_without_asking_the_resolver(recording_server: Recorder) -> None:
    # Why `deliver` checks IP literals itself: the connector's resolver never sees them.
    resolver = FixedResolver("203.0.113.7")
    async with ClientSession(connector=TCPConnector(resolver=resolver)) as session:
        async with session.post(f"{recording_server.base}/ok") as response:
            assert response.status == 200
    assert resolver.asked == []
