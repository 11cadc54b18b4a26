"""The thin shell every agent shares: decode, dead-letter, load state, decide, store, send.

An agent binds a source topic, a table and a pure decision; `Processor.handle` does the rest for
each event. Error policy: a message that does not decode, does not validate, has a key that does
not match its payload, or is not an event the context handles goes to `<topic>.dlq` with the
reason and the original bytes, and the agent goes on with the next one. So does an event whose
decision raises: decisions are pure, so nothing of it was written.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import logging
import re
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Generic, TypeVar

import faust
from pydantic import BaseModel, ValidationError

from streams import topics
from streams.eos import event_boundary
from streams.models import DeadLetter, Envelope, utc_now
from streams.offsets import Admission
from streams.tables.decision import Decision, UnhandledEvent

log = logging.getLogger(__name__)

TENANT_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")

StateModel = TypeVar("StateModel", bound=BaseModel)


class StateTable(Generic[StateModel]):
    """A Faust table of raw bytes holding one pydantic model per key, as JSON."""

    def __init__(self, table: faust.Table, model: type[StateModel]) -> None:
        self.table = table
        self.model = model

    @property
    def name(self) -> str:
        return self.table.name

    def get(self, key: bytes) -> StateModel | None:
        raw = self.table.get(key)
        return None if raw is None else self.model.model_validate_json(raw)

    def put(self, key: bytes, state: StateModel | None) -> None:
        if state is None:
            self.table.pop(key, None)
        else:
            self.table[key] = state.model_dump_json().encode()


class Watchers:
    """Wakes readers waiting for a key of a table to change (long polls, read-your-write), and
    keeps, for a key whose last writes are not committed yet, its value as of the last commit.

    A reader that answered from an uncommitted write could see it undone: a crash aborts the
    transaction, and the restarted worker restores the key as it was and processes the event
    again. Readers get the committed value instead (`committed_view`); the write shows once its
    event's offset is committed, within a commit interval. Nothing here outlives the process: a
    crash aborts what was uncommitted, and a revoked partition was committed before it moved.
    """

    def __init__(self, committed_offset: Callable[[Any], int | None], assigned: Callable[[Any], bool]) -> None:
        self._waiting: dict[tuple[str, bytes], set[asyncio.Future[None]]] = defaultdict(set)
        # (table, key) -> [value as of the last commit, (partition, offset) of the latest write]
        self._uncommitted: dict[tuple[str, bytes], list[Any]] = {}
        self._committed_offset = committed_offset
        self._assigned = assigned
        self._sweep_at = 1024

    def notify(self, table: str, key: bytes, written_at: tuple[Any, int], previous: Any) -> None:
        """`key` of `table` changed from `previous`, by the event at `written_at` (partition, offset)."""
        entry = self._uncommitted.get((table, key))
        if entry is None or self._committed(entry[1]):
            self._uncommitted[(table, key)] = [previous, written_at]
        else:
            entry[1] = written_at
        if len(self._uncommitted) >= self._sweep_at:
            # Keys nobody reads are only found committed here.
            for done in [k for k, (_, at) in self._uncommitted.items() if self._committed(at)]:
                del self._uncommitted[done]
            self._sweep_at = max(1024, 2 * len(self._uncommitted))
        for future in self._waiting.pop((table, key), ()):
            if not future.done():
                future.set_result(None)

    def committed_view(self, table: str, key: bytes) -> tuple[bool, Any]:
        """(True, the value as of the last commit) while the key has uncommitted writes, else (False, None)."""
        entry = self._uncommitted.get((table, key))
        if entry is None:
            return False, None
        if self._committed(entry[1]):
            del self._uncommitted[(table, key)]
            return False, None
        return True, entry[0]

    def _committed(self, written_at: tuple[Any, int]) -> bool:
        tp, offset = written_at
        committed = self._committed_offset(tp)
        return (committed is not None and committed > offset) or not self._assigned(tp)

    async def wait(self, table: str, key: bytes, timeout: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiting = self._waiting[(table, key)]
        waiting.add(future)
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            pass
        finally:
            waiting.discard(future)
            if not waiting:
                self._waiting.pop((table, key), None)


class TopicBinder:
    """Faust topic objects for registry entries, raw bytes in and out, under one namespace."""

    def __init__(self, app: faust.App, namespace: str) -> None:
        self.app = app
        self.namespace = namespace
        self._topics: dict[str, faust.TopicT] = {}

    def topic(self, name: str) -> faust.TopicT:
        if name not in self._topics:
            self._topics[name] = self.app.topic(
                topics.full_name(self.namespace, name),
                key_type=bytes,
                value_type=bytes,
                key_serializer="raw",
                value_serializer="raw",
            )
        return self._topics[name]

    def source(self, *specs: topics.TopicSpec) -> faust.TopicT:
        return self.app.topic(
            *(topics.full_name(self.namespace, spec.name) for spec in specs),
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
        )

    async def send(self, event: Envelope) -> None:
        spec, key = topics.route(event)
        await self.topic(spec.name).send(key=key, value=event.to_bytes())

    async def dead_letter(self, spec: topics.TopicSpec, event: faust.EventT, error: str) -> None:
        message = event.message
        raw_value: bytes = message.value or b""
        log.warning(
            "dead-lettered %s[%d]@%d: %s", message.topic, message.partition, message.offset, error
        )
        letter = Envelope.new(
            _tenant_of(raw_value),
            DeadLetter(
                source_topic=message.topic,
                source_partition=message.partition,
                source_offset=message.offset,
                error=error[:2000],
                original_key=None if message.key is None else base64.b64encode(message.key).decode(),
                original_value=base64.b64encode(raw_value).decode(),
            ),
        )
        await self.topic(spec.dead_letter_name).send(key=message.key, value=letter.to_bytes())


def _tenant_of(raw: bytes) -> str:
    try:
        tenant = json.loads(raw).get("tenant")
    except (ValueError, AttributeError):
        return "unknown"
    return tenant if isinstance(tenant, str) and TENANT_PATTERN.fullmatch(tenant) else "unknown"


Decide = Callable[[Any, Envelope, datetime], Decision[Any] | Awaitable[Decision[Any]]]


class Processor(Generic[StateModel]):
    """Applies one context's decision to each event of its source topics."""

    def __init__(
        self,
        binder: TopicBinder,
        sources: tuple[topics.TopicSpec, ...],
        table: StateTable[StateModel],
        decide: Decide,
        watchers: Watchers,
        on_stored: Callable[[bytes, StateModel | None], None] | None = None,
    ) -> None:
        self.binder = binder
        self.table = table
        self.decide = decide
        self.watchers = watchers
        self.on_stored = on_stored
        self._spec_by_topic = {topics.full_name(binder.namespace, spec.name): spec for spec in sources}

    async def handle(self, event: faust.EventT) -> None:
        consumer = self.binder.app.consumer
        async with event_boundary:
            admission = consumer.admit(event.message)
            if admission is Admission.NEXT:
                await self._handle(event)
                consumer.processed(event.message)
            elif admission is Admission.OUT_OF_ORDER:
                await consumer.reread(event.message.tp, event.message.offset)

    async def _handle(self, event: faust.EventT) -> None:
        spec = self._spec_by_topic[event.message.topic]
        key: bytes | None = event.key
        try:
            envelope = Envelope.from_bytes(event.value)
        except ValidationError as exc:
            await self.binder.dead_letter(spec, event, f"invalid event: {_brief(exc)}")
            return
        if type(envelope.payload) not in spec.payloads:
            await self.binder.dead_letter(spec, event, f"{envelope.type} does not belong on {spec.name}")
            return
        expected_key = spec.key_of(envelope)
        if key != expected_key:
            await self.binder.dead_letter(
                spec, event, f"message key {key!r} does not match the payload's key {expected_key!r}"
            )
            return
        state = self.table.get(key)
        try:
            decided = self.decide(state, envelope, utc_now())
            # A decision that needs an outside answer first (a Stripe call) is awaited here, inside
            # the event, so its outcome commits with the event's offset.
            decision = await decided if inspect.isawaitable(decided) else decided
        except UnhandledEvent as exc:
            await self.binder.dead_letter(spec, event, str(exc))
            return
        except Exception as exc:
            # Nothing is written before the decision, so the event can be set aside whole; a
            # crash would only meet it again after the restart.
            log.exception("deciding %s %s failed", envelope.type, envelope.event_id)
            await self.binder.dead_letter(spec, event, f"decision failed: {exc!r}")
            return
        if decision.state != state:
            self.table.put(key, decision.state)
            if self.on_stored is not None:
                self.on_stored(key, decision.state)
            self.watchers.notify(self.table.name, key, (event.message.tp, event.message.offset), previous=state)
        for index, payload in enumerate(decision.events):
            await self.binder.send(envelope.derive(payload, index, utc_now()))


def _brief(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors()[:5])
