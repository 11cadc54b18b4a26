"""The work of one partition number: its stores, the open transaction's writes, and each event.

A process owns partition `p` of every source topic of its agents together (the topics are
co-partitioned, and the broker's `range` assignor gives a member the same partition numbers of
every topic), so one `Task` per partition number holds partition `p` of every table. Kafka Streams
draws the same line with `StreamTask` and the `ProcessorStateManager` beside it.

Per event: decode the envelope, check it belongs on the topic, under this key and in this
partition, load the state (the open transaction's writes first, then the committed store), decide,
keep the new state in the transaction's writes, produce the decision's events. An event that does
not decode, does not belong, or whose decision raises goes to `<topic>.dlq` and writes no state:
decisions are pure, so nothing of it was written.

Outside calls: an agent whose decision awaits an outside answer (payments and Stripe) has that
event parked while the call runs on the event loop. Later events of the same key wait behind it;
other keys go on. The partition's committed offset stays at the first unfinished event, so a crash
or a rebalance processes again the finished events after it: such agents are idempotent on state
(the payments decision applies each command and webhook once), so this changes nothing.
"""

from __future__ import annotations

import base64
import inspect
import json
import logging
import re
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol

import confluent_kafka
from pydantic import ValidationError

from streams import topics
from streams.logs import event_fields, with_event
from streams.models import DeadLetter, Envelope, utc_now
from streams.partitioning import partition_for
from streams.runtime import timers
from streams.runtime.agent import Agent, Model, Table
from streams.runtime.metrics import Reason, Tally
from streams.runtime.stores import DATA, PartitionStore
from streams.tables.decision import Decision, UnhandledEvent

log = logging.getLogger(__name__)

TENANT_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
# A dead letter keeps this much of the original value (and the source offset that points at all of
# it), so that a poison record near the broker's size limit is dead-lettered without exceeding it.
DEAD_LETTER_VALUE_PREFIX = 64 * 1024
_MISSING = object()
# Decoded committed values kept per table partition (the cache is emptied when full).
DECODED_PER_TABLE = 50_000


class Outputs(Protocol):
    """Where a task's records go: the open transaction (loop.py). The seam of fault injection."""

    def produce(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None) -> None: ...


class OutsideCalls(Protocol):
    """Runs a decision's awaitable on the event loop and hands back its result (loop.py)."""

    def start(self, call: Awaitable[Decision[Any]], done: Callable[[Decision[Any] | BaseException], None]) -> None: ...


