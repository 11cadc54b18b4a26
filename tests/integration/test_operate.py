"""Operating the workers on the real stack: JSON logs (FC_LOG_FORMAT=json) with the event in hand,
`GET /fc/topology` on each worker, and `python -m streams.topology` over all of them."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
import uuid
from typing import Any

import confluent_kafka
import pytest

from streams import agents, topics
from streams.partitioning import CONFLUENT_PARTITIONER
from streams.settings import PROJECT_ROOT
from tests.conftest import Api, token
from tests.harness import WORKER_READ_HEADERS, Stack, eventually, http_status
from tests.integration.orders_api import place, settled

STACK_ENV = {"FC_LOG_FORMAT": "json"}
STACK_WORKERS: list[dict[str, str]] = [{}, {}]
VENDOR = token("vendor")


def worker_json(url: str, path: str) -> Any:
    with urllib.request.urlopen(urllib.request.Request(f"{url}{path}", headers=WORKER_READ_HEADERS), timeout=5) as reply:
        return json.loads(reply.read())


def log_objects(stack: Stack) -> list[dict[str, Any]]:
    return [json.loads(line) for worker in stack.workers.values()
            for line in worker.log_path.read_text().splitlines() if line.strip()]


def produce(stack: Stack, key: bytes, value: bytes) -> tuple[int, int]:
    """One record on catalog.products, partitioned as the project does; its partition and offset."""
    delivered: list[confluent_kafka.Message] = []
    producer = confluent_kafka.Producer({"bootstrap.servers": stack.bootstrap, "partitioner": CONFLUENT_PARTITIONER})
    producer.produce(stack.topic("catalog.products"), key=key, value=value, on_delivery=lambda err, msg: delivered.append(msg))
    producer.flush(10)
    assert delivered and delivered[0].error() is None
    return delivered[0].partition(), delivered[0].offset()


@pytest.fixture
def api(stack: Stack, http) -> Api:  # type: ignore[no-untyped-def]
    assert stack.gateway is not None
    return Api(stack.gateway.url, http)


def test_a_dead_lettered_record_is_logged_with_its_topic_partition_offset_and_event_id(stack: Stack) -> None:
    # Given a record that is no JSON and an event of a type that does not belong on the catalog topic
    garbage_at = produce(stack, b"acme/LOG-BROKEN-1", b"{not json")
    event_id = str(uuid.uuid4())
    wrong_type = {"event_id": event_id, "type": "ReserveStock", "tenant": "acme", "occurred_at": "2026-11-24T10:00:00Z",
                  "payload": {"order_id": str(uuid.uuid4()), "sku": "LOG-BROKEN-2", "quantity": 1}}
    wrong_at = produce(stack, b"acme/LOG-BROKEN-2", json.dumps(wrong_type).encode())
    topic = stack.topic("catalog.products")

    # When the worker owning each dead-letters it
    def letters() -> dict[tuple[int, int], dict[str, Any]]:
        found = {(o["partition"], o["offset"]): o for o in log_objects(stack)
                 if o["message"].startswith("dead-lettered") and o.get("topic") == topic}
        return found if {garbage_at, wrong_at} <= set(found) else {}

    found = eventually(letters, 60, "both records dead-lettered in the logs")
    # Then each line names the record; the one that decoded also its event id
    garbage, wrong = found[garbage_at], found[wrong_at]
    assert garbage["level"] == "WARNING" and garbage["logger"] == "streams.runtime.task"
    assert garbage["process"] == "worker" and "invalid event" in garbage["message"]
    assert "event_id" not in garbage
    assert wrong["event_id"] == event_id and "ReserveStock does not belong" in wrong["message"]


async def test_topology_lists_agents_topics_and_the_partitions_each_worker_holds(api: Api, stack: Stack) -> None:
    # Given some traffic through the gateway, processed to the end
    for n in range(8):
        sku = f"TOPO-{n}"
        reply = await api.post("/v1/products", VENDOR, {"sku": sku, "name": sku, "price": {"amount": 100, "currency": "EUR"}})
        assert reply.status == 202
    stack.wait_drained()
    held: dict[str, list[int]] = {}
    for worker in stack.workers.values():
        # When an operator asks each worker
        topology = worker_json(worker.url, "/fc/topology")
        assignment = worker_json(worker.url, "/fc/assignment")
        # Then it names its group, every agent with its source topics and tables ...
        assert topology["group"] == stack.app_id and topology["ready"] is True
        assert [agent["name"] for agent in topology["agents"]] == list(agents.NAMES)
        for agent in topology["agents"]:
            assert agent["sources"] and all(source.startswith(stack.namespace) for source in agent["sources"])
        assert {table["name"] for table in topology["tables"]} == set(assignment["tables"])
        # ... and holds the partitions it serves, active only (no standby replicas)
        active = topology["partitions"]["active"]
        assert all(served == active for served in assignment["tables"].values())
        assert topology["partitions"]["standby"] == []
        held[worker.url] = active
        # ... with a lag row per source topic and partition it holds
        consumed = {source for agent in topology["agents"] for source in agent["sources"]}
        assert {(row["topic"], row["partition"]) for row in topology["lag"]} == {(t, p) for t in consumed for p in active}
    # The workers share the partitions between them
    assert sorted(p for ps in held.values() for p in ps) == list(range(stack.partitions))
    assert all(held.values()), held


async def test_lag_is_zero_once_the_workers_have_caught_up(seeded_api: Api, stack: Stack) -> None:
    # Given orders, whose hops the agents write to each other in transactions (commit markers
    # follow their records on the topics they consume), processed to the end
    for n in range(3):
        order_id = await place(seeded_api, f"lag-{n}", {"MUG-1": 1})
        assert (await settled(seeded_api, order_id, f"lag-{n}"))["status"] in {"payment_pending", "cancelled"}
    stack.wait_drained()

    def lags() -> list[Any]:
        rows = [row for worker in stack.workers.values() for row in worker_json(worker.url, "/fc/topology")["lag"]]
        return rows if rows and all(row["lag"] == 0 for row in rows) else []

    rows = eventually(lags, 30, "every partition's lag 0", pause=0.5)
    # Then the topics written in transactions were read past their markers too
    for name in (topics.CATALOG_PRODUCTS.name, topics.INVENTORY_RESERVATIONS.name):
        assert any(row["high"] for row in rows if row["topic"] == stack.topic(name)), name


def test_topology_needs_the_credential(stack: Stack) -> None:
    assert http_status(f"{stack.workers[0].url}/fc/topology") == 401


def topology_cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    # No FC_WORKER_URLS: the CLI finds the workers in the app's consumer groups, as the gateway does
    env = {k: v for k, v in stack.env().items() if k != "FC_WORKER_URLS"}
    env["FC_WORKER_URLS"] = "http://127.0.0.1:9"  # a seed that answers nothing is listed as such
    return subprocess.run([sys.executable, "-m", "streams.topology", *args], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=60)


def test_the_cli_prints_each_worker_found_in_kafka(stack: Stack) -> None:
    # When an operator runs the CLI
    table = topology_cli(stack)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    # Then there is a header and a line per worker with its group, agents, partitions and lag ...
    assert lines[0].split() == ["WORKER", "GROUP", "AGENTS", "PARTITIONS", "STANDBY", "LAG"]
    for worker in stack.workers.values():
        (line,) = [line for line in lines if line.startswith(worker.url + " ")]
        assert stack.app_id in line and ",".join(agents.NAMES) in line
    # ... and the seed that does not answer says so
    assert any(line.startswith("http://127.0.0.1:9 ") and "no answer" in line for line in lines)
    # And --json gives each worker's whole topology
    answers = json.loads(topology_cli(stack, "--json").stdout)
    by_url = {answer["url"]: answer for answer in answers}
    for worker in stack.workers.values():
        assert by_url[worker.url]["topology"]["partitions"]["active"] == worker_json(worker.url, "/fc/topology")["partitions"]["active"]


def test_every_line_of_the_worker_and_gateway_logs_is_one_json_object(stack: Stack) -> None:
    assert stack.gateway is not None
    for process in [*stack.workers.values(), stack.gateway]:
        lines = [line for line in process.log_path.read_text().splitlines() if line.strip()]
        assert lines, process.name
        for line in lines:
            try:
                body = json.loads(line)
            except ValueError:
                raise AssertionError(f"{process.name}: not JSON: {line!r}") from None
            assert isinstance(body, dict) and {"time", "level", "logger", "message", "process"} <= set(body), line
            assert body["time"].endswith("Z")
    gateway_lines = [json.loads(line) for line in stack.gateway.log_path.read_text().splitlines() if line.strip()]
    assert any(line["logger"] == "aiohttp.access" for line in gateway_lines)
    assert {line["process"] for line in gateway_lines} == {"gateway"}
