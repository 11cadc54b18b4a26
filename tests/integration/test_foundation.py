"""The foundation against the real broker: catalog slice, auth errors, partitioning agreement,
dead letters, and a second worker taking over partitions."""

from __future__ import annotations

import asyncio
import json
import urllib.request
import uuid

import confluent_kafka
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from streams.partitioning import CONFLUENT_PARTITIONER, partition_for
from tests.conftest import Api, read_topic, token
from tests.harness import WORKER_READ_HEADERS, Stack, eventually, http_status

VENDOR = token("vendor")
CUSTOMER = token("customer")


def product(sku: str, amount: int = 1000) -> dict[str, object]:
    return {"sku": sku, "name": f"Product {sku}", "price": {"amount": amount, "currency": "EUR"}}


@pytest.fixture
def api(stack: Stack, http) -> Api:  # type: ignore[no-untyped-def]
    assert stack.gateway is not None
    return Api(stack.gateway.url, http)


async def test_a_product_written_is_read_back_at_once(api: Api) -> None:
    # Given a vendor posts a product
    posted = await api.post("/v1/products", VENDOR, product("LAMP-1", 2599))
    assert posted.status == 202 and posted.headers["Location"] == "/v1/products/LAMP-1"
    # When a customer of the same tenant reads it right away
    read = await api.get("/v1/products/LAMP-1", CUSTOMER)
    # Then the read waited for the table instead of answering 404
    assert read.status == 200
    assert read.body["price"] == {"amount": 2599, "currency": "EUR"} and read.body["name"] == "Product LAMP-1"


async def test_another_tenant_does_not_see_the_product(api: Api) -> None:
    await api.post("/v1/products", VENDOR, product("DESK-1"))
    assert (await api.get("/v1/products/DESK-1", CUSTOMER)).status == 200
    other = await api.get("/v1/products/DESK-1", token("customer", tenant="globex"))
    assert other.status == 404 and other.body["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("who", "body", "status", "code"),
    [
        (None, product("X-1"), 401, "missing_token"),
        ("not-a-jwt", product("X-1"), 401, "invalid_token"),
        (token("customer"), product("X-1"), 403, "forbidden"),
        (token("vendor"), {"sku": "X-1", "name": "no price"}, 422, "invalid_body"),
        (token("vendor"), {"sku": "X-1", "name": "n", "price": {"amount": -1, "currency": "EUR"}}, 422, "invalid_body"),
        (token("vendor"), {"sku": "X-1", "name": "n", "price": {"amount": 1.5, "currency": "EUR"}}, 422, "invalid_body"),
        (token("vendor"), {"sku": "X-1", "name": "n", "price": {"amount": 1, "currency": "euro"}}, 422, "invalid_body"),
    ],
)
async def test_bad_requests_get_json_errors_and_write_nothing(
    api: Api, stack: Stack, who: str | None, body: object, status: int, code: str
) -> None:
    reply = await api.post("/v1/products", who, body)
    assert reply.status == status and reply.body["error"]["code"] == code
    assert (await api.get("/v1/products/X-1", CUSTOMER)).status == 404


async def test_an_expired_token_is_refused(api: Api) -> None:
    import jwt

    from tests.harness import JWT_SECRET

    expired = jwt.encode({"sub": "a", "role": "vendor", "tenant": "acme", "exp": 1}, JWT_SECRET, algorithm="HS256")
    reply = await api.get("/v1/products/LAMP-1", expired)
    assert reply.status == 401 and reply.body["error"]["code"] == "token_expired"


