"""What a commit's flush costs, alone and per partition the transaction touches.

    .venv/bin/python -m bench.transaction_flush [--transactions 50] [--partitions 1,2,4,8,16,32]

A worker's commit flushes the transaction's records (outputs and changelogs) before it sends the
offsets and commits, and its processing thread waits meanwhile: on a worker carrying a few events
of many keys per commit (orders end to end), that wait is most of an event's time through a hop.
Before its first record a transaction registers its partitions with the coordinator
(AddPartitionsToTxn, one round trip); then librdkafka sends each partition's batch in a
ProduceRequest of its own (confluentinc/librdkafka#1700, open; the Java client under Kafka Streams
sends one request per broker), which the broker answers one after the other.

On its own broker (or KAFKA_BOOTSTRAP_SERVERS), for each number of partitions P: --transactions
rounds of one envelope-sized record (350 bytes) to each of P partitions, 20 ms apart, then the
flush (and for a transaction, the commit); once with an idempotent producer and once with a
transactional one, both `linger.ms` 5 as the worker's. Prints the medians and the slope per
partition of the transactional flush.
"""

from __future__ import annotations

import argparse
import statistics
import time

import confluent_kafka

from bench.common import broker, create_topics, int_list, progress
from streams.settings import load

RECORD = b"x" * 350
TOPIC = "bench-flush"
GAP_SECONDS = 0.02


def rounds(bootstrap: str, partitions: int, transactions: int, transactional: bool) -> tuple[float, float]:
    """Median seconds of the flush and of the commit (0 without a transaction)."""
    config = {"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True}
    if transactional:
        config["transactional.id"] = f"bench-flush-{partitions}"
    producer = confluent_kafka.Producer(config)
    if transactional:
        producer.init_transactions(30)
    flushes, commits = [], []
    for _ in range(transactions):
        if transactional:
            producer.begin_transaction()
        for partition in range(partitions):
            producer.produce(TOPIC, RECORD, b"k", partition=partition)
        started = time.perf_counter()
        producer.flush(30)
        flushed = time.perf_counter()
        if transactional:
            producer.commit_transaction(30)
        flushes.append(flushed - started)
        commits.append(time.perf_counter() - flushed)
        time.sleep(GAP_SECONDS)
    return statistics.median(flushes), statistics.median(commits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transactions", type=int, default=50, help="rounds per number of partitions and producer")
    parser.add_argument("--partitions", type=int_list, default=[1, 2, 4, 8, 16, 32],
                        help="numbers of partitions touched per round, comma-separated")
    args = parser.parse_args()
    rows = []
    with broker(load().external_bootstrap) as bootstrap:
        create_topics(bootstrap, [TOPIC], max(args.partitions))
        rounds(bootstrap, 1, 5, True)  # warm-up: connections, the transaction coordinator
        for partitions in args.partitions:
            idempotent, _ = rounds(bootstrap, partitions, args.transactions, False)
            flush, commit = rounds(bootstrap, partitions, args.transactions, True)
            progress(f"{partitions} partitions: flush {1000 * idempotent:.1f} ms idempotent, "
                     f"{1000 * flush:.1f} ms in a transaction, then commit {1000 * commit:.1f} ms")
            rows.append((partitions, idempotent, flush, commit))
    print()
    print("| partitions touched | flush, idempotent (ms) | flush, transactional (ms) | commit after it (ms) |")
    print("|---|---|---|---|")
    for partitions, idempotent, flush, commit in rows:
        print(f"| {partitions} | {1000 * idempotent:.1f} | {1000 * flush:.1f} | {1000 * commit:.1f} |")
    (first, *_), (last, *_) = rows[0], rows[-1]
    if last > first:
        slope = (rows[-1][2] - rows[0][2]) / (last - first)
        print(f"\n[bench] a transaction's flush grows by {1000 * slope:.2f} ms per partition it touches "
              f"(medians of {args.transactions} rounds; python -m bench.transaction_flush)")


if __name__ == "__main__":
    main()
