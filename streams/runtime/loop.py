"""The processing thread of a worker: one consumer, one transactional producer, its tasks.

Kafka Streams' `StreamThread` and `TaskManager` in one small class. It polls batches, hands each
record to the task of its partition, commits at the commit interval or after a batch of events,
whichever comes first (`checkpoint.py`), fires due timers after each commit, and meets rebalances:

- the consumer uses the consumer group protocol of KIP-848 with the broker's `range` assignor:
  rebalances are incremental (a member keeps the partitions that do not move) and a member gets the
  same partition numbers of every topic it subscribes to, so co-partitioned topics and tables stay
  together;
- partitions assigned: their tasks open their stores and restore the changelog tail first;
- partitions revoked: everything done so far is committed, then their tasks close (their stores
  stay on disk, so getting them back restores only the tail);
- partitions lost (the member was fenced out of the group): the open transaction is aborted.

Failure policy: any error of the producer, the commit or the consumer aborts the transaction,
drops the tasks' writes and calls in flight, and rewinds every partition to its committed offset;
the events are processed again. A fatal producer error (fenced) replaces the producer the same way.
No path commits an event's state without its outputs: they are in one transaction.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import confluent_kafka
from confluent_kafka import TopicPartition

from streams import topics
from streams.logs import event_fields, kafka_client_logger
from streams.models import utc_now
from streams.partitioning import CONFLUENT_PARTITIONER
from streams.runtime import timers
from streams.runtime.agent import Agent
from streams.runtime.checkpoint import Checkpoint, Transaction
from streams.runtime.faults import Faults
from streams.runtime.metrics import (
    ABORTS,
    ASSIGNED_PARTITIONS,
    COMMIT_EVENTS,
    COMMIT_SECONDS,
    CONSUMER_LAG,
    REBALANCES,
)
from streams.runtime.recovery import Restorer, store_path
from streams.runtime.stores import PartitionStore, changelog_topic
from streams.runtime.task import Task
from streams.tables.decision import Decision

log = logging.getLogger(__name__)

# A transaction with no new event for this long commits at once (see `StreamThread.run`).
IDLE_COMMIT_SECONDS = 0.002
# How long an idle loop waits for a record before it looks at outside calls' answers and timers.
IDLE_POLL_SECONDS = 0.02
# How often the consumer lag gauge is updated (from the watermarks of the last fetch, no request).
LAG_SECONDS = 1.0


class StreamThread:
    def __init__(self, *, bootstrap: str, group_id: str, transactional_id: str, client_id: str, namespace: str,
                 partitions: int, agents: list[Agent], data_dir: Path, commit_interval: float, batch_size: int,
                 timer_interval: float, transaction_timeout: float, faults: Faults,
                 loop: asyncio.AbstractEventLoop, on_committed: Callable[[list[tuple[str, list[bytes]]]], None]) -> None:
        self.bootstrap = bootstrap
        self.group_id = group_id
        self.transactional_id = transactional_id
        self.client_id = client_id
        self.namespace = namespace
        self.partitions = partitions
        self.agents = agents
        self.data_dir = data_dir
        self.commit_interval = commit_interval
        self.batch_size = batch_size
        self.timer_interval = timer_interval
        self.transaction_timeout = transaction_timeout
        self.faults = faults
        self.loop = loop
        self.on_committed = on_committed
        self.table_names = sorted({table.name for agent in agents for table in agent.tables})
        self.sources = sorted({topics.full_name(namespace, spec.name) for agent in agents for spec in agent.sources})
        # Source topics by their registry names, the metrics' labels (the namespace is the deployment's).
        self.source_names = {topics.full_name(namespace, spec.name): spec.name
                             for agent in agents for spec in agent.sources}
        self.tasks: dict[int, Task] = {}
        # Next offset to consume, and last committed offset, per source partition.
        self.positions: dict[tuple[str, int], int] = {}
        self.committed: dict[tuple[str, int], int] = {}
        self.completions: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self.stopping = threading.Event()
        self.assigned_once = threading.Event()
        self.rebalancing = False
        self.aborts = 0
        self.commits = 0
        self.batch_limit = batch_size
        self.consumer = confluent_kafka.Consumer({
            "bootstrap.servers": bootstrap,
            "client.id": client_id,
            "group.id": group_id,
            "group.protocol": "consumer",
            "group.remote.assignor": "range",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "logger": kafka_client_logger(),
        })
        self.producer = self._new_producer()
        self.transaction = Transaction(self.producer, faults)
        self.checkpoint = Checkpoint(self.transaction, self.consumer, group_id, faults, transaction_timeout)
        self.restorer = Restorer(bootstrap, f"{client_id} restore")

    def _new_producer(self) -> confluent_kafka.Producer:
        producer = confluent_kafka.Producer({
            "bootstrap.servers": self.bootstrap,
            "client.id": self.client_id,
            "transactional.id": self.transactional_id,
            "transaction.timeout.ms": int(self.transaction_timeout * 1000),
            "partitioner": CONFLUENT_PARTITIONER,
            "linger.ms": 5,
            # A transactional request the broker refuses for now (Kafka 4's transaction
            # verification) is retried after 10 ms, not 100: commits' p99 went from 24 to 12 ms.
            "retry.backoff.ms": 10,
            "logger": kafka_client_logger(),
        })
        # Fences this instance's previous incarnation: its open transaction is aborted now rather
        # than after the transaction timeout, so read_committed readers are not held up.
        producer.init_transactions(self.transaction_timeout)
        return producer

    # -- the loop ------------------------------------------------------------------------------

    def run(self) -> None:
        """Poll, process, commit; until `stop`.

        A transaction commits when it is `commit_interval` old, holds `batch_size` events, or no
        event came for `IDLE_COMMIT_SECONDS`: under load events are batched, and a lone request
        does not wait the whole interval at each hop. `poll` returns at the first record and
        `consume(n, 0)` takes what is already fetched, so no call waits for a batch to fill.
        """
        self.consumer.subscribe(self.sources, on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_lost)
        log.info("consuming %s as %s (group %s)", ", ".join(self.sources), self.client_id, self.group_id)
        began = 0.0  # when the open transaction took its first event
        events = 0
        next_timers = time.monotonic()
        next_lag = next_timers
        try:
            while not self.stopping.is_set():
                in_hand: confluent_kafka.Message | None = None  # the record being processed, for the abort's log
                try:
                    if self.transaction.open:
                        wait = max(0.0, min(IDLE_COMMIT_SECONDS, began + self.commit_interval - time.monotonic()))
                    else:
                        wait = IDLE_POLL_SECONDS
                    first = self.consumer.poll(wait)
                    messages = [] if first is None else [first, *self._fetched(self.batch_limit - 1)]
                    for message in messages:
                        if message.error() is not None:
                            self._consumer_error(message.error())
                            continue
                        task = self.tasks.get(message.partition())
                        if task is None:
                            continue  # revoked while in the batch: its new owner processes it
                        if not self.transaction.open:
                            self.transaction.begin()
                            began = time.monotonic()
                        in_hand = message
                        task.process(message)
                        in_hand = None
                        self.positions[(message.topic(), message.partition())] = message.offset() + 1
                        events += 1
                    while not self.completions.empty():
                        # A finished outside call frees its event's offset and may change state
                        # without sending anything (notifications): a commit is due either way.
                        if not self.transaction.open:
                            self.transaction.begin()
                            began = time.monotonic()
                        self.completions.get_nowait()()
                    now = time.monotonic()
                    if self.transaction.open and (not messages or events >= self.batch_limit
                                                  or now - began >= self.commit_interval):
                        self._commit()
                        events = 0
                        self.batch_limit = min(self.batch_size, self.batch_limit * 2)
                    if now >= next_timers:
                        was_open = self.transaction.open
                        self._fire_timers()
                        if self.transaction.open and not was_open:
                            began = now
                        next_timers = now + self.timer_interval
                    if now >= next_lag:
                        self._measure_lag()
                        next_lag = now + LAG_SECONDS
                except confluent_kafka.KafkaException as exc:
                    self._abort(exc, in_hand)
                    events = 0
                    # Smaller transactions until one commits: a failure that comes with the size of
                    # a transaction (a backlog processed again in one piece) cannot repeat forever.
                    self.batch_limit = max(1, self.batch_limit // 4)
        finally:
            self._shutdown()

    def _fetched(self, most: int) -> list[confluent_kafka.Message]:
        """Up to `most` records already fetched, without waiting for more."""
        return self.consumer.consume(most, 0) if most > 0 else []

    def _commit(self) -> None:
        was_open = self.transaction.open
        events = sum(task.events_in_transaction() for task in self.tasks.values()) if was_open else 0
        started = time.perf_counter()
        changed, offsets = self.checkpoint.commit(self.tasks, self.positions)
        if was_open:
            COMMIT_SECONDS.observe(time.perf_counter() - started)
            if events:
                COMMIT_EVENTS.observe(events)
        for offset in offsets:
            self.committed[(offset.topic, offset.partition)] = offset.offset
        if offsets or changed:
            self.commits += 1
        if changed:
            self.on_committed(changed)

    def _fire_timers(self) -> None:
        now = utc_now()
        for task in self.tasks.values():
            for agent in self.agents:
                if agent.deadline is not None:
                    timers.fire_due(task, agent, now)

    def _consumer_error(self, error: confluent_kafka.KafkaError) -> None:
        if error.fatal():
            raise confluent_kafka.KafkaException(error)
        log.warning("consumer: %s", error)

    def _abort(self, cause: confluent_kafka.KafkaException, in_hand: confluent_kafka.Message | None = None) -> None:
        """Abort the open transaction, drop what it wrote, rewind to the committed offsets. `in_hand`:
        the record whose processing failed, if one did (its topic, partition and offset are logged)."""
        self.aborts += 1
        ABORTS.inc()
        log.warning("aborting the transaction and processing again from the committed offsets: %s", cause,
                    extra=None if in_hand is None else event_fields(in_hand))
        fatal = _fatal(cause, otherwise=False)
        if not fatal and self.transaction.open:
            try:
                self.producer.abort_transaction(self.transaction_timeout)
            except confluent_kafka.KafkaException as exc:
                fatal = _fatal(exc, otherwise=True)
                log.warning("abort failed (%s)", exc)
        self.transaction.open = False
        if fatal:
            log.warning("the producer is fenced or failed fatally: starting a new one")
            self._replace_producer()
        for task in self.tasks.values():
            task.drop_writes()
            task.drop_calls()
        self._rewind()

    def _replace_producer(self) -> None:
        while not self.stopping.is_set():
            try:
                self.producer = self._new_producer()
                break
            except confluent_kafka.KafkaException as exc:
                log.warning("starting a transactional producer failed (%s); retrying", exc)
                time.sleep(1.0)
        self.transaction.producer = self.producer

    def _rewind(self) -> None:
        assignment = self.consumer.assignment()
        for tp in assignment:
            offset = self.committed.get((tp.topic, tp.partition), confluent_kafka.OFFSET_BEGINNING)
            self.positions.pop((tp.topic, tp.partition), None)
            try:
                self.consumer.seek(TopicPartition(tp.topic, tp.partition, offset))
            except confluent_kafka.KafkaException as exc:
                log.warning("rewinding %s[%d] to %d failed (%s)", tp.topic, tp.partition, offset, exc)

    def _measure_lag(self) -> None:
        """Set the lag gauge of each assigned source partition: the high watermark of the last fetch
        (cached by the client, no request to the broker) minus the consumer's position."""
        try:
            for tp in self.consumer.position(self.consumer.assignment()):
                position = tp.offset if tp.offset >= 0 else self.committed.get((tp.topic, tp.partition), -1)
                _, high = self.consumer.get_watermark_offsets(tp, cached=True)
                if position >= 0 and high >= 0:
                    CONSUMER_LAG.labels(self.source_names.get(tp.topic, tp.topic), str(tp.partition)).set(
                        max(0, high - position))
        except (confluent_kafka.KafkaException, RuntimeError) as exc:
            log.debug("measuring the consumer lag failed (%s)", exc)

    # -- rebalances ----------------------------------------------------------------------------

    def _on_assign(self, consumer: confluent_kafka.Consumer, partitions: list[TopicPartition]) -> None:
        self.rebalancing = True
        if partitions:
            REBALANCES.labels("assigned").inc()
        try:
            self._commit_or_abort()  # what is done so far, before the restores, which may take a while
            for tp, committed in zip(partitions, consumer.committed(partitions, timeout=30), strict=True):
                self.committed[(tp.topic, tp.partition)] = (
                    committed.offset if committed.offset >= 0 else confluent_kafka.OFFSET_BEGINNING)
            self._open_tasks(sorted({tp.partition for tp in partitions} - set(self.tasks)))
            ASSIGNED_PARTITIONS.set(len(self.tasks))
            log.info("assigned partitions %s; serving %s", sorted({tp.partition for tp in partitions}), sorted(self.tasks))
        finally:
            self.rebalancing = False
            self.assigned_once.set()

    def _open_tasks(self, numbers: list[int]) -> None:
        """Open the stores of new tasks and restore their changelogs' tails, then start them."""
        changelog = {table: changelog_topic(self.group_id, table) for table in self.table_names}
        stores = self.restorer.restore({
            (changelog[table], number): PartitionStore(store_path(self.data_dir, table, number))
            for number in numbers for table in self.table_names
        })
        for number in numbers:
            self.tasks[number] = Task(
                number, self.partitions, self.namespace, self.agents,
                {table: stores[(changelog[table], number)] for table in self.table_names},
                self.transaction, OutsideCalls(self))

    def _on_revoke(self, consumer: confluent_kafka.Consumer, partitions: list[TopicPartition]) -> None:
        self.rebalancing = True
        if partitions:
            REBALANCES.labels("revoked").inc()
        try:
            self._commit_or_abort()
            self._close_tasks(partitions)
        finally:
            self.rebalancing = False

    def _on_lost(self, consumer: confluent_kafka.Consumer, partitions: list[TopicPartition]) -> None:
        REBALANCES.labels("lost").inc()
        log.warning("partitions lost (this member was fenced out of the group): aborting what was not committed")
        self._abort(confluent_kafka.KafkaException(confluent_kafka.KafkaError(
            confluent_kafka.KafkaError._STATE, "partitions lost")))
        self._close_tasks(partitions)

    def _commit_or_abort(self) -> None:
        try:
            self._commit()
        except confluent_kafka.KafkaException as exc:
            self._abort(exc)

    def _close_tasks(self, revoked: list[TopicPartition]) -> None:
        """Close the tasks of partition numbers that no topic keeps (the callbacks run before the
        consumer's assignment drops the revoked partitions)."""
        gone = {(tp.topic, tp.partition) for tp in revoked}
        for where in gone:
            self.positions.pop(where, None)
            self.committed.pop(where, None)
            _forget_lag(self.source_names.get(where[0], where[0]), where[1])
        still = {tp.partition for tp in self.consumer.assignment() if (tp.topic, tp.partition) not in gone}
        for number in {tp.partition for tp in revoked} - still:
            task = self.tasks.pop(number, None)
            if task is not None:
                task.close()
        ASSIGNED_PARTITIONS.set(len(self.tasks))

    # -- stopping ------------------------------------------------------------------------------

    def stop(self) -> None:
        self.stopping.set()

    def _shutdown(self) -> None:
        """Commit what is done, leave the group, close. Each step is bounded: with the broker
        gone, commit and close fail after their timeouts and the process still exits."""
        try:
            self._commit()
        except confluent_kafka.KafkaException as exc:
            log.warning("last commit failed (%s); it is processed again by the partitions' next owner", exc)
        try:
            self.consumer.close()
        except (confluent_kafka.KafkaException, RuntimeError) as exc:
            log.warning("leaving the group failed (%s)", exc)
        for task in self.tasks.values():
            task.close()
        self.tasks.clear()
        self.restorer.close()


