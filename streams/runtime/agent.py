"""What an agent binds: source topics, the table it writes, the tables it reads, its decision.

An agent module builds one `Agent`; the runtime does the rest for each event (`task.py`). A
decision is `decide(state, event, now, tables) -> Decision`, where `tables` reads other tables of
the same partition (the inventory agent prices a reservation from the catalog). A decision that
needs an outside answer first (a Stripe call) returns an awaitable instead; the runtime runs it on
the event loop, bounded by the connector's own deadline, while other keys go on (see `task.py`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel

from streams import topics
from streams.models import Envelope
from streams.tables.decision import Decision

Model = TypeVar("Model", bound=BaseModel)


@dataclass(frozen=True)
class Table(Generic[Model]):
    """A changelogged table: one pydantic model per key, partitioned like the agent's sources."""

    name: str
    model: type[Model]


class Tables(Protocol):
    """Committed-or-pending state of other tables, in the partition being processed."""

    def get(self, table: Table[Model], key: bytes) -> Model | None: ...


Decide = Callable[[Any, Envelope, datetime, Tables], Decision[Any] | Awaitable[Decision[Any]]]


@dataclass(frozen=True)
class Deadline(Generic[Model]):
    """A timer over a table: `due_at(state)` is when a key is due (None: not waiting), and
    `ask(key, state)` the command that asks the agent to act. Due times live in the table's store,
    sorted (`timers.py`); each due key is asked once, inside its partition's transaction."""

    due_at: Callable[[Model], datetime | None]
    ask: Callable[[bytes, Model], Envelope]


@dataclass(frozen=True)
class Agent:
    name: str
    sources: tuple[topics.TopicSpec, ...]
    # None for an agent that keeps no state of its own (it decides from its events and the tables
    # it reads): its decisions give events only.
    table: Table[Any] | None
    decide: Decide
    reads: tuple[Table[Any], ...] = ()
    deadline: Deadline[Any] | None = None
    # How a value is shown to readers; the model's JSON by default.
    render: Callable[[Any], dict[str, Any]] | None = None
    # Agents whose decisions await an outside answer must be idempotent on state: an event already
    # applied, processed again, changes nothing and emits nothing (see task.py, "outside calls").
    calls_outside: bool = False

    @property
    def tables(self) -> tuple[Table[Any], ...]:
        return (self.table, *self.reads) if self.table is not None else self.reads

    def to_json(self, state: Any) -> dict[str, Any]:
        return self.render(state) if self.render is not None else state.model_dump(mode="json")
