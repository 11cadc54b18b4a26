"""A worker stops on SIGTERM by itself, also when its broker is already gone: what is done is
committed if the broker answers, the group is left, and the process exits instead of waiting
for a broker that will not come back. This module runs its own broker, to stop it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import confluent_kafka
import pytest

from devtools.kafka import KafkaBroker
from streams import topics
from streams.models import Envelope, Money, ProductUpserted
from streams.partitioning import CONFLUENT_PARTITIONER
from streams.settings import load
from tests.harness import RUNS_DIR, WORKER_READ_HEADERS, Stack, eventually, free_port, http_status

PRODUCTS = 20000


@pytest.fixture
def broker() -> Iterator[KafkaBroker]:
    data_dir = RUNS_DIR / f"kafka-stop-{uuid.uuid4().hex[:8]}"
    broker = KafkaBroker(free_port(), free_port(), data_dir, load().kafka_cache_dir)
    broker.start(log_file=data_dir.with_suffix(".log"))
    try:
        yield broker
    finally:
        broker.stop()


def test_sigterm_with_the_broker_gone_stops_the_worker_by_itself(broker: KafkaBroker) -> None:
    # Given a worker busy with a backlog of products
    stack = Stack(bootstrap=broker.bootstrap, name="stop")
    worker = stack.start_worker(0)
    producer = confluent_kafka.Producer({"bootstrap.servers": broker.bootstrap, "partitioner": CONFLUENT_PARTITIONER})
    for n in range(PRODUCTS):
        event = Envelope.new("acme", ProductUpserted(sku=f"STOP-{n}", name="backlog", price=Money(amount=100, currency="EUR")))
        spec, key = topics.route(event)
        producer.produce(stack.topic(spec.name), event.to_bytes(), key)
    producer.flush(30)
    eventually(lambda: http_status(f"{worker.url}/state/catalog?key=acme/STOP-0", WORKER_READ_HEADERS) == 200, 60,
               "the worker committing the first products of the backlog")

    # When the broker stops first, and then the worker is asked to stop
    broker.stop()
    worker.stop(timeout=60)

    # Then the worker exited by itself (a worker still running after 60 s would have been SIGKILLed)
    assert worker.popen is not None and worker.popen.returncode == 0, worker.log_tail()
    log = worker.log_path.read_text()
    assert "stopped (" in log and "stopped (0 commits" not in log
