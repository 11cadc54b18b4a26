"""The tap against the real broker (streams/tap.py): exactly the committed events of a fixture run,
records of aborted transactions excluded; export and capture round-trip; nothing committed anywhere.

No workers: the test writes every record itself (the catalog fixture through `devtools.replay`,
order events through a transactional producer it commits or aborts), so every expected value is
what it wrote.
"""

from __future__ import annotations

import asyncio
import os
import select
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

import confluent_kafka
import orjson
import polars as pl
import pytest
from confluent_kafka.admin import AdminClient

from connectors.kafka import prepare_cluster
from devtools.replay import read_fixture, replay
from streams import frames, tap, topics
from streams import models as m
from streams.partitioning import CONFLUENT_PARTITIONER
from streams.settings import PROJECT_ROOT, Settings
from tests.conftest import read_topic as read_raw

FIXTURES = PROJECT_ROOT / "tests" / "fixtures"
PARTITIONS = 3
THREE_HOURS_AGO = datetime.now(UTC) - timedelta(hours=3)


@dataclass
class Written:
    """What the test wrote: the committed events with their (partition, offset), and the aborted ones."""

    settings: Settings
    catalog: list[m.Envelope]
    committed: dict[uuid.UUID, m.Envelope] = field(default_factory=dict)
    positions: dict[uuid.UUID, tuple[int, int]] = field(default_factory=dict)
    old: set[uuid.UUID] = field(default_factory=set)  # written three hours ago (by record timestamp)
    aborted: list[m.Envelope] = field(default_factory=list)

    def topic(self, name: str) -> str:
        return topics.full_name(self.settings.topic_namespace, name)

    def env(self) -> dict[str, str]:
        return {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": self.settings.bootstrap_servers,
                "FC_TOPIC_NAMESPACE": self.settings.topic_namespace, "FC_TOPIC_PARTITIONS": str(PARTITIONS)}


def order_events(tenant: str, count: int, at: datetime) -> list[m.Envelope]:
    """A fixture run's orders: each placed (no total yet), then reserved with its total."""
    events = []
    for i in range(count):
        order = uuid.uuid4()
        events.append(m.Envelope.new(tenant, m.OrderStatusChanged(
            order_id=order, customer=f"c{i}", status="pending", previous_status=None), occurred_at=at))
        events.append(m.Envelope.new(tenant, m.OrderStatusChanged(
            order_id=order, customer=f"c{i}", status="reserved", previous_status="pending",
            total=m.Money(amount=1000 + i, currency="EUR"), item_count=i + 1), occurred_at=at))
    return events


def transactional_producer(bootstrap: str, name: str) -> confluent_kafka.Producer:
    """A producer of its own transactional id, partitioning as the project does."""
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "partitioner": CONFLUENT_PARTITIONER,
                                         "transactional.id": f"{name}-{uuid.uuid4().hex}"})
    producer.init_transactions(30)
    return producer


def transaction(producer: confluent_kafka.Producer, topic: str, events: list[m.Envelope], *, commit: bool,
                timestamp: datetime | None = None) -> dict[uuid.UUID, tuple[int, int]]:
    """Write `events` in one transaction, flushed to the log, then commit or abort it."""
    positions: dict[uuid.UUID, tuple[int, int]] = {}

    def delivered(err: confluent_kafka.KafkaError | None, msg: confluent_kafka.Message) -> None:
        assert err is None, err
        positions[m.Envelope.from_bytes(msg.value()).event_id] = (msg.partition(), msg.offset())

    producer.begin_transaction()
    for event in events:
        _, key = topics.route(event)
        producer.produce(topic, key=key, value=event.to_bytes(), on_delivery=delivered,
                         timestamp=int(timestamp.timestamp() * 1000) if timestamp else 0)
    producer.flush(30)
    (producer.commit_transaction if commit else producer.abort_transaction)(30)
    return positions


