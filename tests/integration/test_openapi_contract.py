"""Every door tried: schemathesis over the served OpenAPI document against a running gateway.

Given a stack (broker, worker, gateway) with the catalog and stock fixtures, a campaign and an order,
when schemathesis sends every operation of `/openapi.json` examples, boundary cases (its coverage
phase) and random valid and invalid requests, with a valid token of a role the operation takes,
then no answer is a 5xx; every answer's status code, content type, headers and body are the
document's; an invalid request is refused with a 4xx; and every command on the topics was answered
as accepted, so a refused request wrote nothing.

Reproducible: a fixed seed, derandomized generation, no example database. Bounded: `MAX_EXAMPLES`
per operation and phase (`FC_CONTRACT_EXAMPLES=300` for a deeper run), and long polls shortened to
`MAX_FUZZ_WAIT` (a `wait=30` on an order that does not change would hold a case for 30 s). The cases
run are counted per operation and printed (`-s`).
"""

from __future__ import annotations

import asyncio
import json
import os
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from devtools.replay import read_fixture, replay
from streams.models import Envelope
from tests.conftest import Api, read_topic, token
from tests.harness import Stack, eventually_async
from tests.integration.conftest import FIXTURES, stack_settings

# Reads that miss (a random SKU) wait this long for the key to appear instead of 3 s (so the fixtures
# are fed with waits of their own, not with `seed_catalog_and_stock`'s reads). No rate limits: a 429
# is documented, but one that depends on how fast this machine sends would make the run unrepeatable.
# Slot 0: every agent; slot 1: the webhooks agents, whose tables the webhook routes read.
STACK_WORKERS = [{}, {"agents": "webhooks"}]
STACK_ENV = {"FC_READ_MISS_WAIT": "0.1", "GATEWAY_RATE_LIMIT_WRITES": "off", "GATEWAY_RATE_LIMIT_READS": "off",
             "GATEWAY_RATE_LIMIT_LONG_POLLS": "off", "GATEWAY_RATE_LIMIT_PER_ADDRESS": "off"}

SEED = 20261201
MAX_EXAMPLES = int(os.environ.get("FC_CONTRACT_EXAMPLES", "50"))
MAX_FUZZ_WAIT = 0.5
REQUEST_TIMEOUT = 30.0
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection, unsupported_method]
CONFIG = schemathesis.Config.from_dict({
    "seed": SEED,
    # Tokens are the test's (valid ones, per role), not generated: the auth matrix is tested apart.
    "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none",
                   "with-security-parameters": False},
    "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True}, "fuzzing": {"enabled": True},
               "stateful": {"enabled": False}},
    "request-timeout": REQUEST_TIMEOUT,
})
# The document's example order id stands for the order placed before fuzzing (ids are made by the gateway).
DOCUMENTED_ORDER_ID = "5b0c6a4e-8f3a-4f7e-9a52-0d8f6e2b1c37"
TOKENS = {role: token(role) for role in ("customer", "vendor", "admin")}

COMMITTED = Path(__file__).resolve().parents[2] / "schemas" / "openapi.json"
# The committed document (the gateway serves the same: `served` checks it); the base URL is the
# module's gateway, known once its stack runs.
schema = schemathesis.openapi.from_path(COMMITTED, config=CONFIG)
cases: Counter[str] = Counter()
statuses: Counter[int] = Counter()
answers: list[tuple[str, int, Any]] = []  # (operation, status, body) of every write


async def _prepare(stack: Stack) -> str:
    """The fixtures' catalog and stock (each waited for), the documented campaign `mug-club` and an
    order; its id."""
    assert stack.gateway is not None
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        api = Api(stack.gateway.url, session)
        for fixture, path in (("catalog.jsonl", "/v1/products/{}"), ("opening-stock.jsonl", "/v1/inventory/{}")):
            await replay(stack_settings(stack), [FIXTURES / fixture], progress=False)
            for event in read_fixture(FIXTURES / fixture):
                url = path.format(event.payload.sku)  # type: ignore[attr-defined]

                async def served(url: str = url, stock: bool = fixture == "opening-stock.jsonl") -> bool:
                    reply = await api.get(url, TOKENS["vendor"])
                    return reply.status == 200 and (not stock or reply.body["on_hand"] > 0)

                await eventually_async(served, 30, f"{url} served")
        opened = await api.post("/v1/campaigns", TOKENS["vendor"], {
            "campaign_id": "mug-club", "sku": "MUG-1", "group_price": {"amount": 999, "currency": "EUR"},
            "target_quantity": 2, "max_quantity": 3, "ends_at": "2099-12-31T23:00:00Z"})
        placed = await api.post("/v1/orders", TOKENS["customer"], {"lines": [{"sku": "TEA-1", "quantity": 1}]})
        answers.extend([("POST /v1/campaigns", opened.status, opened.body),
                        ("POST /v1/orders", placed.status, placed.body)])
        assert opened.status == 202 and placed.status == 202, (opened.body, placed.body)
        return str(placed.body["order_id"])


@pytest.fixture(scope="module")
def order_id(stack: Stack) -> str:
    return asyncio.run(_prepare(stack))


