"""The webhook routes on the real stack: a worker of every agent, a webhooks worker in its own group
(`--agents webhooks`) and the gateway; private targets not allowed (as outside development mode).

An admin registers an endpoint (201 with its secret), finds it in the list and reads it (never with
the secret), with an empty delivery log, and deletes it; another tenant's admin finds nothing of it;
a vendor is refused; a private target and an unknown event type are 422s that write nothing."""

from __future__ import annotations

from typing import Any

import pytest

from streams.models import Envelope
from tests.conftest import Api, read_topic, token
from tests.harness import Stack, eventually_async

# Slot 0: every agent (the app group); slot 1: the webhooks agents alone (their own group).
STACK_WORKERS = [{}, {"agents": "webhooks"}]
STACK_ENV = {"WEBHOOK_ALLOW_PRIVATE_TARGETS": "false", "FC_READ_MISS_WAIT": "0.5"}
SETTLE_SECONDS = 30.0

ADMIN = token("admin", "acme", "root")
OTHER_ADMIN = token("admin", "globex", "root")
VENDOR = token("vendor", "acme", "vera")
# No event of these types happens in this module: nothing is delivered to the made-up host.
ENDPOINT = {"url": "https://hooks.example.com/fusioncommerce", "events": ["CampaignFailed", "CampaignSucceeded"],
            "description": "integration test"}


@pytest.fixture
def api(stack: Stack, http) -> Api:  # type: ignore[no-untyped-def]
    assert stack.gateway is not None
    return Api(stack.gateway.url, http)


async def listed_ids(api: Api, who: str) -> list[str]:
    reply = await api.get("/v1/webhooks", who)
    assert reply.status == 200, reply.body
    assert all("secret" not in endpoint for endpoint in reply.body["endpoints"]), reply.body
    return [endpoint["endpoint_id"] for endpoint in reply.body["endpoints"]]


async def test_an_admin_registers_reads_and_deletes_an_endpoint(api: Api) -> None:
    # When acme's admin registers an endpoint
    created = await api.post("/v1/webhooks", ADMIN, ENDPOINT)
    # Then it is answered 201 with the endpoint and its signing secret
    assert created.status == 201, created.body
    endpoint: dict[str, Any] = created.body
    assert endpoint["secret"].startswith("whsec_") and len(endpoint["secret"]) >= 32
    assert {name: endpoint[name] for name in ENDPOINT} == ENDPOINT
    assert endpoint["status"] == "enabled" and created.headers["Location"] == f"/v1/webhooks/{endpoint['endpoint_id']}"
    path = f"/v1/webhooks/{endpoint['endpoint_id']}"
    shown = {name: value for name, value in endpoint.items() if name != "secret"}

    # and it is listed (once the registry has it) and read, never with the secret
    async def in_the_list() -> bool:
        return endpoint["endpoint_id"] in await listed_ids(api, ADMIN)

    await eventually_async(in_the_list, SETTLE_SECONDS, "the endpoint in the list")
    read = await api.get(path, ADMIN)
    assert (read.status, read.body) == (200, shown)
    # and its delivery log is empty
    log = await api.get(f"{path}/deliveries", ADMIN)
    assert (log.status, log.body) == (200, {"endpoint_id": endpoint["endpoint_id"], "status": "enabled",
                                            "deliveries": [], "pending": {"count": 0, "next_attempt_at": None}})

    # and globex's admin finds nothing of it
    for method, suffix in (("GET", ""), ("GET", "/deliveries"), ("DELETE", ""), ("POST", "/enable")):
        refused = await api.call(method, path + suffix, OTHER_ADMIN)
        assert (refused.status, refused.body["error"]["code"]) == (404, "not_found"), (method, suffix, refused.body)
    assert endpoint["endpoint_id"] not in await listed_ids(api, OTHER_ADMIN)

    # When it is deleted
    deleted = await api.call("DELETE", path, ADMIN)
    assert (deleted.status, deleted.body) == (202, {"endpoint_id": endpoint["endpoint_id"], "status": "deleting"})

    # Then it leaves the list and can no longer be read
    async def gone() -> bool:
        return endpoint["endpoint_id"] not in await listed_ids(api, ADMIN) and (await api.get(path, ADMIN)).status == 404

    await eventually_async(gone, SETTLE_SECONDS, "the endpoint gone")


async def test_a_keyed_registration_replayed_answers_the_same_endpoint_and_secret(api: Api) -> None:
    first = await api.post("/v1/webhooks", ADMIN, ENDPOINT, headers={"Idempotency-Key": "integration-hook-1"})
    assert first.status == 201, first.body
    again = await api.post("/v1/webhooks", ADMIN, ENDPOINT, headers={"Idempotency-Key": "integration-hook-1"})
    assert (again.status, again.body) == (201, first.body)
    other = await api.post("/v1/webhooks", ADMIN, {**ENDPOINT, "events": ["*"]},
                           headers={"Idempotency-Key": "integration-hook-1"})
    assert (other.status, other.body["error"]["code"]) == (409, "idempotency_key_reused")
    assert (await api.call("DELETE", f"/v1/webhooks/{first.body['endpoint_id']}", ADMIN)).status == 202


@pytest.mark.parametrize(("method", "path"), [("POST", "/v1/webhooks"), ("GET", "/v1/webhooks")])
async def test_a_vendor_is_refused(api: Api, method: str, path: str) -> None:
    refused = await api.call(method, path, VENDOR, ENDPOINT if method == "POST" else None)
    assert (refused.status, refused.body["error"]["code"]) == (403, "forbidden"), refused.body


@pytest.mark.parametrize(("body", "problem"), [
    ({**ENDPOINT, "url": "http://10.0.0.1/hook"}, "https://"),
    ({**ENDPOINT, "url": "https://10.0.0.1/hook"}, "not a public internet address"),
    ({**ENDPOINT, "events": ["OrderShipped"]}, "unknown event type OrderShipped; choose from OrderStatusChanged"),
])
async def test_a_refused_registration_is_a_422(api: Api, body: dict[str, Any], problem: str) -> None:
    refused = await api.post("/v1/webhooks", ADMIN, body)
    assert (refused.status, refused.body["error"]["code"]) == (422, "invalid_body"), refused.body
    assert problem in str(refused.body["error"]), refused.body


def test_only_the_admins_registrations_and_deletes_were_written(stack: Stack) -> None:
    # Given the tests above (the refusals among them)
    # When the endpoints' commands are read (the agent's own timer writes RetryWebhookDeliveries there too)
    kinds = sorted(Envelope.from_bytes(message.value()).type
                   for message in read_topic(stack.bootstrap, stack.topic("webhooks.commands"), idle_seconds=1.0))
    # Then they are the two registrations (a replay finds its endpoint and writes nothing) and the two
    # deletes: no refused request wrote anything
    assert [kind for kind in kinds if kind != "RetryWebhookDeliveries"] == [
        "DeleteWebhookEndpoint", "DeleteWebhookEndpoint", "RegisterWebhookEndpoint", "RegisterWebhookEndpoint"]
