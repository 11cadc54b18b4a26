"""What a worker runs and holds, for an operator scaling by partition: `GET /fc/topology` (reads.py)
and, over every worker of the app, `python -m streams.topology`.

- `agents`: each agent's name, source topics, its own table and the tables it reads;
- `tables`: the tables the worker keeps, each with its changelog topic;
- `partitions`: the partition numbers held, `active` (this worker processes them and serves their
  reads) and `standby` (always empty: the runtime keeps no standby replicas; a partition that
  moves is restored from its changelog by its new owner);
- `lag`: per source partition held, the high watermark (under read_committed, the last stable
  offset) minus the consumer's position, or the committed offset before the first record.

Lag is computed on request, by the processing thread between two batches (its consumer is not
called from another thread), from what the consumer already knows: `get_watermark_offsets(...,
cached=True)` is the watermark of the last fetch response and `position` a local lookup, so no
broker round trip and nothing per event. A partition not fetched yet has lag `null`.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from typing import Any

import confluent_kafka
from confluent_kafka import TopicPartition

from streams import topics
from streams.runtime.agent import Agent
from streams.runtime.loop import StreamThread
from streams.runtime.stores import changelog_topic

# How long a request waits for the processing thread to measure the lag (it does between batches).
LAG_WAIT_SECONDS = 2.0
STANDBY_NOTE = "no standby replicas: a partition that moves is restored from its changelog"


async def describe(thread: StreamThread, agents: list[Agent], url: str, ready: bool) -> dict[str, Any]:
    """The worker's topology as a JSON-ready dict (see the module's docstring)."""
    held = sorted(thread.tasks)
    return {
        "url": url,
        "group": thread.group_id,
        "client_id": thread.client_id,
        "ready": ready,
        "partition_count": thread.partitions,
        "agents": [{
            "name": agent.name,
            "sources": [topics.full_name(thread.namespace, spec.name) for spec in agent.sources],
            "table": None if agent.table is None else agent.table.name,
            "reads": [table.name for table in agent.reads],
        } for agent in agents],
        "tables": [{"name": name, "changelog": changelog_topic(thread.group_id, name)} for name in thread.table_names],
        "partitions": {"active": held, "standby": [], "standby_note": STANDBY_NOTE},
        "lag": await lag_of(thread, held),
    }


async def lag_of(thread: StreamThread, held: list[int]) -> list[dict[str, Any]]:
    """The lag rows, computed by the processing thread between two batches: its consumer is not to
    be called from another thread (a `position` call from the event loop waits for the poll). A
    thread busy for longer than LAG_WAIT_SECONDS (a restore) gives rows without numbers."""
    wanted = [TopicPartition(topic, number) for topic in thread.sources for number in held]
    if not wanted:
        return []
    answer: Future[list[dict[str, Any]]] = Future()

    def measure() -> None:
        if answer.set_running_or_notify_cancel():
            try:
                answer.set_result(rows(thread, wanted))
            except Exception as exc:  # noqa: BLE001 - reported to the asker, never to the processing loop
                answer.set_exception(exc)

    thread.completions.put(measure)
    try:
        return await asyncio.wait_for(asyncio.wrap_future(answer), LAG_WAIT_SECONDS)
    except (TimeoutError, confluent_kafka.KafkaException, RuntimeError):
        return [{"topic": tp.topic, "partition": tp.partition, "high": None, "position": None,
                 "committed": thread.committed.get((tp.topic, tp.partition)), "lag": None} for tp in wanted]


def rows(thread: StreamThread, wanted: list[TopicPartition]) -> list[dict[str, Any]]:
    """Per source partition: high watermark, position, committed offset and the lag (processing thread)."""
    consumer = thread.consumer
    assigned = {(tp.topic, tp.partition) for tp in consumer.assignment()}
    wanted = [tp for tp in wanted if (tp.topic, tp.partition) in assigned]
    positions = {(tp.topic, tp.partition): tp.offset for tp in consumer.position(wanted)} if wanted else {}
    found = []
    for tp in wanted:
        where = (tp.topic, tp.partition)
        low, high = consumer.get_watermark_offsets(tp, cached=True) or (-1, -1)
        committed = thread.committed.get(where, -1)
        position = positions.get(where, -1)
        if position < 0:  # nothing consumed since the assignment: where the next fetch starts
            position = committed if committed >= 0 else low
        known = high >= 0 and position >= 0
        found.append({
            "topic": tp.topic, "partition": tp.partition,
            "high": high if high >= 0 else None,
            "position": position if position >= 0 else None,
            "committed": committed if committed >= 0 else None,
            "lag": max(0, high - position) if known else None,
        })
    return found
