"""Due times in a sorted index inside a table's store, fired inside the owner's transaction.

For a key that waits (an order's hold, a campaign's deadline) the store holds two entries beside
its state: `t<due ms, 13 digits>|<key>` (sorted by due time, so firing reads only what is due) and
`u<key>` -> the due ms (so a changed due time finds its old index entry). Both are written with the
state in the same transaction and changelogged with it, so a restart or a move loses none.

`fire_due` reads the committed index (entries the open transaction changed wait for its commit):
for each due entry it sends the agent's command (`Deadline.ask`) and deletes the entry, both in the
open transaction. A due key is therefore asked once; the command only asks, the agent decides on
the state it then finds.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from streams.runtime.agent import Agent

if TYPE_CHECKING:
    from streams.runtime.task import Task

log = logging.getLogger(__name__)

INDEX = b"t"
DUE_OF = b"u"


def _ms(when: datetime) -> bytes:
    return b"%013d" % int(when.timestamp() * 1000)


def track(task: Task, table: str, key: bytes, due: datetime | None) -> None:
    """Keep `key`'s index entry in step with its state's due time (None: not waiting)."""
    new = None if due is None else _ms(due)
    old = task.get_raw(table, DUE_OF + key)
    if old == new:
        return
    if old is not None:
        task.put_raw(table, INDEX + old + b"|" + key, None)
    task.put_raw(table, DUE_OF + key, new)
    if new is not None:
        task.put_raw(table, INDEX + new + b"|" + key, b"")


def fire_due(task: Task, agent: Agent, now: datetime, limit: int = 1000) -> int:
    """Ask for every key of `agent`'s table due by `now` (at most `limit`); returns how many."""
    assert agent.deadline is not None
    table = agent.table.name
    horizon = INDEX + _ms(now)
    fired = 0
    for raw_key, _ in task.stores[table].scan(INDEX):
        if raw_key[: len(horizon)] > horizon or fired >= limit:
            break
        if raw_key in task.pending_raw[table]:
            continue  # already handled in this transaction
        key = raw_key[len(horizon) + 1:]
        task.put_raw(table, raw_key, None)
        task.put_raw(table, DUE_OF + key, None)
        state = task.get(agent.table, key)
        if state is None:
            continue
        command = agent.deadline.ask(key, state)
        log.info("%s: %s was due at %s; asking with %s", table, key.decode(errors="replace"),
                 datetime.fromtimestamp(int(raw_key[1:14]) / 1000, UTC).isoformat(), command.type)
        task.send(command)
        fired += 1
    return fired
