"""CPU per reservation of the runtime's hot path alone, in one process, without Kafka.

    .venv/bin/python -m bench.hot_path [--events 200000] [--skus 10000] [--repeats 5]

The real worker's per-event work is `Task.process` (decode, checks, state, decision, outputs) and,
per commit, the changelog records and the RocksDB write (`Task.changes`, `PartitionStore.write`,
`Task.committed`). This runs exactly that on the workload of `bench/reservations.py` (the same
catalog, opening stock and reservations, with real RocksDB stores in a temporary directory), with
outputs counted instead of produced, and a commit every `FC_COMMIT_BATCH_SIZE` events as under a
backlog. It prints the process CPU time per reservation (median of the repeats): a change to the hot
path shows here within a few percent, where the end-to-end figures of `make bench` move with
whatever else the shared machine runs. It is not a figure to compare with the peers.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import confluent_kafka

from bench.reservations import Workload
from streams import topics
from streams.agents import catalog, inventory
from streams.partitioning import partition_for
from streams.runtime.stores import PartitionStore
from streams.runtime.task import Task
from streams.settings import Settings

PARTITIONS = 8


class CountedOutputs:
    def __init__(self) -> None:
        self.records = 0
        self.by_topic: dict[str, int] = {}

    def produce(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None) -> None:
        self.records += 1
        self.by_topic[topic] = self.by_topic.get(topic, 0) + 1


class NoOutsideCalls:
    def start(self, call: Any, done: Any) -> None:
        raise AssertionError("the reservation path makes no outside call")


def messages(workload: Workload, envelopes: list[Any]) -> list[confluent_kafka.Message]:
    """The records as the consumer hands them over: keyed and partitioned as the project writes them."""
    out = []
    for offset, envelope in enumerate(envelopes):
        spec, key = topics.route(envelope)
        out.append(confluent_kafka.Message(topic=spec.name, partition=partition_for(key, PARTITIONS), offset=offset,
                                           key=key, value=envelope.to_bytes()))
    return out


def run_once(workload: Workload, batch: int, root: Path) -> float:
    """CPU seconds per reservation over the workload's reservations, after its setup."""
    agents = [catalog.agent(), inventory.agent()]
    outputs = CountedOutputs()
    tasks = {}
    for partition in range(PARTITIONS):
        stores = {agent.table.name: PartitionStore(root / f"{agent.table.name}-{partition}") for agent in agents}
        tasks[partition] = Task(partition, PARTITIONS, "", agents, stores, outputs, NoOutsideCalls())

    def process(records: list[confluent_kafka.Message]) -> None:
        for start in range(0, len(records), batch):
            for message in records[start:start + batch]:
                tasks[message.partition()].process(message)
            for task in tasks.values():
                for table, store in task.stores.items():
                    changes = task.changes(table)
                    if changes:
                        store.write(changes, start)
                task.committed()

    process(messages(workload, workload.setup))
    reservations = messages(workload, workload.reservations)
    # The answers on inventory.reservations only: the reservations that take a SKU's last units also
    # announce on inventory.availability (it goes out of stock).
    answers = topics.full_name("", topics.INVENTORY_RESERVATIONS.name)
    answered = outputs.by_topic.get(answers, 0)
    began = time.process_time()
    process(reservations)
    spent = time.process_time() - began
    if outputs.by_topic.get(answers, 0) - answered != len(reservations):
        raise SystemExit(f"{outputs.by_topic.get(answers, 0) - answered} answers on {answers} for "
                         f"{len(reservations)} reservations: each must have exactly one answer (a dead letter?)")
    for task in tasks.values():
        task.close()
    return spent / len(reservations)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--skus", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    workload = Workload(skus=args.skus, events=args.events, seed=1)
    batch = Settings().commit_batch_size
    figures = []
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="fc-hot-path-") as root:
            figures.append(run_once(workload, batch, Path(root)) * 1e6)
        print(f"[bench] hot path run {repeat + 1}/{args.repeats}: {figures[-1]:.1f} CPU µs per reservation", flush=True)
    print(f"[bench] hot path: median {statistics.median(figures):.1f} CPU µs per reservation "
          f"({args.events} reservations over {args.skus} SKUs, commits of {batch}; python -m bench.hot_path)")


if __name__ == "__main__":
    main()