async def test_a_worker_serves_state_and_assignment_only_with_the_gateways_credential(api: Api, stack: Stack) -> None:
    await api.post("/v1/products", VENDOR, product("SAFE-1"))
    assert (await api.get("/v1/products/SAFE-1", CUSTOMER)).status == 200  # the gateway's reads pass
    worker = stack.workers[0].url
    forged = {"Authorization": "Bearer " + "0" * 64}
    for path in ("/state/catalog?key=acme/SAFE-1", "/fc/assignment"):
        assert http_status(f"{worker}{path}") == 401
        assert http_status(f"{worker}{path}", forged) == 401
        assert http_status(f"{worker}{path}", WORKER_READ_HEADERS) == 200
    # Readiness stays open to a probe, and says nothing more than ready or not
    with urllib.request.urlopen(f"{worker}/fc/ready", timeout=5) as response:
        assert json.load(response) == {"ready": True}
    request = urllib.request.Request(f"{worker}/fc/ready", headers=WORKER_READ_HEADERS)
    with urllib.request.urlopen(request, timeout=5) as response:
        assert json.load(response)["partitions"]


async def test_gateway_worker_and_plain_producer_partition_keys_alike(api: Api, stack: Stack) -> None:
    # Given SKUs in the catalog and a plain confluent-kafka producer with the project's partitioner
    skus = [f"PART-{n}" for n in range(24)]
    for sku in skus:
        assert (await api.post("/v1/products", VENDOR, product(sku))).status == 202
    plain = confluent_kafka.Producer({"bootstrap.servers": stack.bootstrap, "partitioner": CONFLUENT_PARTITIONER})
    probe_topic = stack.topic("partition-probe")
    admin = AdminClient({"bootstrap.servers": stack.bootstrap})
    admin.create_topics([NewTopic(probe_topic, stack.partitions, 1)])[probe_topic].result()
    for sku in skus:
        plain.produce(probe_topic, key=f"acme/{sku}".encode(), value=b"{}")
    plain.flush(10)
    # When the gateway writes stock adjustments and the orders agent writes reservations
    for sku in skus:
        assert (await api.post(f"/v1/inventory/{sku}/adjustments", VENDOR, {"delta": 1, "reason": "r"})).status == 202
        assert (await api.post("/v1/orders", CUSTOMER, {"lines": [{"sku": sku, "quantity": 1}]})).status == 202
    messages = read_topic(stack.bootstrap, stack.topic("inventory.commands"), expect=2 * len(skus))
    by_writer: dict[str, dict[bytes, int]] = {"AdjustStock": {}, "ReserveStock": {}}
    for message in messages:
        by_writer[json.loads(message.value())["type"]][message.key()] = message.partition()
    plain_partitions = {
        m.key(): m.partition() for m in read_topic(stack.bootstrap, probe_topic, expect=len(skus))
    }
    # Then all three put every key on the partition murmur2 names
    expected = {f"acme/{sku}".encode(): partition_for(f"acme/{sku}".encode(), stack.partitions) for sku in skus}
    assert by_writer["AdjustStock"] == expected  # the gateway
    assert by_writer["ReserveStock"] == expected  # a worker
    assert plain_partitions == expected  # a plain confluent-kafka producer
    assert len(set(expected.values())) > 1


async def test_a_malformed_event_is_dead_lettered_and_the_agent_goes_on(api: Api, stack: Stack) -> None:
    # Given garbage and an event of the wrong type on the catalog topic
    producer = confluent_kafka.Producer({"bootstrap.servers": stack.bootstrap, "partitioner": CONFLUENT_PARTITIONER})
    producer.produce(stack.topic("catalog.products"), key=b"acme/BROKEN-1", value=b"{not json")
    wrong_type = {
        "event_id": str(uuid.uuid4()), "type": "ReserveStock", "tenant": "acme", "occurred_at": "2026-11-24T10:00:00Z",
        "payload": {"order_id": str(uuid.uuid4()), "sku": "BROKEN-2", "quantity": 1},
    }
    producer.produce(stack.topic("catalog.products"), key=b"acme/BROKEN-2", value=json.dumps(wrong_type).encode())
    producer.flush(10)
    # When a valid product follows them
    assert (await api.post("/v1/products", VENDOR, product("AFTER-1"))).status == 202
    # Then the agent still serves the valid one, and both bad ones are on the dead-letter topic
    assert (await api.get("/v1/products/AFTER-1", CUSTOMER)).status == 200
    letters = [json.loads(m.value()) for m in read_topic(stack.bootstrap, stack.topic("catalog.products.dlq"), expect=2)]
    errors = sorted(letter["payload"]["error"] for letter in letters)
    assert len(letters) == 2
    assert errors[0].startswith("ReserveStock does not belong on catalog.products")
    assert errors[1].startswith("invalid event")
    assert {letter["payload"]["source_topic"] for letter in letters} == {stack.topic("catalog.products")}