class Task:
    def __init__(self, partition: int, partitions: int, namespace: str, agents: list[Agent],
                 stores: dict[str, PartitionStore], outputs: Outputs, outside: OutsideCalls) -> None:
        self.partition = partition
        self.partitions = partitions
        self.namespace = namespace
        self.stores = stores
        self.outputs = outputs
        self.outside = outside
        self.routes: dict[str, tuple[Agent, topics.TopicSpec]] = {
            topics.full_name(namespace, spec.name): (agent, spec) for agent in agents for spec in agent.sources
        }
        # The open transaction's writes: table -> key -> model (None: deleted), and raw writes of
        # timer index entries per table. Dropped on abort, written to the stores after a commit.
        self.pending: dict[str, dict[bytes, Any]] = {name: {} for name in stores}
        self.pending_raw: dict[str, dict[bytes, bytes | None]] = {name: {} for name in stores}
        # Committed values already decoded, per table: decoding a state or a product per event was
        # a tenth of the CPU per reservation. What the stores hold only changes at a commit.
        self.decoded: dict[str, dict[bytes, Any]] = {name: {} for name in stores}
        # Outside calls: keys with a call in flight and the events waiting behind it, and the
        # offsets not finished yet per source topic (the committed offset stops at the smallest).
        self.busy: dict[tuple[str, bytes], deque[confluent_kafka.Message]] = {}
        self.unfinished: dict[str, set[int]] = {}
        self.closed = False
        # What each source topic's events came to in the open transaction (metrics.py): counted in
        # plain integers, added to the worker's counters at the commit, dropped on abort.
        self.tallies: dict[str, Tally] = {
            topic: Tally(agent.name, spec.name) for topic, (agent, spec) in self.routes.items()}

    # -- state ---------------------------------------------------------------------------------

    def get(self, table: Table[Model], key: bytes) -> Model | None:
        found = self.pending[table.name].get(key, _MISSING)
        if found is _MISSING:
            decoded = self.decoded[table.name]
            found = decoded.get(key, _MISSING)
            if found is _MISSING:
                raw = self.stores[table.name].get(key)
                found = None if raw is None else table.model.model_validate_json(raw)
                if len(decoded) >= DECODED_PER_TABLE:
                    decoded.clear()
                decoded[key] = found
        return found  # type: ignore[return-value]

    def get_raw(self, table: str, raw_key: bytes) -> bytes | None:
        found = self.pending_raw[table].get(raw_key, _MISSING)
        return self.stores[table].get_raw(raw_key) if found is _MISSING else found  # type: ignore[return-value]

    def put(self, agent: Agent, key: bytes, state: Any) -> None:
        self.pending[agent.table.name][key] = state
        if agent.deadline is not None:
            due = None if state is None else agent.deadline.due_at(state)
            timers.track(self, agent.table.name, key, due)

    def put_raw(self, table: str, raw_key: bytes, value: bytes | None) -> None:
        self.pending_raw[table][raw_key] = value

    def has_writes(self) -> bool:
        return any(self.pending.values()) or any(self.pending_raw.values())

    def changes(self, table: str) -> dict[bytes, bytes | None]:
        """The open transaction's writes to `table` as raw store entries (changelog records)."""
        changes = {DATA + key: None if state is None else state.model_dump_json().encode()
                   for key, state in self.pending[table].items()}
        changes.update(self.pending_raw[table])
        return changes

    def committed(self) -> None:
        """The open transaction committed and its writes are in the stores: keep them decoded, and
        count its events in the metrics."""
        for name, written in self.pending.items():
            self.decoded[name].update(written)
        for tally in self.tallies.values():
            tally.flush()
        self.drop_writes()

    def events_in_transaction(self) -> int:
        """Events processed (decided or dead-lettered) in the open transaction."""
        return sum(tally.events for tally in self.tallies.values())

    def drop_writes(self) -> None:
        """Forget the open transaction's writes (on abort, or once committed)."""
        for name in self.stores:
            self.pending[name] = {}
            self.pending_raw[name] = {}
        for tally in self.tallies.values():
            tally.reset()

    def drop_calls(self) -> None:
        """Forget calls in flight and events behind them: they are processed again from the
        committed offset (abort, revoke). A late answer finds its task closed or its key free."""
        self.busy.clear()
        self.unfinished.clear()

    def close(self) -> None:
        """The partition moved away or the worker stops: close the stores (they stay on disk), and
        let late answers of outside calls find the task closed."""
        self.closed = True
        for store in self.stores.values():
            store.close()

    def first_unfinished(self, topic: str) -> int | None:
        offsets = self.unfinished.get(topic)
        return min(offsets) if offsets else None

    # -- events --------------------------------------------------------------------------------

    def process(self, message: confluent_kafka.Message) -> None:
        agent, spec = self.routes[message.topic()]
        if agent.calls_outside:
            waiting = self.busy.get((agent.name, message.key()))
            if waiting is not None:
                waiting.append(message)
                self.unfinished.setdefault(message.topic(), set()).add(message.offset())
                return
        self._handle(message, agent, spec)

    def _handle(self, message: confluent_kafka.Message, agent: Agent, spec: topics.TopicSpec) -> None:
        key: bytes | None = message.key()
        raw = message.value() or b""
        try:
            envelope = Envelope.from_bytes(raw)
        except ValidationError as exc:
            return self.dead_letter(message, spec, f"invalid event: {_brief(exc)}", reason="invalid_event")
        if type(envelope.payload) not in spec.payloads:
            return self.dead_letter(message, spec, f"{envelope.type} does not belong on {spec.name}", envelope.event_id,
                                    reason="wrong_topic")
        expected = spec.key_of(envelope)
        if key != expected:
            return self.dead_letter(message, spec, f"message key {key!r} does not match the payload's key {expected!r}",
                                    envelope.event_id, reason="wrong_key")
        owner = partition_for(key, self.partitions)
        if owner != self.partition and not spec.broadcast:
            return self.dead_letter(message, spec, f"key {key!r} belongs to partition {owner}, "
                                    f"not {self.partition}: its producer does not partition with murmur2",
                                    envelope.event_id, reason="wrong_partition")
        state = None if agent.table is None else self.get(agent.table, key)
        now = utc_now()
        try:
            decided = agent.decide(state, envelope, now, self)
        except UnhandledEvent as exc:
            return self.dead_letter(message, spec, str(exc), envelope.event_id, reason="unhandled_event")
        except Exception as exc:  # noqa: BLE001 - any decision failure sets the event aside
            log.exception("deciding %s %s failed", envelope.type, envelope.event_id,
                          extra=event_fields(message, envelope.event_id))
            return self.dead_letter(message, spec, f"decision failed: {exc!r}", envelope.event_id,
                                    reason="decision_failed")
        if inspect.isawaitable(decided):
            self._park(message, agent, spec, key, state, envelope, decided)
            return
        self._apply(agent, key, state, envelope, decided, now, self.tallies[message.topic()])

    def _apply(self, agent: Agent, key: bytes, state: Any, envelope: Envelope, decision: Decision[Any],
               now: datetime, tally: Tally) -> None:
        """Keep the decision's state and send its events, stamped `now` (the time of the decision)."""
        changed = decision.state != state
        if changed:
            self.put(agent, key, decision.state)
        for index, payload in enumerate(decision.events):
            self.send(envelope.derive(payload, index, now, decision.tenant))
        if changed or decision.events:
            tally.applied += 1
        else:
            tally.unchanged += 1

    def send(self, event: Envelope) -> None:
        spec, key = topics.route(event)
        if spec.broadcast:
            value = event.to_bytes()
            for partition in range(self.partitions):
                self.outputs.produce(topics.full_name(self.namespace, spec.name), key, value, partition)
            return
        self.outputs.produce(topics.full_name(self.namespace, spec.name), key, event.to_bytes())

    def _park(self, message: confluent_kafka.Message, agent: Agent, spec: topics.TopicSpec, key: bytes,
              state: Any, envelope: Envelope, call: Awaitable[Decision[Any]]) -> None:
        waiting: deque[confluent_kafka.Message] = deque()
        self.busy[(agent.name, key)] = waiting
        self.unfinished.setdefault(message.topic(), set()).add(message.offset())

        def done(result: Decision[Any] | BaseException) -> None:
            if self.closed or self.busy.get((agent.name, key)) is not waiting:
                return  # aborted or revoked meanwhile: the event is processed again
            del self.busy[(agent.name, key)]
            self.unfinished[message.topic()].discard(message.offset())
            if isinstance(result, BaseException):
                log.error("deciding %s %s failed: %r", envelope.type, envelope.event_id, result,
                          extra=event_fields(message, envelope.event_id))
                self.dead_letter(message, spec, f"decision failed: {result!r}", envelope.event_id,
                                 reason="decision_failed")
            else:
                self._apply(agent, key, state, envelope, result, utc_now(), self.tallies[message.topic()])
            while waiting:
                queued = waiting.popleft()
                self.unfinished[queued.topic()].discard(queued.offset())
                self._handle(queued, agent, self.routes[queued.topic()][1])
                again = self.busy.get((agent.name, key))
                if again is not None:
                    again.extend(waiting)
                    return

        self.outside.start(with_event(call, event_fields(message, envelope.event_id)), done)

    # -- dead letters --------------------------------------------------------------------------

    def dead_letter(self, message: confluent_kafka.Message, spec: topics.TopicSpec, error: str,
                    event_id: str | None = None, *, reason: Reason) -> None:
        """Set the record aside on the topic's dead-letter topic; `event_id` when it decoded, `reason`
        the class of `error` that the metrics count (never its text, which names keys)."""
        tally = self.tallies[message.topic()]
        tally.dead[reason] = tally.dead.get(reason, 0) + 1
        raw: bytes = message.value() or b""
        log.warning("dead-lettered: %s", error[:500], extra=event_fields(message, event_id))
        letter = Envelope.new(_tenant_of(raw), DeadLetter(
            source_topic=message.topic(),
            source_partition=message.partition(),
            source_offset=message.offset(),
            error=error[:2000],
            original_key=None if message.key() is None else base64.b64encode(message.key()[:1024]).decode(),
            original_value=base64.b64encode(raw[:DEAD_LETTER_VALUE_PREFIX]).decode(),
            original_size=len(raw),
        ))
        self.outputs.produce(topics.full_name(self.namespace, spec.dead_letter_name), message.key(), letter.to_bytes())


def _tenant_of(raw: bytes) -> str:
    if len(raw) > DEAD_LETTER_VALUE_PREFIX:
        return "unknown"
    try:
        tenant = json.loads(raw).get("tenant")
    except (ValueError, AttributeError):
        return "unknown"
    return tenant if isinstance(tenant, str) and TENANT_PATTERN.fullmatch(tenant) else "unknown"


def _brief(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors()[:5])
