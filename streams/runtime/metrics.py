"""A worker's Prometheus metrics, served at `/metrics` by its read server (reads.py).

The metrics live in `WORKER`, a registry of their own, so that the gateway, which imports the
runtime for its read credential, does not show them; `/metrics` serves `WORKER` beside
prometheus-client's default registry (process and Python collectors, and the Stripe metrics of
connectors/stripe.py). Every label has a bounded set of values: agent and topic names of the
registry (without the namespace), partition numbers, and fixed outcome and reason names; never a
key, an id, a tenant or an error's text. The README's "Metrics" section lists them.

The processing thread is hot: a task counts its events' outcomes in plain integers (`Tally`, one
per source topic) and adds them to these counters once per commit (`Task.committed`); an aborted
transaction's counts are dropped with its writes, and its events are counted when processed again.
So the counters count committed work. Lag is read from the consumer's cached watermarks once a
second (`StreamThread`), never per event.
"""

from __future__ import annotations

from typing import Literal

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# No `*_created` series beside each counter and histogram: they double the series for nothing a
# dashboard uses (prometheus-client's switch is process-wide; the gateway imports this module too).
disable_created_metrics()

WORKER = CollectorRegistry(auto_describe=True)

Outcome = Literal["applied", "unchanged", "dead_lettered"]
# Why an event was dead-lettered: the class, never the message (which names keys).
Reason = Literal["invalid_event", "wrong_topic", "wrong_key", "wrong_partition", "unhandled_event", "decision_failed"]
REASONS: tuple[Reason, ...] = ("invalid_event", "wrong_topic", "wrong_key", "wrong_partition", "unhandled_event",
                               "decision_failed")

EVENTS_PROCESSED = Counter(
    "fc_events_processed", "Events of a source topic an agent processed, counted when their transaction commits",
    ["agent", "topic"], registry=WORKER)
DECISIONS = Counter(
    "fc_decisions", "What agents' events came to: applied (state changed or events sent), unchanged, dead_lettered",
    ["agent", "outcome"], registry=WORKER)
DEAD_LETTERS = Counter(
    "fc_dead_letters", "Events sent to <topic>.dlq, by source topic and reason class",
    ["agent", "topic", "reason"], registry=WORKER)
COMMIT_EVENTS = Histogram(
    "fc_commit_batch_events", "Events per committed transaction (commits that carried events)",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000), registry=WORKER)
COMMIT_SECONDS = Histogram(
    "fc_commit_duration_seconds", "Time of a transaction's commit: changelogs, flush, offsets, commit, stores",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=WORKER)
ABORTS = Counter(
    "fc_transaction_aborts", "Transactions aborted (their events are processed again from the committed offsets)",
    registry=WORKER)
CONSUMER_LAG = Gauge(
    "fc_consumer_lag_records", "Records of a source partition not yet consumed: high watermark (last stable offset "
    "under read_committed) minus the consumer's position, updated once a second", ["topic", "partition"],
    registry=WORKER)
ASSIGNED_PARTITIONS = Gauge(
    "fc_assigned_partitions", "Partition numbers this worker holds (one task each, every source topic and table)",
    registry=WORKER)
REBALANCES = Counter(
    "fc_rebalances", "Rebalance callbacks: partitions assigned, revoked, or lost (fenced out of the group)",
    ["kind"], registry=WORKER)
RESTORE_REMAINING = Gauge(
    "fc_restore_remaining_records", "Changelog offsets left to restore before the assigned partitions are served",
    registry=WORKER)
RESTORED_RECORDS = Counter(
    "fc_restored_records", "Changelog records applied to stores by restores", registry=WORKER)
RESTORE_SECONDS = Histogram(
    "fc_restore_duration_seconds", "Time of a restore of the changelog tails of newly assigned partitions",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300), registry=WORKER)


class Tally:
    """What one source topic's events of one task came to since the last commit, in plain integers
    (an attribute increment per event); `flush` adds them to the counters at the commit."""

    __slots__ = ("agent", "topic", "applied", "unchanged", "dead", "_processed", "_applied", "_unchanged",
                 "_dead_lettered")

    def __init__(self, agent: str, topic: str) -> None:
        self.agent = agent
        self.topic = topic
        self.applied = 0
        self.unchanged = 0
        self.dead: dict[Reason, int] = {}
        # Counters' children looked up once: `labels()` takes a lock and a dict lookup per call.
        self._processed = EVENTS_PROCESSED.labels(agent, topic)
        self._applied = DECISIONS.labels(agent, "applied")
        self._unchanged = DECISIONS.labels(agent, "unchanged")
        self._dead_lettered = DECISIONS.labels(agent, "dead_lettered")

    @property
    def events(self) -> int:
        return self.applied + self.unchanged + sum(self.dead.values())

    def flush(self) -> int:
        """Add the counts to the counters and start again; the number of events."""
        events = self.events
        if not events:
            return 0
        self._processed.inc(events)
        if self.applied:
            self._applied.inc(self.applied)
        if self.unchanged:
            self._unchanged.inc(self.unchanged)
        if self.dead:
            self._dead_lettered.inc(sum(self.dead.values()))
            for reason, count in self.dead.items():
                DEAD_LETTERS.labels(self.agent, self.topic, reason).inc(count)
        self.reset()
        return events

    def reset(self) -> None:
        self.applied = 0
        self.unchanged = 0
        if self.dead:
            self.dead = {}


def exposition(*registries: CollectorRegistry) -> tuple[bytes, str]:
    """The text exposition of `registries` and of prometheus-client's default registry, and its content type."""
    return b"".join(generate_latest(registry) for registry in (*registries, REGISTRY)), CONTENT_TYPE_LATEST