@pytest.fixture(scope="module")
def written(kafka_bootstrap: str) -> Iterator[Written]:
    # Given topics in a namespace of their own, the catalog fixture replayed into them
    settings = Settings(external_bootstrap=kafka_bootstrap, topic_namespace=f"tap-{uuid.uuid4().hex[:8]}.",
                        topic_partitions=PARTITIONS)
    prepare_cluster(settings)
    asyncio.run(replay(settings, [FIXTURES / "catalog.jsonl"], progress=False))
    run = Written(settings, read_fixture(FIXTURES / "catalog.jsonl"))
    # and order events in transactions: committed three hours ago, aborted, committed now
    producer = transactional_producer(kafka_bootstrap, "tap-test")
    topic = run.topic("orders.events")
    old = order_events("acme", 4, THREE_HOURS_AGO)
    run.positions |= transaction(producer, topic, old, commit=True, timestamp=THREE_HOURS_AGO)
    run.old = {e.event_id for e in old}
    run.aborted = order_events("acme", 5, datetime.now(UTC)) + order_events("globex", 2, datetime.now(UTC))
    transaction(producer, topic, run.aborted, commit=False)
    new = order_events("acme", 3, datetime.now(UTC)) + order_events("globex", 3, datetime.now(UTC))
    run.positions |= transaction(producer, topic, new, commit=True)
    run.committed = {e.event_id: e for e in old + new}
    # (the aborted records are in the log: a read_uncommitted reader sees them)
    everything = read_raw(kafka_bootstrap, topic, expect=len(old) + len(new) + len(run.aborted),
                          committed_only=False)
    assert len(everything) == len(old) + len(new) + len(run.aborted)
    yield run


def by_id(events: Iterable[m.Envelope]) -> list[m.Envelope]:
    return sorted(events, key=lambda e: e.event_id)


def readline(pipe: IO[bytes], timeout: float) -> bytes:
    """A line of a child's output, or fail after `timeout` seconds."""
    ready, _, _ = select.select([pipe], [], [], timeout)
    assert ready, f"no line within {timeout}s"
    return pipe.readline()


