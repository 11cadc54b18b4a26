"""The gateway's outbound-webhook routes without Kafka: the request model's rules, the view's pure
helpers (what an admin sees, the delivery log, the keyed secret and replays), and the real views
against a tiny aiohttp server posing as the webhooks worker, which applies each command written with
the real decision (streams/tables/webhooks.py) and serves the endpoints as the agent renders them."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import ValidationError

from gateway.auth import Principal, auth_middleware
from gateway.errors import ApiError, error_middleware
from gateway.requests import WebhookEndpointRequest
from gateway.routes import setup_routes
from gateway.services import SERVICES, Services
from gateway.tokens import mint
from gateway.views import webhooks as view
from gateway.workers import WorkerReads
from streams.agents.webhooks import render
from streams.models import (
    DeliveryOutcome,
    DeliveryRecord,
    Envelope,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEndpointChanged,
    WebhookEndpointStatus,
)
from streams.settings import Settings
from streams.tables import webhooks
from streams.topics import WEBHOOK_EVENT_TYPES

JWT_SECRET = "webhook-view-tests-secret-of-at-least-32-bytes"
PARTITIONS = 4
TENANT = "acme"
NOW = datetime(2030, 1, 1, tzinfo=UTC)
POLICY = webhooks.Policy(retry_schedule=(timedelta(seconds=30),), disable_after=timedelta(days=3))
PUBLIC_URL = "https://erp.example.com/hooks"


def validate(body: dict[str, Any]) -> WebhookEndpointRequest:
    return WebhookEndpointRequest.model_validate_json(json.dumps(body), strict=True)


# --- the request model -----------------------------------------------------------------------------

@pytest.mark.parametrize("body", [
    {"url": PUBLIC_URL, "events": ["*"]},
    {"url": PUBLIC_URL, "events": ["OrderStatusChanged", "ShipmentStatusChanged"], "description": "our ERP"},
    {"url": "http://10.0.0.1:8080/hook", "events": list(WEBHOOK_EVENT_TYPES)},  # the target is the view's to judge
])
def test_a_valid_registration_is_taken_as_sent(body: dict[str, Any]) -> None:
    assert validate(body).model_dump(exclude_none=True) == {**body, "events": tuple(body["events"])}


@pytest.mark.parametrize(("body", "problem"), [
    ({"url": PUBLIC_URL, "events": ["OrderShipped"]}, "unknown event type OrderShipped; choose from OrderStatusChanged"),
    ({"url": PUBLIC_URL, "events": ["Nope", "AlsoNope"]}, "unknown event types AlsoNope, Nope"),
    ({"url": PUBLIC_URL, "events": ["PaymentFailed", "PaymentFailed"]}, "each event type may appear once"),
    ({"url": PUBLIC_URL, "events": ["*", "PaymentFailed"]}, '"*" already means every event type'),
    ({"url": PUBLIC_URL, "events": []}, "at least 1 item"),
    ({"url": PUBLIC_URL, "events": "*"}, "valid array"),
    ({"url": "ftp://example.com/hooks", "events": ["*"]}, "should match pattern"),
    ({"url": "https://example.com/hooks ", "events": ["*"]}, "should match pattern"),
    ({"url": PUBLIC_URL, "events": ["*"], "description": "x" * 201}, "at most 200 characters"),
    ({"url": PUBLIC_URL, "events": ["*"], "secret": "mine"}, "Extra inputs are not permitted"),
])
def test_an_invalid_registration_says_what_is_wrong(body: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError) as refused:
        validate(body)
    assert problem in str(refused.value)


def test_an_unknown_event_type_names_every_allowed_one() -> None:
    with pytest.raises(ValidationError) as refused:
        validate({"url": PUBLIC_URL, "events": ["OrderShipped"]})
    assert all(event_type in str(refused.value) for event_type in WEBHOOK_EVENT_TYPES)
    assert '"*" for every type' in str(refused.value)


# --- the view's pure helpers -----------------------------------------------------------------------

def endpoint(**changes: Any) -> WebhookEndpoint:
    base = WebhookEndpoint(endpoint_id=uuid.UUID(int=7), tenant=TENANT, url=PUBLIC_URL, events=("*",),
                           secret="whsec_" + "s" * 43, created_at=NOW, created_by="root", request_hash="h:f")
    return base.model_copy(update=changes)


def record(minute: int, outcome: str = DeliveryOutcome.DELIVERED) -> DeliveryRecord:
    return DeliveryRecord(delivery_id=uuid.UUID(int=minute), event_id=uuid.UUID(int=100 + minute),
                          event_type="OrderStatusChanged", attempt=1, at=NOW + timedelta(minutes=minute),
                          outcome=outcome, status_code=200 if outcome == DeliveryOutcome.DELIVERED else 500)


def waiting(minute: int) -> WebhookDelivery:
    return WebhookDelivery(delivery_id=uuid.UUID(int=1000 + minute), event_id=uuid.UUID(int=2000 + minute),
                           event_type="PaymentFailed", body="{}", attempts=1, next_attempt_at=NOW + timedelta(minutes=minute))


def test_an_admin_sees_an_endpoint_without_secret_hash_log_or_waiting_bodies() -> None:
    shown = view.endpoint_view(render(endpoint(pending=(waiting(3),), log=(record(1),))))
    assert shown == {"endpoint_id": str(uuid.UUID(int=7)), "url": PUBLIC_URL, "events": ["*"], "description": None,
                     "status": "enabled", "created_at": "2030-01-01T00:00:00Z", "created_by": "root",
                     "disabled_reason": None}
    assert "whsec_" not in str(shown)


def test_the_delivery_log_is_newest_first_with_what_waits() -> None:
    # Given an endpoint whose log is kept newest last, with two deliveries waiting
    rendered = render(endpoint(log=tuple(record(minute) for minute in range(5)), pending=(waiting(9), waiting(4))))
    # When it is shown with a limit of 3
    shown = view.deliveries_view(rendered, 3)
    # Then the three newest lines come first, and the earliest next attempt of those waiting
    assert [line["delivery_id"] for line in shown["deliveries"]] == [str(uuid.UUID(int=m)) for m in (4, 3, 2)]
    assert shown["pending"] == {"count": 2, "next_attempt_at": "2030-01-01T00:04:00Z"}
    assert set(shown["deliveries"][0]) == set(DeliveryRecord.model_fields)


def test_an_endpoint_without_deliveries_has_an_empty_log() -> None:
    assert view.deliveries_view(render(endpoint()), 50) == {
        "endpoint_id": str(uuid.UUID(int=7)), "status": "enabled", "deliveries": [],
        "pending": {"count": 0, "next_attempt_at": None}}


def test_a_keyed_secret_is_fixed_by_the_endpoint_and_the_gateway_secret() -> None:
    one, other = uuid.UUID(int=1), uuid.UUID(int=2)
    secret = view.keyed_secret(JWT_SECRET, one)
    assert secret == view.keyed_secret(JWT_SECRET, one) and secret.startswith("whsec_") and len(secret) >= 32
    assert secret != view.keyed_secret(JWT_SECRET, other)
    assert secret != view.keyed_secret(JWT_SECRET + "-rotated", one)


ROOT = Principal(sub="root", role="admin", tenant=TENANT, amr=("mfa",))
BODY = WebhookEndpointRequest(url=PUBLIC_URL, events=("*",))


def stored(body: WebhookEndpointRequest, secret: str, by: str = "root") -> dict[str, Any]:
    return render(endpoint(request_hash=view.stored_hash(body, secret), created_by=by))


def test_a_replay_with_the_same_body_shows_the_secret_again() -> None:
    secret = view.keyed_secret(JWT_SECRET, uuid.UUID(int=7))
    answer = view.replay_answer(stored(BODY, secret), ROOT, view.stored_hash(BODY, secret), secret)
    assert answer.status == 201 and secret in answer.text  # type: ignore[operator]


@pytest.mark.parametrize(("first", "by", "secret_then", "code"), [
    (WebhookEndpointRequest(url=PUBLIC_URL, events=("PaymentFailed",)), "root", "whsec_same", "idempotency_key_reused"),
    (BODY, "someone-else", "whsec_same", "idempotency_key_reused"),
    (BODY, "root", "whsec_before-the-jwt-secret-changed", "secret_unavailable"),
])
def test_a_replay_that_is_not_the_first_request_is_refused(first: WebhookEndpointRequest, by: str, secret_then: str,
                                                            code: str) -> None:
    with pytest.raises(ApiError) as refused:
        view.replay_answer(stored(first, secret_then, by), ROOT, view.stored_hash(BODY, "whsec_same"), "whsec_same")
    assert (refused.value.status, refused.value.code) == (409, code)


# --- the views, against a worker posing as the webhooks agent --------------------------------------

class WebhooksWorker:
    """Applies each command written as the webhooks agent's decision does and serves
    `webhook_endpoints` (rendered as the agent renders) and `webhook_registry`."""

    def __init__(self) -> None:
        self.written: list[Envelope] = []
        self.endpoints: dict[str, WebhookEndpoint] = {}
        self.registry: dict[str, Any] = {}
        self.apply_commands = True
        self.url = ""

    async def write(self, event: Envelope) -> tuple[str, int]:
        self.written.append(event)
        if self.apply_commands:
            key = f"{event.tenant}/{event.payload.endpoint_id}"  # type: ignore[attr-defined]
            accepted = webhooks.accept(self.endpoints.get(key), event, NOW, POLICY)
            if accepted.state is not None:
                self.endpoints[key] = accepted.state
            for change in (e for e in accepted.events if isinstance(e, WebhookEndpointChanged)):
                self.registry[event.tenant] = webhooks.subscribe(self.registry.get(event.tenant), event.tenant, change)
        return "webhooks.commands", 0

    def app(self) -> web.Application:
        async def assignment(request: web.Request) -> web.Response:
            tables = {table: list(range(PARTITIONS)) for table in (view.ENDPOINTS_TABLE, view.REGISTRY_TABLE)}
            return web.json_response({"url": self.url, "ready": True, "partitions": PARTITIONS, "tables": tables})

        async def state(request: web.Request) -> web.Response:
            table, key = request.match_info["table"], request.query["key"]
            if table == view.ENDPOINTS_TABLE and key in self.endpoints:
                return web.json_response(render(self.endpoints[key]))
            if table == view.REGISTRY_TABLE and self.registry.get(key) is not None:
                return web.json_response(self.registry[key].model_dump(mode="json"))
            return web.json_response({"error": "not found"}, status=404)

        app = web.Application()
        app.router.add_get("/fc/assignment", assignment)
        app.router.add_get("/state/{table}", state)
        return app


@pytest.fixture
async def worker(serve_app: Callable[[web.Application], Awaitable[str]]) -> WebhooksWorker:
    worker = WebhooksWorker()
    worker.url = await serve_app(worker.app())
    return worker


@pytest.fixture
async def client(worker: WebhooksWorker) -> AsyncIterator[TestClient]:
    async with aiohttp.ClientSession() as session:
        settings = Settings(jwt_secret=JWT_SECRET, webhook_allow_private_targets=False, read_miss_wait_seconds=0)
        app = web.Application(middlewares=[error_middleware, auth_middleware(settings.jwt_secret)])
        setup_routes(app)
        app[SERVICES] = Services(settings=settings, writer=worker,  # type: ignore[arg-type]
                                 reads=WorkerReads(session, (worker.url,), PARTITIONS, unavailable_after=1.0),
                                 stripe=None, admin=None)  # type: ignore[arg-type]
        client = TestClient(TestServer(app, host="127.0.0.1", port=0))
        await client.start_server()
        yield client
        await client.close()


async def call(client: TestClient, method: str, path: str, role: str = "admin", tenant: str = TENANT,
               body: Any = None, key: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {mint(JWT_SECRET, 'root', role, tenant, amr=['pwd', 'mfa'])}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    async with client.request(method, path, json=body, headers=headers) as reply:
        return reply.status, await reply.json()


async def test_an_admin_registers_lists_reads_and_deletes_an_endpoint(client: TestClient, worker: WebhooksWorker
                                                                      ) -> None:
    # When an admin registers an endpoint
    status, created = await call(client, "POST", "/v1/webhooks", body={"url": PUBLIC_URL, "events": ["PaymentFailed"]})
    # Then it is answered 201 with the secret the command carried
    assert status == 201, created
    (command,) = worker.written
    assert created["secret"] == command.payload.secret and created["secret"].startswith("whsec_")  # type: ignore[attr-defined]
    assert created["events"] == ["PaymentFailed"] and created["status"] == "enabled"
    path = f"/v1/webhooks/{created['endpoint_id']}"
    # and it is listed and read without the secret, with an empty log
    listed = await call(client, "GET", "/v1/webhooks")
    assert listed == (200, {"endpoints": [{k: v for k, v in created.items() if k != "secret"}]})
    assert await call(client, "GET", path) == (200, listed[1]["endpoints"][0])
    assert await call(client, "GET", f"{path}/deliveries") == (200, {
        "endpoint_id": created["endpoint_id"], "status": "enabled", "deliveries": [],
        "pending": {"count": 0, "next_attempt_at": None}})
    # and another tenant's admin finds none of it
    for method, suffix in (("GET", ""), ("DELETE", ""), ("POST", "/enable"), ("GET", "/deliveries")):
        status, refused = await call(client, method, path + suffix, tenant="globex")
        assert (status, refused["error"]["code"]) == (404, "not_found"), (method, suffix)
    assert await call(client, "GET", "/v1/webhooks", tenant="globex") == (200, {"endpoints": []})
    # When it is deleted, then it is gone
    assert await call(client, "DELETE", path) == (202, {"endpoint_id": created["endpoint_id"], "status": "deleting"})
    assert await call(client, "GET", "/v1/webhooks") == (200, {"endpoints": []})
    assert (await call(client, "GET", path))[0] == 404
    assert (await call(client, "DELETE", path))[0] == 404
    assert len(worker.written) == 2  # the register and the delete; nothing for the refusals


@pytest.mark.parametrize("role", ["vendor", "customer"])
async def test_only_an_admin_may_call_the_webhook_routes(client: TestClient, worker: WebhooksWorker, role: str) -> None:
    endpoint_path = f"/v1/webhooks/{uuid.UUID(int=7)}"
    for method, path in (("POST", "/v1/webhooks"), ("GET", "/v1/webhooks"), ("GET", endpoint_path),
                         ("DELETE", endpoint_path), ("POST", f"{endpoint_path}/enable"),
                         ("GET", f"{endpoint_path}/deliveries")):
        status, refused = await call(client, method, path, role=role, body={"url": PUBLIC_URL, "events": ["*"]})
        assert (status, refused["error"]["code"]) == (403, "forbidden"), (method, path)
    assert worker.written == []


@pytest.mark.parametrize(("body", "problem"), [
    ({"url": "http://10.0.0.1/hook", "events": ["*"]}, "the URL must start with https://"),
    ({"url": "https://10.0.0.1/hook", "events": ["*"]}, "10.0.0.1 is not a public internet address"),
    ({"url": "https://localhost/hook", "events": ["*"]}, "names a local or internal host"),
    ({"url": PUBLIC_URL, "events": ["OrderShipped"]}, "unknown event type OrderShipped"),
])
async def test_a_refused_registration_is_a_422_and_writes_nothing(client: TestClient, worker: WebhooksWorker,
                                                                 body: dict[str, Any], problem: str) -> None:
    status, refused = await call(client, "POST", "/v1/webhooks", body=body)
    assert (status, refused["error"]["code"]) == (422, "invalid_body"), refused
    assert problem in str(refused["error"]), refused
    assert worker.written == []


async def test_a_keyed_replay_answers_as_the_first_time_and_another_body_is_a_409(client: TestClient,
                                                                                 worker: WebhooksWorker) -> None:
    body = {"url": PUBLIC_URL, "events": ["*"], "description": "ERP"}
    first = await call(client, "POST", "/v1/webhooks", body=body, key="hook-1")
    assert first[0] == 201, first
    assert await call(client, "POST", "/v1/webhooks", body=body, key="hook-1") == first
    status, refused = await call(client, "POST", "/v1/webhooks", body={**body, "description": "CRM"}, key="hook-1")
    assert (status, refused["error"]["code"]) == (409, "idempotency_key_reused")
    assert len(worker.written) == 1  # the replays found the endpoint and wrote nothing


async def test_a_registration_the_agent_has_not_made_in_time_is_pending(client: TestClient, worker: WebhooksWorker,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gateway.views.common.VERDICT_WAIT_SECONDS", 0.3)
    worker.apply_commands = False
    status, pending = await call(client, "POST", "/v1/webhooks", body={"url": PUBLIC_URL, "events": ["*"]})
    assert (status, pending) == (202, {"endpoint_id": str(worker.written[0].payload.endpoint_id),  # type: ignore[attr-defined]
                                       "status": "pending"})


async def test_enable_writes_for_a_known_endpoint_and_limit_is_checked(client: TestClient, worker: WebhooksWorker
                                                                       ) -> None:
    _, created = await call(client, "POST", "/v1/webhooks", body={"url": PUBLIC_URL, "events": ["*"]})
    path = f"/v1/webhooks/{created['endpoint_id']}"
    assert await call(client, "POST", f"{path}/enable") == (202, {"endpoint_id": created["endpoint_id"],
                                                                   "status": "enabling"})
    assert worker.written[-1].type == "EnableWebhookEndpoint"
    assert (await call(client, "POST", "/v1/webhooks/not-a-uuid/enable"))[0] == 404
    for limit in ("0", "201", "1_0", "+5", "ten"):
        status, refused = await call(client, "GET", f"{path}/deliveries?limit={limit}")
        assert (status, refused["error"]["code"]) == (422, "invalid_query"), limit
    assert (await call(client, "GET", f"{path}/deliveries?limit=200"))[0] == 200


def test_the_worker_pose_is_the_agents_rendering() -> None:
    # The fake worker's answers are the agent's `render`: no secret, no waiting bodies.
    shown = render(endpoint(pending=(waiting(1),), status=WebhookEndpointStatus.DISABLED))
    assert "secret" not in shown and "body" not in shown["pending"][0]