async def test_a_second_worker_takes_over_and_serves_after_the_first_stops(api: Api, stack: Stack) -> None:
    # Given products on every partition and a second worker joining the group
    skus = [f"SCALE-{n}" for n in range(40)]
    for sku in skus:
        assert (await api.post("/v1/products", VENDOR, product(sku))).status == 202
    for sku in skus:
        assert (await api.get(f"/v1/products/{sku}", CUSTOMER)).status == 200
    second = stack.start_worker(1, wait=False)
    await asyncio.to_thread(stack.wait_worker_ready, second)
    await asyncio.to_thread(stack.wait_ready)
    first = stack.workers[0]

    # When both serve: each owns some catalog partitions, the first refuses a key of the second's
    # with 421, and the gateway routes every read to its owner
    def owned(worker_url: str) -> set[int]:
        request = urllib.request.Request(f"{worker_url}/fc/assignment", headers=WORKER_READ_HEADERS)
        with urllib.request.urlopen(request, timeout=5) as response:
            return set(json.load(response)["tables"]["catalog"])

    eventually(lambda: owned(second.url) and owned(first.url), 60, "partitions spread over both workers")
    second_partitions = owned(second.url)
    remote = [sku for sku in skus if partition_for(f"acme/{sku}".encode(), stack.partitions) in second_partitions]
    assert remote, "no key landed on the second worker's partitions"
    assert http_status(f"{first.url}/state/catalog?key=acme/{remote[0]}", WORKER_READ_HEADERS) == 421
    for sku in skus:
        read = await api.get(f"/v1/products/{sku}", CUSTOMER)
        assert read.status == 200 and read.body["sku"] == sku

    # And when the first worker stops, the second serves every product
    await asyncio.to_thread(first.stop)
    await asyncio.to_thread(stack.wait_ready)
    # (the gateway's readiness is cached for a second: it may still say ready from before the
    # second worker began taking the first's partitions, so wait for that worker's own)
    await asyncio.to_thread(stack.wait_worker_ready, second)
    await asyncio.to_thread(stack.wait_ready)
    for sku in skus:
        read = await api.get(f"/v1/products/{sku}", CUSTOMER)
        assert read.status == 200 and read.body["sku"] == sku


def test_a_topic_with_another_partition_count_is_refused_with_advice(stack: Stack) -> None:
    from connectors.kafka import TopicMismatch, ensure_topics, registry_topics
    from streams.settings import Settings

    # Given a namespace whose catalog topic was created with 3 partitions
    namespace = f"mismatch-{uuid.uuid4().hex[:6]}."
    admin = AdminClient({"bootstrap.servers": stack.bootstrap})
    admin.create_topics([NewTopic(f"{namespace}catalog.products", 3, 1)])[f"{namespace}catalog.products"].result()
    # When the project ensures its topics with 8 partitions
    settings = Settings(external_bootstrap=stack.bootstrap, topic_namespace=namespace, topic_partitions=8)
    # Then it refuses, naming the topic and what to do
    with pytest.raises(TopicMismatch, match=r"has 3 partitions but the project expects 8.*FC_TOPIC_PARTITIONS"):
        ensure_topics(settings, registry_topics(settings))