def fc_tap(run: Written, *args: str) -> subprocess.CompletedProcess[bytes]:
    done = subprocess.run([sys.executable, "-m", "streams.tap", *args], env=run.env(), cwd=PROJECT_ROOT,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    return done


def tail_lines(run: Written, *args: str) -> list[dict]:
    return [orjson.loads(line) for line in fc_tap(run, "tail", *args).stdout.splitlines()]


def test_tail_prints_exactly_the_committed_events(written: Written) -> None:
    # When the orders' topic is tailed from the beginning
    lines = tail_lines(written, "orders.events")
    # Then every committed event comes once, decoded, at the position it was written; no aborted one
    events = {line["event"]["event_id"]: line for line in lines}
    assert len(lines) == len(events) == len(written.committed)
    for event_id, event in written.committed.items():
        line = events[str(event_id)]
        assert m.Envelope.model_validate(line["event"]) == event
        assert (line["partition"], line["offset"]) == written.positions[event_id]
        assert line["key"] == str(event.payload.order_id)  # type: ignore[attr-defined]
    assert not {str(e.event_id) for e in written.aborted} & set(events)


def test_tail_of_a_fixture_replayed_with_an_idempotent_producer(written: Written) -> None:
    lines = tail_lines(written, "catalog.products", "--from-beginning")
    assert by_id(m.Envelope.model_validate(line["event"]) for line in lines) == by_id(written.catalog)


def test_tail_filters_by_tenant_time_and_offset(written: Written) -> None:
    globex = tail_lines(written, "orders.events", "--tenant", "globex", "--type", "OrderStatusChanged")
    assert {line["event"]["event_id"] for line in globex} == {
        str(i) for i, e in written.committed.items() if e.tenant == "globex"}
    recent = tail_lines(written, "orders.events", "--since", "2h")
    assert {line["event"]["event_id"] for line in recent} == {str(i) for i in written.committed if i not in written.old}
    # From the middle of the partition that holds the most committed events
    partition = max(range(PARTITIONS), key=lambda p: sum(pos[0] == p for pos in written.positions.values()))
    offsets = sorted(o for p, o in written.positions.values() if p == partition)
    middle = offsets[len(offsets) // 2]
    from_middle = tail_lines(written, "orders.events", "--offset", f"{partition}:{middle}")
    assert [(line["partition"], line["offset"]) for line in from_middle] == [(partition, o) for o in offsets if o >= middle]
    assert tail_lines(written, "orders.events", "--offset", f"{partition}:{10**9}") == []  # past the end: nothing


def test_an_unknown_topic_or_type_is_refused_by_name(written: Written) -> None:
    done = subprocess.run([sys.executable, "-m", "streams.tap", "tail", "orders.event"], env=written.env(),
                          cwd=PROJECT_ROOT, capture_output=True, timeout=60)
    assert done.returncode == 1 and b"no topic 'orders.event'" in done.stderr


def test_read_topic_returns_exactly_the_committed_events_as_typed_columns(written: Written) -> None:
    # When a notebook reads the orders' topic (no event loop)
    df = tap.read_topic("orders.events", settings=written.settings)
    # Then one row per committed event, in the frame's types, with its position
    assert df.schema == pl.Schema(frames.schema(topics.ORDERS_EVENTS))
    assert sorted(df["event_id"].to_list()) == sorted(str(i) for i in written.committed)
    assert {(r["partition"], r["offset"]) for r in df.iter_rows(named=True)} == set(written.positions.values())
    assert by_id(frames.events_from_frame(df)) == by_id(written.committed.values())
    reserved = [e.payload for e in written.committed.values() if e.payload.status == "reserved"]  # type: ignore[attr-defined]
    assert df["total_amount"].sum() == sum(p.total.amount for p in reserved)  # type: ignore[attr-defined]
    assert df.filter(pl.col("status") == "pending")["total_amount"].null_count() == len(written.committed) // 2


def test_read_topic_since_an_hour(written: Written) -> None:
    df = tap.read_topic("orders.events", since="1h", settings=written.settings)
    assert set(df["event_id"].to_list()) == {str(i) for i in written.committed if i not in written.old}
    assert tap.read_topic("orders.events", since="1h", tenant="nobody", settings=written.settings).height == 0


def test_export_round_trips_through_parquet_and_jsonl(written: Written, tmp_path: Path) -> None:
    # When the topic is exported to both formats
    for name in ("orders.parquet", "orders.jsonl"):
        done = fc_tap(written, "export", "orders.events", "--to", str(tmp_path / name))
        assert f"{len(written.committed)} events".encode() in done.stderr
    # Then each reads back to the committed events
    from_parquet = frames.events_from_frame(pl.read_parquet(tmp_path / "orders.parquet"))
    from_jsonl = read_fixture(tmp_path / "orders.jsonl")
    expected = by_id(written.committed.values())
    assert by_id(from_parquet) == expected and by_id(from_jsonl) == expected


def test_capture_then_replay_feeds_the_same_events(written: Written, tmp_path: Path) -> None:
    # Given a capture of the orders' topic
    fixture = tmp_path / "session.jsonl"
    fc_tap(written, "capture", "orders.events", "--to", str(fixture))
    # When it is replayed into another namespace
    other = Settings(external_bootstrap=written.settings.bootstrap_servers,
                     topic_namespace=f"tap-replay-{uuid.uuid4().hex[:8]}.", topic_partitions=PARTITIONS)
    replayed = subprocess.run([sys.executable, "-m", "streams.tap", "replay", str(fixture)],
                              env={**written.env(), "FC_TOPIC_NAMESPACE": other.topic_namespace},
                              cwd=PROJECT_ROOT, capture_output=True, timeout=120)
    assert replayed.returncode == 0, replayed.stderr.decode()
    # Then that namespace's topic holds the same events, keyed and partitioned as the originals
    target = topics.full_name(other.topic_namespace, "orders.events")
    messages = read_raw(other.bootstrap_servers, target, expect=len(written.committed))
    assert len(messages) == len(written.committed)
    for message in messages:
        event = m.Envelope.from_bytes(message.value())
        assert event == written.committed[event.event_id]
        assert message.partition() == written.positions[event.event_id][0]
        assert message.key() == str(event.payload.order_id).encode()  # type: ignore[attr-defined]


def test_tail_follow_prints_new_committed_events_only(written: Written) -> None:
    # Given a stock change already on its topic, and a tail following that topic
    producer = transactional_producer(written.settings.bootstrap_servers, "tap-follow")
    topic = written.topic("inventory.stock-changes")

    def change(sku: str) -> m.Envelope:
        return m.Envelope.new("acme", m.StockAdjusted(adjustment_id=uuid.uuid4(), sku=sku, delta=1, reason="count",
                                                       on_hand=1, reserved=0))

    before = change("MUG-1")
    transaction(producer, topic, [before], commit=True)
    follower = subprocess.Popen([sys.executable, "-m", "streams.tap", "tail", "inventory.stock-changes", "--follow"],
                                env=written.env(), cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert follower.stderr is not None and follower.stdout is not None
        while b"following" not in readline(follower.stderr, 30):
            pass
        # When one is aborted and one committed
        transaction(producer, topic, [change("TEA-1")], commit=False)
        after = change("POT-1")
        transaction(producer, topic, [after], commit=True)
        # Then the tail prints the committed one only, and goes on
        line = orjson.loads(readline(follower.stdout, 30))
        assert m.Envelope.model_validate(line["event"]) == after
        time.sleep(1)
        assert follower.poll() is None
    finally:
        follower.terminate()
        follower.wait(10)


def test_tail_stops_at_the_last_committed_record_while_a_transaction_is_open(written: Written) -> None:
    # Given a committed payment event, then a transaction left open (as a worker's between commits)
    producer = transactional_producer(written.settings.bootstrap_servers, "tap-open")
    topic = written.topic("payments.events")
    order = uuid.uuid4()
    money = m.Money(amount=2598, currency="EUR")
    committed = m.Envelope.new("acme", m.PaymentAuthorized(order_id=order, intent_id="pi_1", amount=money))
    transaction(producer, topic, [committed], commit=True)
    producer.begin_transaction()
    pending = m.Envelope.new("acme", m.PaymentCaptured(order_id=order, intent_id="pi_1", amount=money))
    producer.produce(topic, key=str(order).encode(), value=pending.to_bytes())
    producer.flush(30)
    try:
        # When the topic is tailed and read
        lines = tail_lines(written, "payments.events")
        df = tap.read_topic("payments.events", settings=written.settings)
    finally:
        producer.abort_transaction(30)
    # Then both stop at the committed event, without waiting for the open transaction
    assert [m.Envelope.model_validate(line["event"]) for line in lines] == [committed]
    assert df["event_id"].to_list() == [str(committed.event_id)] and df["amount"].to_list() == [2598]


async def test_replay_works_inside_a_running_event_loop_as_in_a_notebook(written: Written, tmp_path: Path) -> None:
    fixture = tmp_path / "catalog.jsonl"
    assert tap.capture("catalog.products", fixture, settings=written.settings) == len(written.catalog)
    other = Settings(external_bootstrap=written.settings.bootstrap_servers,
                     topic_namespace=f"tap-loop-{uuid.uuid4().hex[:8]}.", topic_partitions=PARTITIONS)
    assert tap.replay([fixture], other, progress=False) == len(written.catalog)
    assert by_id(frames.events_from_frame(tap.read_topic("catalog.products", settings=other))) == by_id(written.catalog)


def test_the_tap_left_no_group_and_no_committed_offsets(written: Written) -> None:
    # After every read above (this test runs last in the module)
    tap.read_topic("catalog.products", settings=written.settings)
    admin = AdminClient({"bootstrap.servers": written.settings.bootstrap_servers})
    groups = admin.list_consumer_groups(request_timeout=10).result(timeout=30)
    ids = [g.group_id for g in groups.valid]
    assert not [g for g in ids if g.startswith("fc-tap")], ids
    for group in ids:
        request = [confluent_kafka.ConsumerGroupTopicPartitions(group)]
        offsets = admin.list_consumer_group_offsets(request)[group].result(timeout=30)
        ours = [tp for tp in offsets.topic_partitions or [] if tp.topic.startswith(written.settings.topic_namespace)]
        assert ours == [], (group, ours)
