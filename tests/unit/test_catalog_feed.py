"""The catalog view's feed (gateway/catalog_feed.py) with an in-memory consumer: it assigns every partition
of both topics from the beginning without a group, applies the records, skips what is not an event, and
says the view is ready only once every partition is read up to the end it saw at start."""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import confluent_kafka

from gateway.catalog_feed import CatalogFeed
from gateway.catalog_view import CatalogView, Query
from streams.models import AvailabilityChanged, Envelope, Money, ProductUpserted
from streams.settings import Settings

PRODUCTS, AVAILABILITY = "ns.catalog.products", "ns.inventory.availability"


@dataclass
class Message:
    _topic: str
    _partition: int
    _offset: int
    _value: bytes | None
    _eof: bool = False

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes | None:
        return self._value

    def error(self) -> Any:
        return SimpleNamespace(code=lambda: confluent_kafka.KafkaError._PARTITION_EOF) if self._eof else None


class FakeConsumer:
    """Two partitions per topic; `ends` are the high watermarks at start."""

    def __init__(self, ends: dict[tuple[str, int], int]) -> None:
        self.ends = ends
        self.config: dict[str, Any] = {}
        self.assigned: list[Any] = []
        self.messages: queue.Queue[Message] = queue.Queue()
        self.closed = threading.Event()

    def __call__(self, config: dict[str, Any]) -> FakeConsumer:
        self.config = config
        return self

    def list_topics(self, name: str, timeout: float) -> Any:
        return SimpleNamespace(topics={name: SimpleNamespace(error=None, partitions={0: None, 1: None})})

    def get_watermark_offsets(self, tp: Any, timeout: float) -> tuple[int, int]:
        return 0, self.ends.get((tp.topic, tp.partition), 0)

    def assign(self, partitions: list[Any]) -> None:
        self.assigned = [(tp.topic, tp.partition, tp.offset) for tp in partitions]

    def poll(self, timeout: float) -> Message | None:
        try:
            return self.messages.get(timeout=0.01)
        except queue.Empty:
            return None

    def close(self) -> None:
        self.closed.set()


def product(sku: str) -> bytes:
    return Envelope.new("acme", ProductUpserted(sku=sku, name=f"Mug {sku}", price=Money(amount=100, currency="EUR"))).to_bytes()


def wait_for(check: Any, what: str) -> None:
    deadline = time.monotonic() + 5
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_the_view_is_ready_once_every_partition_is_read_up_to_its_end_at_start():
    # Given products in partition 0 (offsets 0-1, a commit marker at 2: end 3) and availability in partition 1
    consumer = FakeConsumer({(PRODUCTS, 0): 3, (AVAILABILITY, 1): 1})
    view = CatalogView()
    feed = CatalogFeed(Settings(topic_namespace="ns."), view, consumer=consumer)
    feed.start()
    try:
        wait_for(lambda: consumer.assigned, "the assignment")
        # Then it assigned every partition of both topics from the beginning and joins no group
        assert consumer.assigned == [(PRODUCTS, 0, confluent_kafka.OFFSET_BEGINNING),
                                     (PRODUCTS, 1, confluent_kafka.OFFSET_BEGINNING),
                                     (AVAILABILITY, 0, confluent_kafka.OFFSET_BEGINNING),
                                     (AVAILABILITY, 1, confluent_kafka.OFFSET_BEGINNING)]
        assert consumer.config["isolation.level"] == "read_committed"
        assert consumer.config["enable.auto.commit"] is False

        # When the first records and a record that is no event come
        consumer.messages.put(Message(PRODUCTS, 0, 0, product("MUG-1")))
        consumer.messages.put(Message(PRODUCTS, 0, 1, b"not json"))
        availability = Envelope.new("acme", AvailabilityChanged(sku="MUG-1", available=3, in_stock=True))
        consumer.messages.put(Message(AVAILABILITY, 1, 0, availability.to_bytes()))
        wait_for(lambda: feed.skipped == 1 and view.product("acme", "MUG-1") is not None, "the records applied")
        # Then it is not ready: partition 0 of the products has not reached its end (the marker at offset 2)
        time.sleep(0.05)
        assert not view.ready.is_set()

        # When the consumer reaches that partition's end
        consumer.messages.put(Message(PRODUCTS, 0, 3, None, _eof=True))
        wait_for(view.ready.is_set, "ready")

        # Then the view answers with what it read, and goes on following
        consumer.messages.put(Message(PRODUCTS, 1, 0, product("MUG-2")))
        wait_for(lambda: view.product("acme", "MUG-2") is not None, "a record after the start")
        items = view.search("acme", Query(sort="price_asc")).items
        assert [(i["sku"], i["in_stock"]) for i in items] == [("MUG-1", True), ("MUG-2", False)]
    finally:
        feed.stop()
    assert consumer.closed.is_set()


def test_empty_topics_are_ready_at_once():
    consumer = FakeConsumer({})
    view = CatalogView()
    feed = CatalogFeed(Settings(topic_namespace="ns."), view, consumer=consumer)
    feed.start()
    try:
        wait_for(view.ready.is_set, "ready with nothing to read")
    finally:
        feed.stop()
