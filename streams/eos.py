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
Table writes leave Faust's send buffer after the event, so they are routed by their changelog
partition (which is the source partition) and the buffer is drained before every commit. Other
sends outside event processing (timers) are plain idempotent sends.

A second fix concerns recovery. In exactly-once mode Faust reads a changelog's end (its last
stable offset) from the consumer's cached fetch state, which is empty right after a rebalance;
the missing value becomes -1 and the recovery check then crashes the worker with "persisted offset
is higher than the highwater" (faust-streaming#158, robinhood/faust#658) whenever a worker that
already holds state gets partitions again. `end_offsets` asks the broker instead, and with the
consumer's read_committed isolation the broker answers with the last stable offset.

A third concerns the end of recovery. The consumer's flow is active while changelogs are read,
and Faust resumes the stream partitions, seeks them to their committed offsets and only then
resumes flow control, which clears every stream buffer. Messages fetched in that window are
dropped with their read offsets already advanced, so the partition is never fetched again from
there and its agent silently stops (seen as orders that stay unprocessed after a restart with a
backlog). Stopping the consumer's flow before that sequence makes the seek the last word: nothing
is delivered until flow resumes, and then delivery starts at the committed offsets. A partition
with no committed offset yet is sought to its beginning, where the reset policy would start it,
instead of being left wherever the dropped fetch moved it.

Restoring a changelog ends early when a timeout left over from the idle time before a recovery
fires as the recovery starts: Faust then takes "fetched up to the highwater but nothing applied"
for aborted transactions, marks the partition as read and skips the records still on their way
(an order reserved just before a crash was missing after the restart). The changelog wait below
does not time out in the first two periods of a recovery, so that shortcut is only taken for a
partition that really stays silent.

