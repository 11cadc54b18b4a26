"""The commit of everything a process did since the last one: one Kafka transaction.

The producer is transactional with one transactional id per worker instance; the transaction is
begun by the first record produced or event consumed after a commit (`Transaction.begin`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import confluent_kafka
from confluent_kafka import TopicPartition

from streams.runtime.faults import Faults
from streams.runtime.stores import changelog_topic

if TYPE_CHECKING:
    from streams.runtime.task import Task

log = logging.getLogger(__name__)


class Transaction:
    """The open transaction of the process's producer: where tasks' records go (`task.Outputs`)."""

    def __init__(self, producer: confluent_kafka.Producer, faults: Faults) -> None:
        self.producer = producer
        self.faults = faults
        self.open = False

    def begin(self) -> None:
        if not self.open:
            self.producer.begin_transaction()
            self.open = True

    def produce(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None,
                on_delivery: Callable[[confluent_kafka.KafkaError | None, confluent_kafka.Message], None] | None = None
                ) -> None:
        self.begin()
        self.faults.before_produce()
        extra = {} if partition is None else {"partition": partition}
        while True:
            try:
                self.producer.produce(topic, value, key, on_delivery=on_delivery, **extra)
                return
            except BufferError:
                # The local queue is full: let deliveries drain it, then go on.
                self.producer.poll(0.05)


class Checkpoint:
    def __init__(self, transaction: Transaction, consumer: confluent_kafka.Consumer, group_id: str,
                 faults: Faults, timeout: float) -> None:
        self.transaction = transaction
        self.consumer = consumer
        self.group_id = group_id
        self.faults = faults
        self.timeout = timeout

    def commit(self, tasks: dict[int, Task], positions: dict[tuple[str, int], int]
               ) -> tuple[list[tuple[str, list[bytes]]], list[TopicPartition]]:
        """Commit the open transaction; returns the keys whose committed value changed, per table,
        and the committed offsets. `positions` holds the next offset to consume per source partition.

        1. Produce one changelog record per key changed since the last commit, per table partition,
           to the changelog partition of the task (the task's partition number).
        2. Flush the producer: every output and changelog record is acknowledged (a record that
           failed makes the commit fail, and the transaction is aborted); the delivery report of
           each store's last changelog record gives the offset the store will reflect.
        3. Send the consumed positions with the consumer's group metadata (EOS v2: a member of an
           older group generation is fenced). A source partition with an outside call in flight
           stops at its first unfinished event.
        4. Commit the transaction.
        5. Only now write each store's changes with its changelog offset, forget them, and return
           what changed so readers waiting on those keys wake up. RocksDB never holds
           uncommitted state, and a crash between 4 and 5 is repaired by recovery from the offset.
        Nothing to commit (no event consumed, no record produced): no transaction is opened.
        """
        if not self.transaction.open:
            return [], []
        reached: dict[tuple[str, int], int] = {}
        writes: list[tuple[Task, str, dict[bytes, bytes | None]]] = []
        for task in tasks.values():
            for table in task.stores:
                changes = task.changes(table)
                if not changes:
                    continue
                topic = changelog_topic(self.group_id, table)
                last = len(changes) - 1
                for index, (raw_key, value) in enumerate(changes.items()):
                    self.transaction.produce(
                        topic, raw_key, value, partition=task.partition,
                        on_delivery=_remember_offset(reached, table, task.partition) if index == last else None)
                writes.append((task, table, changes))
        remaining = self.transaction.producer.flush(self.timeout)
        if remaining:
            raise confluent_kafka.KafkaException(confluent_kafka.KafkaError(
                confluent_kafka.KafkaError._TIMED_OUT, f"{remaining} records not acknowledged within {self.timeout}s"))
        offsets = []
        for (topic, partition), position in positions.items():
            task = tasks.get(partition)
            first_unfinished = None if task is None else task.first_unfinished(topic)
            offsets.append(TopicPartition(topic, partition, position if first_unfinished is None else first_unfinished))
        self.faults.before_commit()
        if offsets:
            self.transaction.producer.send_offsets_to_transaction(
                offsets, self.consumer.consumer_group_metadata(), self.timeout)
        self.transaction.producer.commit_transaction(self.timeout)
        self.transaction.open = False
        changed: list[tuple[str, list[bytes]]] = []
        for task, table, changes in writes:
            task.stores[table].write(changes, reached[(table, task.partition)] + 1)
            changed.append((table, list(task.pending[table])))
        for task in tasks.values():
            task.committed()
        return changed, offsets


def _remember_offset(reached: dict[tuple[str, int], int], table: str, partition: int
                     ) -> Callable[[confluent_kafka.KafkaError | None, confluent_kafka.Message], None]:
    def delivered(error: confluent_kafka.KafkaError | None, message: confluent_kafka.Message) -> None:
        if error is None:
            reached[(table, partition)] = message.offset()

    return delivered
