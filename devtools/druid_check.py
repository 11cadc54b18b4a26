"""End-to-end check of devtools.druid: Kafka transactions in, Druid SQL out.

    python -m devtools.druid_check             # a throwaway Druid and Kafka, the check, both stopped
    python -m devtools.druid_check --running   # against `python -m devtools.druid run` (default ports)

A throwaway Kafka broker on free ports (as the tests start one), a topic, 20 JSON events written
in one transaction by a transactional confluent-kafka producer; a Kafka supervisor (read_committed,
from the earliest offset, rolled up per minute with a `count` and a `longSum` metric); then Druid
SQL is polled until `SUM("count")` is 20. A second transaction of 20 events, produced while the
ingestion task is already running, measures the steady-state lag from commit to visible in SQL
(three times).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import confluent_kafka
from confluent_kafka.admin import AdminClient, NewTopic

from devtools.druid import DATA_DIR, DruidCluster
from devtools.kafka import KafkaBroker
from devtools.stack import free_port
from streams.settings import load

EVENTS_PER_BATCH = 20
SKUS = ("MUG-1", "MUG-2", "PLATE-1")


def supervisor_spec(datasource: str, topic: str, bootstrap: str) -> dict[str, Any]:
    return {
        "type": "kafka",
        "spec": {
            "dataSchema": {
                "dataSource": datasource,
                "timestampSpec": {"column": "ts", "format": "iso"},
                "dimensionsSpec": {"dimensions": ["sku"]},
                "metricsSpec": [
                    {"type": "count", "name": "count"},
                    {"type": "longSum", "name": "quantity", "fieldName": "quantity"},
                ],
                "granularitySpec": {
                    "type": "uniform", "segmentGranularity": "HOUR", "queryGranularity": "MINUTE", "rollup": True,
                },
            },
            "ioConfig": {
                "topic": topic,
                "inputFormat": {"type": "json"},
                # isolation.level is read_committed unless set: Druid skips aborted transactions.
                "consumerProperties": {"bootstrap.servers": bootstrap},
                "useEarliestOffset": True,
                "taskCount": 1,
                "replicas": 1,
                "taskDuration": "PT10M",
                "completionTimeout": "PT20M",
            },
            "tuningConfig": {"type": "kafka"},
        },
    }


def produce_batch(bootstrap: str, topic: str, transactional_id: str, start: int) -> float:
    """One transaction of EVENTS_PER_BATCH events; returns the monotonic time of the commit."""
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id})
    producer.init_transactions(30)
    producer.begin_transaction()
    for number in range(start, start + EVENTS_PER_BATCH):
        event = {
            "ts": datetime.now(UTC).isoformat(),
            "sku": SKUS[number % len(SKUS)],
            "quantity": number % 3 + 1,
        }
        producer.produce(topic, key=event["sku"], value=json.dumps(event))
    producer.commit_transaction(30)
    return time.monotonic()


def wait_for_count(druid: DruidCluster, datasource: str, expected: int, timeout: float) -> tuple[float, Any]:
    """Poll SQL until SUM("count") == expected; returns (when it did, the last answer)."""
    query = f'SELECT SUM("count") AS events, SUM(quantity) AS quantity, COUNT(*) AS "rows" FROM "{datasource}"'
    deadline = time.monotonic() + timeout
    answer: Any = None
    while time.monotonic() < deadline:
        try:
            answer = druid.sql(query)
        except RuntimeError as exc:  # "Object not found" until the first segment is announced
            answer = str(exc)
        else:
            if answer and answer[0]["events"] == expected:
                return time.monotonic(), answer
        time.sleep(0.05)
    raise AssertionError(f"SUM(count) never reached {expected} within {timeout:.0f}s; last answer: {answer}")


def check(druid: DruidCluster, bootstrap: str, lag_batches: int = 3) -> None:
    suffix = uuid.uuid4().hex[:8]
    topic, datasource = f"druid-check-{suffix}", f"druid_check_{suffix}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
    producer = f"{topic}-producer"

    produce_batch(bootstrap, topic, producer, 0)
    spec = supervisor_spec(datasource, topic, bootstrap)
    print("[check] supervisor spec:\n" + json.dumps(spec, indent=2), flush=True)
    submitted = time.monotonic()
    print(f"[check] supervisor: {druid.submit_supervisor(spec)}", flush=True)
    try:
        visible, answer = wait_for_count(druid, datasource, EVENTS_PER_BATCH, timeout=300)
        print(f"[check] first {EVENTS_PER_BATCH} events in SQL {visible - submitted:.1f}s after the supervisor "
              f"was submitted (the task's start included): {answer}", flush=True)
        lags = []
        for batch in range(1, lag_batches + 1):
            committed = produce_batch(bootstrap, topic, producer, batch * EVENTS_PER_BATCH)
            visible, answer = wait_for_count(druid, datasource, (batch + 1) * EVENTS_PER_BATCH, timeout=120)
            lags.append(round((visible - committed) * 1000))
        print(f"[check] ingest lag, commit to SQL, with the task running: {lags} ms; last answer {answer}", flush=True)
        rows = druid.sql(f'SELECT __time, sku, "count", quantity FROM "{datasource}" ORDER BY __time')
        print(f"[check] rolled-up rows: {rows}", flush=True)
        print(f"[check] supervisor status: {json.dumps(druid.supervisor_status(datasource))}", flush=True)
    finally:
        druid.terminate_supervisor(datasource)
    print("[check] ok: Kafka transactions -> Druid SQL", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--running", action="store_true", help="use the Druid that `devtools.druid run` serves")
    args = parser.parse_args()
    run_dir = DATA_DIR / "checks" / uuid.uuid4().hex[:8]
    kafka = KafkaBroker(free_port(), free_port(), run_dir / "kafka", load().kafka_cache_dir)
    druid = DruidCluster() if args.running else DruidCluster(data_dir=run_dir / "druid")
    try:
        if not args.running:
            started = time.monotonic()
            druid.start()
            druid.wait_ready()
            print(f"[check] Druid ready: SQL answers {time.monotonic() - started:.0f}s after start", flush=True)
        kafka.start(log_file=run_dir / "kafka.log")
        check(druid, kafka.bootstrap)
    finally:
        if not args.running:
            druid.stop()
        kafka.stop()
    shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