Faust has more paths that can drop a fetched batch after advancing its read offset; the stall
guard is the net under all of them. A partition whose committed offset stays below its last
stable offset for two checks in a row is sought back to its committed offset once. Reprocessing
is safe because every decision of the project is idempotent on ids (holds by order id,
adjustments by id, order transitions guarded by status).
"""

from __future__ import annotations

import asyncio
import logging
import types
from collections.abc import Awaitable, Mapping
from time import monotonic
from typing import Any

import faust
import faust.tables
import faust.tables.recovery as faust_recovery_module
from faust.streams import current_event
from faust.tables.recovery import Recovery
from faust.transport.consumer import TransactionManager
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP

log = logging.getLogger(__name__)


# Held while one event is processed and while a transaction commits. Faust commits on a timer
# that runs beside the agents, so without it a commit could fall between two outputs of one event:
# the first committed, the second lost with the next transaction, and the event, reprocessed after
# a crash, finds its state already written and emits nothing. Kafka Streams commits between
# records for the same reason.
event_boundary = asyncio.Lock()


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
        elif partition is not None and topic in self.app.tables.changelog_topics:
            # Table writes reach the producer later, from Faust's send buffer, outside the
            # event; a changelog partition is its source partition, so its producer is known.
            transactional_id = self._transactional_id_for(TP(topic, partition))
        return await self.producer.send(
            topic, key, value, partition, timestamp, headers, transactional_id=transactional_id
        )

    async def commit(self, offsets: Mapping[TP, int], start_new_transaction: bool = True) -> bool:
        async with event_boundary:
            # Faust commits without draining its send buffer, so a table write of an event whose
            # offset is in this commit could land in the next transaction and be lost with it.
            await self.app.producer.buffer.flush()
            return await super().commit(offsets, start_new_transaction=start_new_transaction)


class ConsumerThread(aiokafka_driver.AIOKafkaConsumerThread):
    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:  # type: ignore[override]
        consumer = self._ensure_consumer()
        return await consumer.end_offsets(list(partitions))  # type: ignore[no-any-return]


class Consumer(aiokafka_driver.Consumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Offsets of stream records handed to the agents and not yet committed (see _new_offset).
        # Changelog records are left out: they are never acked or committed, so they would pile up.
        self._delivered: dict[TP, set[int]] = {}

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def getmany(self, timeout: float) -> Any:
        async for tp, message in super().getmany(timeout):
            if not self._is_changelog_tp(tp):
                self._delivered.setdefault(tp, set()).add(message.offset)
            yield tp, message

    def _new_offset(self, tp: TP) -> int | None:
        # Faust commits the first run of acked offsets, tolerating missing offsets below it (meant
        # for transaction markers, which are never delivered). When a missing offset is a record
        # it delivered and never got acked (a delivery dropped during a rebalance or recovery),
        # committing past it loses the record: hold the commit and let the stall guard re-read.
        acked = self._acked.get(tp)
        delivered = self._delivered.get(tp)
        if acked and delivered:
            committed = self._committed_offset.get(tp) or 0
            delivered.difference_update([o for o in delivered if o < committed])
            first_acked = min(acked)
            if any(o < first_acked for o in delivered):
                return None
        return super()._new_offset(tp)  # type: ignore[no-any-return]

    async def perform_seek(self) -> None:
        await super().perform_seek()
        never_committed = [
            tp
            for tp in self.assignment()
            if not self._is_changelog_tp(tp) and self._read_offset.get(tp) is None
        ]
        if never_committed:
            await self._thread.seek_to_beginning(*(aiokafka_driver.ensure_aiokafka_TP(tp) for tp in never_committed))


class _RecoveryAsyncio(types.ModuleType):
    """`asyncio` as `faust.tables.recovery` sees it, with the changelog wait described above."""

    recovery: StreamsRecovery | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    async def wait_for(self, awaitable: Any, timeout: float) -> Any:
        future = asyncio.ensure_future(awaitable)
        while True:
            done, _ = await asyncio.wait({future}, timeout=timeout)
            if done:
                return future.result()
            recovery = self.recovery
            started = getattr(recovery, "_recovery_started_at", None)
            if recovery is not None and recovery.in_recovery and started and monotonic() - started < 2 * timeout:
                continue
            future.cancel()
            raise TimeoutError


_recovery_asyncio = _RecoveryAsyncio("asyncio")
faust_recovery_module.asyncio = _recovery_asyncio  # type: ignore[attr-defined]


class StreamsRecovery(Recovery):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _recovery_asyncio.recovery = self

    # Long enough for the consumer's drain loop to see the stop and leave its batch (it records
    # the read offset of the message it abandons, which the seek below must then overwrite).
    settle_seconds = 0.05

    async def _resume_streams(self, generation_id: int = 0) -> None:
        self.app.consumer.stop_flow()
        await asyncio.sleep(self.settle_seconds)
        await super()._resume_streams(generation_id)


class TableManager(faust.tables.TableManager):
    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = StreamsRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery


def install_stall_guard(app: faust.App, interval: float) -> None:
    last_seen: dict[TP, tuple[int, int]] = {}
    nudged: set[tuple[TP, int, int]] = set()

    @app.timer(interval)
    async def resume_stalled_partitions() -> None:
        consumer = app.consumer
        if app.rebalancing or not consumer.flow_active:
            last_seen.clear()
            return
        fetcher_consumer = consumer._thread._ensure_consumer()  # type: ignore[attr-defined]
        for tp in consumer.assignment():
            if consumer._is_changelog_tp(tp) or app.assignor.is_standby(tp):
                continue
            stable = fetcher_consumer.last_stable_offset(aiokafka_driver.ensure_aiokafka_TP(tp))
            committed = consumer._committed_offset.get(tp) or 0  # type: ignore[attr-defined]
            if stable is None or committed >= stable:
                last_seen.pop(tp, None)
                continue
            state = (committed, stable)
            if last_seen.get(tp) == state and (tp, *state) not in nudged:
                # A lag of one is usually the commit marker of the last transaction: nothing to
                # re-read, and the seek costs one empty fetch.
                log.info(
                    "%s[%d] made no progress (committed %d, last stable %d): re-reading from the committed offset",
                    tp.topic, tp.partition, committed, stable,
                )
                nudged.add((tp, *state))
                await consumer.seek(tp, committed)
            last_seen[tp] = state


class Transport(aiokafka_driver.Transport):
    Consumer = Consumer
    TransactionManager = SourcePartitionTransactionManager
