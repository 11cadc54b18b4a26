"""Exactly-once sends that commit with the input they came from.

Faust 0.15's exactly-once mode keeps one transactional producer per assigned *source* partition
and commits each source partition's offsets through that partition's producer. Its send path,
however, picks the producer of the *destination* partition: a send to a partition owned by
another worker fails ("No transaction producer found"), a send to a topic the app does not consume
bypasses the transaction entirely, and a send that lands in another partition's transaction is
committed apart from the input offset that caused it. Kafka Streams binds every output of a task
to the task's own producer; this transaction manager does the same: while an event is being
processed, every send (outputs and changelog writes) goes through the transactional producer of
that event's source partition, so outputs, table changes and the input offset commit together.
Sends outside event processing (timers) are plain idempotent sends.

A second fix concerns recovery. In exactly-once mode Faust reads a changelog's end (its last
stable offset) from the consumer's cached fetch state, which is empty right after a rebalance;
the missing value becomes -1 and the recovery check then crashes the worker with "persisted offset
is higher than the highwater" (faust-streaming#158, robinhood/faust#658) whenever a worker that
already holds state gets partitions again. `end_offsets` asks the broker instead, and with the
consumer's read_committed isolation the broker answers with the last stable offset.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Any

from faust.streams import current_event
from faust.transport.consumer import TransactionManager
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP


class SourcePartitionTransactionManager(TransactionManager):
    def _transactional_id_for(self, tp: TP) -> str:
        group = self.app.assignor.group_for_topic(tp.topic)
        return f"{self.app.conf.id}-{group}-{tp.partition}"

    async def send(  # type: ignore[override]
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
        *,
        transactional_id: str | None = None,
    ) -> Awaitable[Any]:
        event = current_event()
        if event is not None:
            transactional_id = self._transactional_id_for(event.message.tp)
        return await self.producer.send(
            topic, key, value, partition, timestamp, headers, transactional_id=transactional_id
        )


class ConsumerThread(aiokafka_driver.AIOKafkaConsumerThread):
    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:  # type: ignore[override]
        consumer = self._ensure_consumer()
        return await consumer.end_offsets(list(partitions))  # type: ignore[no-any-return]


class Consumer(aiokafka_driver.Consumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(aiokafka_driver.Transport):
    Consumer = Consumer
    TransactionManager = SourcePartitionTransactionManager