@pytest.fixture(scope="module")
def gateway_url(stack: Stack, order_id: str) -> str:
    """The module's gateway, prepared, after checking that it serves the committed document."""
    assert stack.gateway is not None
    with urllib.request.urlopen(f"{stack.gateway.url}/openapi.json", timeout=10) as response:
        assert json.load(response) == _committed(), "the gateway serves another document than schemas/openapi.json"
    return stack.gateway.url


def _committed() -> dict[str, Any]:
    return json.loads(COMMITTED.read_text())  # type: ignore[no-any-return]


def _role(case: schemathesis.Case) -> str:
    roles = case.operation.definition.raw.get("x-roles") or ["customer"]
    return "vendor" if "vendor" in roles else roles[0]


def _shorten_long_poll(case: schemathesis.Case) -> None:
    wait = (case.query or {}).get("wait")
    if isinstance(wait, int | float) and not isinstance(wait, bool) and wait > MAX_FUZZ_WAIT:
        case.query["wait"] = MAX_FUZZ_WAIT


@schema.parametrize()
def test_every_answer_conforms_to_the_document(case: schemathesis.Case, gateway_url: str, order_id: str) -> None:
    # Given a token of a role the operation takes, the documented order id standing for a real order
    _shorten_long_poll(case)
    if case.path_parameters and case.path_parameters.get("order_id") == DOCUMENTED_ORDER_ID:
        case.path_parameters["order_id"] = order_id
    # When the case is sent
    response = case.call(base_url=gateway_url, headers={"Authorization": f"Bearer {TOKENS[_role(case)]}"},
                         timeout=REQUEST_TIMEOUT)
    cases[case.operation.label] += 1
    statuses[response.status_code] += 1
    if case.method.upper() in ("POST", "DELETE"):
        try:
            body = response.json()
        except ValueError:
            body = None
        answers.append((case.operation.label, response.status_code, body))
    # Then the answer is no 5xx and is what the document says, and invalid input got a 4xx
    case.validate_response(response, checks=CHECKS)


# What each command the gateway writes is identified by, and which answers said it was written.
COMMAND_TOPICS = ("catalog.products", "inventory.commands", "orders.commands", "campaigns.commands",
                  "shipments.commands", "webhooks.commands")
COMMAND_IDS = {
    "ProductUpserted": "sku", "AdjustStock": "adjustment_id", "PlaceOrder": "order_id", "CancelOrder": "order_id",
    "OpenCampaign": "campaign_id", "CancelCampaign": "campaign_id", "PledgeToCampaign": "pledge_id",
    "WithdrawPledge": "pledge_id", "CreateShipment": "shipment_id", "RegisterWebhookEndpoint": "endpoint_id",
    "DeleteWebhookEndpoint": "endpoint_id", "EnableWebhookEndpoint": "endpoint_id",
}
ANSWER_IDS = ("sku", "adjustment_id", "order_id", "campaign_id", "pledge_id", "shipment_id", "endpoint_id")


def _written_ids() -> set[str]:
    """Ids named by the answers to writes: accepted (2xx), or refused by an agent after the write
    (a 404/409 whose details name the adjustment or pledge)."""
    named = set()
    for _, status, body in answers:
        if not isinstance(body, dict):
            continue
        if status < 300:
            found = body
        elif status in (404, 409):
            found = (body.get("error") or {}).get("details")
        else:
            continue
        if isinstance(found, dict):
            named.update(str(found[name]) for name in ANSWER_IDS if found.get(name) is not None)
    return named


def test_a_refused_request_wrote_nothing(stack: Stack) -> None:
    # Given every answer the fuzzer got to a write (the test above ran first)
    assert cases, "the contract test ran no case"
    written = _written_ids()
    # When the command topics are read (events made by the gateway: uuid4 ids; the fixtures' and the
    # agents' own have uuid5 ids derived from their cause)
    fixture_ids = {e.event_id for name in ("catalog.jsonl", "opening-stock.jsonl")
                   for e in read_fixture(FIXTURES / name)}
    unanswered, checked = [], 0
    for topic in COMMAND_TOPICS:
        for message in read_topic(stack.bootstrap, stack.topic(topic)):
            event = Envelope.from_bytes(message.value())
            if event.type not in COMMAND_IDS or event.event_id in fixture_ids or event.event_id.version != 4:
                continue
            command_id = str(getattr(event.payload, COMMAND_IDS[event.type]))
            checked += 1
            if command_id not in written:
                unanswered.append(f"{event.type} {command_id}")
    # Then each was answered as written, and no webhook without a valid signature got through
    assert unanswered == []
    assert read_topic(stack.bootstrap, stack.topic("payments.webhooks"), idle_seconds=1.0) == []
    assert read_topic(stack.bootstrap, stack.topic("shipping.tracking"), idle_seconds=1.0) == []
    # and every operation of the document was tried
    operations = {f"{method.upper()} {path}" for path, item in _committed()["paths"].items() for method in item}
    assert set(cases) == operations
    print(f"\n[contract] {sum(cases.values())} cases over {len(cases)} operations, {checked} commands written: "
          + ", ".join(f"{label} {count}" for label, count in sorted(cases.items()))
          + "; answers by status: " + ", ".join(f"{status} {count}" for status, count in sorted(statuses.items())))