def _forget_lag(topic: str, partition: int) -> None:
    """Drop the lag gauge of a partition that moved away (its new owner reports it)."""
    try:
        CONSUMER_LAG.remove(topic, str(partition))
    except KeyError:
        pass


def _fatal(error: confluent_kafka.KafkaException, otherwise: bool) -> bool:
    """Whether the client says the error is fatal (the producer must be replaced); `otherwise`
    when it carries no KafkaError to ask."""
    cause = error.args[0] if error.args else None
    return cause.fatal() if isinstance(cause, confluent_kafka.KafkaError) else otherwise


class OutsideCalls:
    """Runs decisions' awaitables on the worker's event loop; their results come back to the
    processing thread through its completion queue, inside whatever transaction is open then."""

    def __init__(self, thread: StreamThread) -> None:
        self.thread = thread

    def start(self, call: Awaitable[Decision[Any]], done: Callable[[Decision[Any] | BaseException], None]) -> None:
        future: Future[Decision[Any]] = asyncio.run_coroutine_threadsafe(_awaited(call), self.thread.loop)

        def finished(result: Future[Decision[Any]]) -> None:
            outcome: Decision[Any] | BaseException = result.exception() or result.result()
            self.thread.completions.put(lambda: done(outcome))

        future.add_done_callback(finished)


async def _awaited(call: Awaitable[Decision[Any]]) -> Decision[Any]:
    return await call
