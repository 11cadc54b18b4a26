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
sends outside event processing (timers) are plain idempotent sends. Transactions are named after
the partition alone (see `transactional_id`). Whether the app runs transactions at all is
decided in `streams.worker.StreamsApp.in_transaction`.

A second fix concerns recovery. In exactly-once mode Faust reads a changelog's end (its last
stable offset) from the consumer's cached fetch state, which is empty right after a rebalance;
the missing value becomes -1 and the recovery check then crashes the worker with "persisted offset
is higher than the highwater" (faust-streaming#158, robinhood/faust#658) whenever a worker that
already holds state gets partitions again. `end_offsets` asks the broker instead, and with the
consumer's read_committed isolation the broker answers with the last stable offset.

Commits follow Kafka Streams. Every open transaction commits at each commit, also one holding
writes but no new offset (Faust leaves those open until a rebalance fences them, while the
worker's RocksDB keeps what they then abort). The offset committed for a stream partition is its
ledger position (`streams.offsets`): Faust's own choice, the first run of acknowledged offsets,
commits past records that were fetched and then dropped (stream buffers cleared by a rebalance or
a recovery, a fetch abandoned when flow stops), and those records were lost. A record delivered
after such a hole is refused and the partition re-read from its position; records delivered
twice are skipped, so Faust's own filter on read offsets, which dropped the re-read records, is
off for stream partitions. A fetch hook on aiokafka tells the ledger which offsets hold no record
(transaction markers, aborted records). A timer re-reads a partition whose missing records were
its last, where no later record arrives to reveal the hole.

Recovery: a partition with no committed offset yet is sought to its beginning, where the reset
policy would start it, instead of wherever a dropped fetch left it. Restoring a changelog ends as
soon as the fetcher has crossed from the last applied record to the changelog's end with nothing
between (the trailing commit marker is never delivered, and Faust waits two idle periods of 5 s
for it); otherwise Faust's own rule applies, but not within the first two periods of a recovery,
when a timeout left over from the idle time before it could end it with records still on their way.

Local state is discarded at every worker start (`streams.__main__`): RocksDB holds the writes of
an open transaction, which a crash aborts.
"""

from __future__ import annotations

import asyncio
import logging
import types
import weakref
from collections.abc import Awaitable, Mapping
from time import monotonic
from typing import Any

import aiokafka.consumer.fetcher as aiokafka_fetcher
from aiokafka.errors import ProducerFenced
import faust
import faust.tables
import faust.tables.recovery as faust_recovery_module
from faust.streams import current_event
from faust.tables.recovery import Recovery
from faust.transport.consumer import TransactionManager
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP

from streams.offsets import Admission, OffsetLedger

log = logging.getLogger(__name__)


# Held while one event is processed and while a transaction commits. Faust commits on a timer
# that runs beside the agents, so without it a commit could fall between two outputs of one event:
# the first committed, the second lost with the next transaction, and the event, reprocessed after
# a crash, finds its state already written and emits nothing. Kafka Streams commits between
# records for the same reason.
event_boundary = asyncio.Lock()


def transactional_id(app_id: str, tp: TP) -> str:
    """The transaction of the task that reads `tp`: `<app>-p<partition>`.

    Faust names a transaction after the partition and the number of its topic group, and numbers
    the groups by partition count: the single-partition leader topic, missing at a first start
    and present at the next, shifts the number of every other group. A restarted worker then
    opens differently named transactions, never fences its predecessor's, and their open
    transactions hold back every read_committed reader of those partitions until the broker
    times them out. Every topic of the project has the same partition count and is
    co-partitioned, so the partition alone names a task. Faust's own leader topic is not the
    project's: assigned to any worker, its partition 0 would share `<app>-p0` with another
    worker's partition 0, and each worker would fence the other's producer in turn.
    """
    if tp.topic == f"{app_id}-__assignor-__leader":
        return f"{app_id}-leader-p{tp.partition}"
    return f"{app_id}-p{tp.partition}"


class SourcePartitionTransactionManager(TransactionManager):
    def _transactional_id_for(self, tp: TP) -> str:
        return transactional_id(self.app.conf.id, tp)

    def _tps_to_transactional_ids(self, tps: set[TP]) -> set[str]:
        assignor = self.app.assignor
        return {self._transactional_id_for(tp) for tp in tps if not assignor.is_standby(tp)}

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
        if partition is not None and topic in self.app.tables.changelog_topics:
            # A table write goes to the partition of the event that made it, so its changelog
            # partition names its transaction. The write reaches the producer later, from Faust's
            # send buffer, and when that buffer is full it is drained inside whichever event is
            # being processed then: routed by that event, a write would commit with another
            # partition's transaction, and a crash could keep the state without the outputs.
            transactional_id = self._transactional_id_for(TP(topic, partition))
        elif event is not None:
            transactional_id = self._transactional_id_for(event.message.tp)
        return await self.producer.send(
            topic, key, value, partition, timestamp, headers, transactional_id=transactional_id
        )

    async def commit(self, offsets: Mapping[TP, int], start_new_transaction: bool = True) -> bool:
        async with event_boundary:
            # Faust commits without draining its send buffer, so a table write of an event whose
            # offset is in this commit could land in the next transaction and be lost with it.
            await self.app.producer.buffer.flush()
            by_transactional_id: dict[str, dict[TP, int]] = {
                transactional_id: {} for transactional_id in self.producer._transaction_producers
            }
            for tp, offset in offsets.items():
                by_transactional_id.setdefault(self._transactional_id_for(tp), {})[tp] = offset
            # Every open transaction ends here, also those with writes but no new offset: Faust
            # commits only producers with offsets to commit, and leaves the others open until a
            # rebalance fences them, while the worker's own tables keep what they aborted.
            try:
                await asyncio.gather(*(
                    self._commit_transaction(transactional_id, tp_offsets, start_new_transaction)
                    for transactional_id, tp_offsets in by_transactional_id.items()
                ))
            except ProducerFenced as fenced:
                log.warning("fenced by a newer worker for the same partitions: %s", fenced)
                await self.app.crash(fenced)
            return True

    async def _commit_transaction(self, transactional_id: str, offsets: Mapping[TP, int], start_new: bool) -> None:
        producer = self.producer
        async with producer._trn_locks[transactional_id]:
            transaction = producer._transaction_producers.get(transactional_id)
            if transaction is None:
                log.warning("no producer for transaction %s: its offsets %s are not committed", transactional_id, offsets)
                return
            if offsets:
                await transaction.send_offsets_to_transaction(
                    {aiokafka_driver.ensure_aiokafka_TP(tp): offset for tp, offset in offsets.items()},
                    self.app.conf.id,
                )
            await transaction.commit_transaction()
            if start_new:
                await transaction.begin_transaction()


class ConsumerThread(aiokafka_driver.AIOKafkaConsumerThread):
    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:  # type: ignore[override]
        consumer = self._ensure_consumer()
        return await consumer.end_offsets(list(partitions))  # type: ignore[no-any-return]


class _StreamReadOffsets(dict[TP, int | None]):
    """Faust's read offsets with its own use of them switched off for stream partitions.

    Faust drops a fetched record whose offset is below the partition's read offset. After a
    re-read (a seek back while later records of an older fetch were still being handed out) that
    drops exactly the records being re-read. The ledger already skips records processed before,
    so for stream partitions the read offset reads as unknown; changelog partitions keep it.
    """

    def __init__(self, is_changelog: Any) -> None:
        super().__init__()
        self._is_changelog = is_changelog

    def __getitem__(self, tp: TP) -> int | None:
        return self.get(tp) if self._is_changelog(tp) else None


class Consumer(aiokafka_driver.Consumer):
    """Commits each stream partition up to its ledger position (see `streams.offsets`)."""

    # After a seek back, records fetched before it still arrive out of order until the re-read
    # ones come through: the partition is not sought again until it makes progress, or for this
    # long (the re-read records can be dropped as well).
    reread_timeout_seconds = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ledger = OffsetLedger()
        self._read_offset = _StreamReadOffsets(self._is_changelog_tp)
        self._rereading: dict[TP, tuple[int, float]] = {}
        _fetch_ledgers.add(self.ledger)

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def admit(self, message: Any) -> Admission:
        return self.ledger.admit(message.tp, message.offset)

    def processed(self, message: Any) -> None:
        self.ledger.processed(message.tp, message.offset)
        self._rereading.pop(message.tp, None)

    async def reread(self, tp: TP, arrived: int | None = None) -> None:
        """Seek a partition back to its ledger position: records before `arrived` went missing."""
        position = self.ledger.position(tp)
        if position is None or tp not in self.assignment():
            return
        pending = self._rereading.get(tp)
        now = monotonic()
        if pending is not None and pending[0] == position and now - pending[1] < self.reread_timeout_seconds:
            return
        self._rereading[tp] = (position, now)
        log.info(
            "%s[%d]: records %d..%s were fetched but never processed; re-reading from %d",
            tp.topic, tp.partition, position, "" if arrived is None else arrived - 1, position,
        )
        await self.seek(tp, position)

    def _new_offset(self, tp: TP) -> int | None:
        # Faust's acknowledgements are not needed to know what is safe to commit: the position is.
        self._acked[tp].clear()
        self._acked_index[tp].clear()
        position = self.ledger.position(tp)
        committed = self._committed_offset.get(tp)
        return position if position is not None and (committed is None or position > committed) else None

    async def perform_seek(self) -> None:
        await super().perform_seek()
        streams = [tp for tp in self.assignment() if not self._is_changelog_tp(tp)]
        starts = {tp: self._committed_offset.get(tp) for tp in streams}
        self._rereading.clear()
        # From the offsets sought to, not the fetch positions: the fetcher may have moved on since.
        # Before anything is awaited, so records delivered meanwhile meet their positions.
        for tp, offset in starts.items():
            if offset is not None:
                self.ledger.start(tp, offset)
        never_committed = [tp for tp, offset in starts.items() if offset is None]
        if never_committed:
            # Where the reset policy would start them, instead of wherever a dropped fetch left them.
            await self._thread.seek_to_beginning(*(aiokafka_driver.ensure_aiokafka_TP(tp) for tp in never_committed))
            for tp, offset in (await self.earliest_offsets(*never_committed)).items():
                self.ledger.start(TP(tp.topic, tp.partition), offset)

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        await super().on_partitions_revoked(revoked)
        self.ledger.forget(revoked)


# The ledgers of this process's consumers, told by the fetch hook below what each fetch crossed.
_fetch_ledgers: weakref.WeakSet[OffsetLedger] = weakref.WeakSet()
_aiokafka_getall = aiokafka_fetcher.FetchResult.getall


def _getall_noting_runs(self: aiokafka_fetcher.FetchResult, max_records: int | None = None) -> list[Any]:
    # The fetch position is read before the records are taken: aiokafka returns a result only if
    # it was fetched from the partition's current position, so the records start there.
    partition_records = self._partition_records
    fetch_position = None if partition_records is None else partition_records.next_fetch_offset
    records = _aiokafka_getall(self, max_records)
    if fetch_position is not None and _fetch_ledgers:
        aiokafka_tp = self._topic_partition
        state = self._assignment.state_value(aiokafka_tp)
        if state is not None and state.has_valid_position:
            tp = TP(aiokafka_tp.topic, aiokafka_tp.partition)
            offsets = [record.offset for record in records]
            for ledger in _fetch_ledgers:
                ledger.fetched(tp, fetch_position, offsets, state.position)
    return records


aiokafka_fetcher.FetchResult.getall = _getall_noting_runs  # type: ignore[method-assign]


class _RecoveryAsyncio(types.ModuleType):
    """`asyncio` as `faust.tables.recovery` sees it, with the changelog wait described above."""

    recovery: StreamsRecovery | None = None

    # How often a wait for the next changelog record checks whether the fetcher already crossed
    # every changelog's end.
    poll_seconds = 0.1

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    async def wait_for(self, awaitable: Any, timeout: float) -> Any:
        future = asyncio.ensure_future(awaitable)
        deadline = monotonic() + timeout
        while True:
            done, _ = await asyncio.wait({future}, timeout=self.poll_seconds)
            if done:
                return future.result()
            recovery = self.recovery
            in_recovery = recovery is not None and recovery.in_recovery
            if in_recovery and recovery.read_to_the_end():  # type: ignore[union-attr]
                break
            if monotonic() < deadline:
                continue
            started = getattr(recovery, "_recovery_started_at", None)
            if in_recovery and started and monotonic() - started < 2 * timeout:
                deadline += timeout
                continue
            break
        future.cancel()
        raise TimeoutError


_recovery_asyncio = _RecoveryAsyncio("asyncio")
faust_recovery_module.asyncio = _recovery_asyncio  # type: ignore[attr-defined]


class StreamsRecovery(Recovery):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _recovery_asyncio.recovery = self

    def read_to_the_end(self) -> bool:
        """Every active changelog applied up to its last stable offset, as far as the fetcher shows.

        A changelog written in transactions ends with a commit marker, which is never delivered,
        so Faust waits for two idle periods before it takes the partition as read. The ledger
        knows when the fetcher crossed from the last applied record to the end with no record
        between: the partition is read, at once.
        """
        ledger: OffsetLedger = self.app.consumer.ledger  # type: ignore[attr-defined]
        offsets = self.active_offsets
        read = True
        for tp, highwater in self.active_highwaters.items():
            applied = offsets.get(tp)
            if highwater is None or applied is None or applied >= highwater:
                continue
            if ledger.fetched_past(tp, applied + 1, highwater + 1):
                offsets[tp] = highwater
            else:
                read = False
        return read


class TableManager(faust.tables.TableManager):
    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = StreamsRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery


def install_stall_guard(app: faust.App, interval: float) -> None:
    """Re-read a partition whose position stays below its last stable offset with nothing delivered.

    A missing record is noticed when a later one arrives out of order; when the missing records are
    the last of their partition, nothing arrives, and this timer notices instead.
    """
    last_seen: dict[TP, tuple[int | None, int]] = {}

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
            ledger = consumer.ledger  # type: ignore[attr-defined]
            if stable is None or ledger.caught_up(tp, stable):
                last_seen.pop(tp, None)
                continue
            state = (ledger.position(tp), stable)
            if last_seen.get(tp) == state:
                await consumer.reread(tp)  # type: ignore[attr-defined]
            last_seen[tp] = state


class Producer(aiokafka_driver.Producer):
    """Faust's producer with aiokafka's retry backoff set from `StreamsApp.producer_retry_backoff_seconds`.

    Faust passes no retry backoff, so aiokafka waits its default 100 ms before retrying any
    transactional request. Kafka 4 verifies each transactional offset commit with the transaction
    coordinator (`transaction.partition.verification.enable`, on by default), and under load most
    of our commits had one of their TxnOffsetCommits (aiokafka sends v0) answered
    COORDINATOR_NOT_AVAILABLE once, then accepted on the retry; with the verification off on the
    broker those answers stopped. Every agent waits while a commit runs (see `event_boundary`), so
    the 100 ms wait left a worker idle about half the time (bench/README.md). A retry resends the
    same request within the same transaction, so a shorter wait changes no outcome; the broker's
    verification stays on.
    """

    def _settings_extra(self) -> Mapping[str, Any]:
        backoff = self.app.producer_retry_backoff_seconds  # type: ignore[attr-defined]
        return {**super()._settings_extra(), "retry_backoff_ms": max(1, round(1000 * backoff))}


class Transport(aiokafka_driver.Transport):
    Consumer = Consumer
    Producer = Producer
    TransactionManager = SourcePartitionTransactionManager
