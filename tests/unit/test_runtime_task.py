"""The runtime's task of one partition (streams/runtime/task.py, timers.py) with real RocksDB stores
in a temporary directory and recording seams for its outputs and outside calls: no Kafka."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import confluent_kafka

from streams import topics
from streams.models import Envelope, Money, Product, ProductUpserted
from streams.partitioning import partition_for
from streams.runtime.agent import Agent, Deadline, Table
from streams.runtime.stores import PartitionStore
from streams.runtime.task import DEAD_LETTER_VALUE_PREFIX, Task
from streams.tables import catalog
from streams.tables.decision import Decision

PARTITIONS = 8
NS = "ns."
SOURCE = topics.full_name(NS, topics.CATALOG_PRODUCTS.name)
DLQ = topics.full_name(NS, topics.CATALOG_PRODUCTS.dead_letter_name)
TABLE = Table("products", Product)
EPOCH = datetime(2026, 12, 1, tzinfo=UTC)


class RecordedOutputs:
    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None, bytes | None]] = []
        self.partitioned: list[tuple[str, bytes | None, bytes | None, int | None]] = []

    def produce(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None) -> None:
        self.records.append((topic, key, value))
        self.partitioned.append((topic, key, value, partition))

    def to(self, topic: str) -> list[dict[str, Any]]:
        return [json.loads(value) for name, _, value in self.records if name == topic and value is not None]


class HeldCalls:
    """Outside calls kept until the test finishes them, in the order it chooses."""

    def __init__(self) -> None:
        self.started: list[tuple[Awaitable[Decision[Any]], Callable[[Any], None]]] = []

    def start(self, call: Awaitable[Decision[Any]], done: Callable[[Any], None]) -> None:
        self.started.append((call, done))

    def finish(self, index: int, result: Any) -> None:
        call, done = self.started[index]
        call.close()  # type: ignore[attr-defined]  # never awaited: the test gives the result
        done(result)


def upsert(sku: str, amount: int = 100) -> Envelope:
    return Envelope.new("acme", ProductUpserted(sku=sku, name=sku, price=Money(amount=amount, currency="EUR")))


def decided(sku: str, amount: int) -> Decision[Product]:
    return Decision(Product(tenant="acme", sku=sku, name=sku, price=Money(amount=amount, currency="EUR"),
                            updated_at=EPOCH))


def key_on(partition: int, prefix: str) -> str:
    """A SKU whose key `acme/<sku>` lands on `partition`."""
    return next(f"{prefix}-{n}" for n in range(10_000) if partition_for(f"acme/{prefix}-{n}".encode(), PARTITIONS) == partition)


def message(event: Envelope, offset: int, partition: int, key: bytes | None = None, value: bytes | None = None
            ) -> confluent_kafka.Message:
    return confluent_kafka.Message(topic=SOURCE, partition=partition, offset=offset,
                                   key=key if key is not None else topics.CATALOG_PRODUCTS.key_of(event),
                                   value=value if value is not None else event.to_bytes())


def task_with(agent: Agent, stores: dict[str, PartitionStore], outputs: RecordedOutputs,
              calls: HeldCalls | None = None) -> Task:
    return Task(3, PARTITIONS, NS, [agent], stores, outputs, calls or HeldCalls())


def commit(task: Task) -> None:
    """Step 5 of the checkpoint, as checkpoint.py does it after the transaction committed."""
    for table, store in task.stores.items():
        store.write(task.changes(table), store.changelog_offset + 1)
    task.committed()


def products_agent(**overrides: Any) -> Agent:
    return Agent(name="products", sources=(topics.CATALOG_PRODUCTS,), table=TABLE,
                 decide=overrides.pop("decide", lambda state, event, now, tables: catalog.decide(state, event, now)),
                 **overrides)


def calling_agent() -> Agent:
    """The products agent, with each decision awaiting an outside answer first."""
    async def call_then_decide(state: Any, event: Envelope, now: datetime) -> Decision[Any]:
        return catalog.decide(state, event, now)

    return products_agent(decide=lambda state, event, now, tables: call_then_decide(state, event, now),
                          calls_outside=True)


def test_the_store_holds_committed_state_only_and_reads_see_the_open_transaction_first(stores) -> None:
    # Given a product upserted on the task's partition
    outputs = RecordedOutputs()
    task = task_with(products_agent(), stores, outputs)
    sku = key_on(3, "MUG")
    task.process(message(upsert(sku), offset=0, partition=3))
    key = f"acme/{sku}".encode()
    # Then the task reads it, but the store does not hold it before the commit ...
    assert task.get(TABLE, key) is not None and task.get(TABLE, key).sku == sku
    assert stores[TABLE.name].get(key) is None
    # ... and does after it, with the changelog offset it reached
    commit(task)
    assert Product.model_validate_json(stores[TABLE.name].get(key)).sku == sku
    assert stores[TABLE.name].changelog_offset == 1


def test_a_dropped_transaction_leaves_nothing_behind(stores) -> None:
    outputs = RecordedOutputs()
    task = task_with(products_agent(), stores, outputs)
    sku = key_on(3, "POT")
    task.process(message(upsert(sku), offset=0, partition=3))
    # When the transaction is aborted
    task.drop_writes()
    # Then neither the task nor the store knows the product, and nothing is left to commit
    assert task.get(TABLE, f"acme/{sku}".encode()) is None
    assert not task.has_writes()


def test_a_key_of_another_partition_is_dead_lettered_and_writes_nothing(stores) -> None:
    # Given a product whose key belongs to partition 5, delivered on partition 3 (a producer that
    # does not partition with murmur2)
    outputs = RecordedOutputs()
    task = task_with(products_agent(), stores, outputs)
    event = upsert(key_on(5, "CUP"))
    task.process(message(event, offset=7, partition=3))
    # Then it is dead-lettered with the reason, and no state is written
    letters = outputs.to(DLQ)
    assert len(letters) == 1 and "belongs to partition 5, not 3" in letters[0]["payload"]["error"]
    assert letters[0]["payload"]["source_offset"] == 7
    assert not task.has_writes()


def test_a_decision_that_raises_is_dead_lettered_and_writes_nothing(stores) -> None:
    def broken(state: Any, event: Envelope, now: datetime, tables: Any) -> Decision[Any]:
        raise ZeroDivisionError("a bug in a decision")

    outputs = RecordedOutputs()
    task = task_with(products_agent(decide=broken), stores, outputs)
    task.process(message(upsert(key_on(3, "BUG")), offset=0, partition=3))
    assert "ZeroDivisionError" in outputs.to(DLQ)[0]["payload"]["error"]
    assert not task.has_writes()


def test_a_poison_record_near_the_size_limit_is_dead_lettered_by_prefix(stores) -> None:
    # Given a record of almost a megabyte that is not an event
    outputs = RecordedOutputs()
    task = task_with(products_agent(), stores, outputs)
    poison = b"x" * 1_000_000
    task.process(confluent_kafka.Message(topic=SOURCE, partition=3, offset=9, key=b"acme/X", value=poison))
    # Then its dead letter keeps a prefix and the size, and stays far below the limit
    (_, _, value), = outputs.records
    letter = json.loads(value)["payload"]
    assert base64.b64decode(letter["original_value"]) == poison[:DEAD_LETTER_VALUE_PREFIX]
    assert letter["original_size"] == len(poison)
    assert len(value) < 2 * DEAD_LETTER_VALUE_PREFIX


def test_a_due_key_is_asked_once_and_a_moved_due_time_moves_its_index_entry(stores) -> None:
    # Given products whose due time is their price in seconds after EPOCH
    from streams.runtime import timers

    asked: list[str] = []

    def ask(key: bytes, product: Product) -> Envelope:
        asked.append(product.sku)
        return upsert(f"ASKED-{product.sku}")

    agent = products_agent(deadline=Deadline(due_at=lambda p: EPOCH + timedelta(seconds=p.price.amount), ask=ask))
    outputs = RecordedOutputs()
    task = task_with(agent, stores, outputs)
    early, late = key_on(3, "EARLY"), key_on(3, "LATE")
    task.process(message(upsert(early, amount=10), offset=0, partition=3))
    task.process(message(upsert(late, amount=20), offset=1, partition=3))
    commit(task)
    # When the early one's due time moves past the late one's
    task.process(message(upsert(early, amount=30), offset=2, partition=3))
    commit(task)
    # Then at 25 s only the late one is due, and it is asked once
    assert timers.fire_due(task, agent, EPOCH + timedelta(seconds=25)) == 1
    commit(task)
    assert timers.fire_due(task, agent, EPOCH + timedelta(seconds=25)) == 0
    # And at 40 s the early one, once
    assert timers.fire_due(task, agent, EPOCH + timedelta(seconds=40)) == 1
    commit(task)
    assert timers.fire_due(task, agent, EPOCH + timedelta(hours=1)) == 0
    assert asked == [late, early]


def test_an_outside_call_holds_its_key_only_and_the_offset_stops_before_it(stores) -> None:
    # Given an agent whose decisions call outside, and two keys of the partition
    agent = calling_agent()
    outputs = RecordedOutputs()
    calls = HeldCalls()
    task = task_with(agent, stores, outputs, calls)
    slow, other = key_on(3, "SLOW"), key_on(3, "OTHER")
    # When the slow key's first event waits on its call, a second event of it and one of another key arrive
    task.process(message(upsert(slow, amount=1), offset=10, partition=3))
    task.process(message(upsert(slow, amount=2), offset=11, partition=3))
    task.process(message(upsert(other, amount=3), offset=12, partition=3))
    # Then the other key's call starts at once, the slow key's second event waits behind its first,
    # and the committable offset stops at the first unfinished event
    assert len(calls.started) == 2
    assert task.first_unfinished(SOURCE) == 10
    # When the other key's call and then the slow key's first call finish
    calls.finish(1, decided(other, 3))
    assert task.first_unfinished(SOURCE) == 10
    calls.finish(0, decided(slow, 1))
    # Then the slow key's second event starts its own call, and the offset waits for it
    assert len(calls.started) == 3 and task.first_unfinished(SOURCE) == 11
    calls.finish(2, decided(slow, 2))
    assert task.first_unfinished(SOURCE) is None
    assert task.get(TABLE, f"acme/{slow}".encode()).price.amount == 2


def test_an_answer_that_comes_after_an_abort_is_ignored(stores) -> None:
    agent = calling_agent()
    calls = HeldCalls()
    task = task_with(agent, stores, RecordedOutputs(), calls)
    sku = key_on(3, "LATE")
    task.process(message(upsert(sku), offset=4, partition=3))
    # When the transaction is aborted while the call runs, and its answer comes afterwards
    task.drop_writes()
    task.drop_calls()
    calls.finish(0, decided(sku, 1))
    # Then the answer writes nothing: the event is processed again from the committed offset
    assert not task.has_writes() and task.first_unfinished(SOURCE) is None


def test_a_broadcast_record_is_sent_to_every_partition_and_kept_by_each_task(tmp_path) -> None:
    # Given the webhook registry agent (its topic is broadcast) on partition 3
    from streams.agents import webhooks as webhook_agents
    from streams.models import WebhookEndpointChanged, WebhookSubscriptions
    registry = webhook_agents.registry()
    store = PartitionStore(tmp_path / "webhook_registry" / "3")
    outputs = RecordedOutputs()
    task = Task(3, PARTITIONS, NS, [registry], {"webhook_registry": store}, outputs, HeldCalls())
    change = Envelope.new("acme", WebhookEndpointChanged(endpoint_id=uuid.UUID(int=1), events=("*",), status="enabled"))
    # When a task sends it, it goes to every partition of the topic
    task.send(change)
    registry_topic = topics.full_name(NS, topics.WEBHOOKS_REGISTRY.name)
    assert sorted(p for topic, _, _, p in outputs.partitioned if topic == registry_topic) == list(range(PARTITIONS))
    # And a copy read on partition 3 is kept, though its key `acme` is not partition 3's
    assert partition_for(b"acme", PARTITIONS) != 3
    task.process(confluent_kafka.Message(topic=registry_topic, partition=3, offset=0, key=b"acme",
                                         value=change.to_bytes()))
    assert outputs.to(topics.full_name(NS, topics.WEBHOOKS_REGISTRY.dead_letter_name)) == []
    kept = task.get(webhook_agents.REGISTRY, b"acme")
    assert isinstance(kept, WebhookSubscriptions) and list(kept.endpoints) == [str(uuid.UUID(int=1))]
    store.close()


def test_an_agent_without_a_table_sends_its_events_and_writes_nothing(stores) -> None:
    # Given an agent that keeps no state and answers each product with a price change of its own
    def decide(state: Any, event: Envelope, now: datetime, tables: Any) -> Decision[None]:
        assert state is None
        return Decision(None, [ProductUpserted(sku=event.payload.sku, name="copy", price=Money(amount=1, currency="EUR"))])

    stateless = Agent(name="copier", sources=(topics.CATALOG_PRODUCTS,), table=None, decide=decide)
    outputs = RecordedOutputs()
    task = task_with(stateless, stores, outputs)
    task.process(message(upsert(key_on(3, "JUG")), offset=0, partition=3))
    assert [e["payload"]["name"] for e in outputs.to(SOURCE)] == ["copy"]
    assert not task.has_writes()
