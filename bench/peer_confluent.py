"""The plain-Python peer of the reservation benchmark: one confluent-kafka process running the
project's own inventory decision with the same exactly-once and crash-safety shape as the worker's
runtime (streams/runtime/checkpoint.py), without its tasks, rebalances, timers, reads or agents.

    .venv/bin/python -m bench.peer_confluent --bootstrap HOST:PORT --namespace NS --group G \\
        --data-dir DIR --output-prefix P

Consumer read_committed on `<NS>inventory.commands` (its own group), one transactional producer.
Per transaction (committed every 100 ms, as the worker's FC_COMMIT_INTERVAL): for each command,
decode the envelope (pydantic, as the worker does), load the SKU's StockLevel from the
transaction's write cache or else the rocksdict store, call
`streams.tables.inventory.decide(state, envelope, now, product=...)` with the product from a
rocksdict catalog, keep a changed state in the write cache, produce the decision's events
(`Envelope.derive`, as the worker) to `<P><their topic>`. At the commit: one record per changed
key to `<P>inventory-changelog`, flush (the delivery reports give each changelog partition's last
offset), `send_offsets_to_transaction`, commit, and only then write the cache to the store in one
batch with each changelog partition's next offset. So the store holds committed state only, and a
start (after a crash too) restores the changelog's tail from those offsets before consuming.
Undecodable or misplaced commands go to `<P>dead-letters`. The catalog is read from
`<NS>catalog.products` into its store before the first command. It assumes it is the group's
only member (it restores every changelog partition at start and never rebalances). Runs until
SIGTERM. bench/run.py starts it and times it like the worker.
"""

from __future__ import annotations

import argparse
import signal
import time
from pathlib import Path

import confluent_kafka
from confluent_kafka import TopicPartition
from pydantic import ValidationError
from rocksdict import Options, Rdict, WriteBatch

from bench.common import produce_all, producer, read_committed
from streams import topics
from streams.models import Envelope, Product, StockLevel, utc_now
from streams.tables import catalog, inventory
from streams.tables.decision import UnhandledEvent

COMMIT_INTERVAL_SECONDS = 0.1
SPEC = topics.INVENTORY_COMMANDS


def offset_key(partition: int) -> bytes:
    """The store key of the next changelog offset of `partition` the store reflects (no SKU key
    starts with a NUL)."""
    return b"\x00changelog-offset-%d" % partition


class Peer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.source = topics.full_name(args.namespace, SPEC.name)
        self.prefix = args.output_prefix
        self.changelog = f"{self.prefix}inventory-changelog"
        data = Path(args.data_dir)
        data.mkdir(parents=True, exist_ok=True)
        self.stock = Rdict(str(data / "stock"), options=Options(raw_mode=True))
        self.pending: dict[bytes, bytes] = {}  # the open transaction's writes to the stock store
        self.products = Rdict(str(data / "catalog"))
        self.consumer = confluent_kafka.Consumer({
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        })
        self.producer = producer(args.bootstrap, **{"transactional.id": f"{args.group}-tx"})
        self.load_catalog(args.bootstrap, topics.full_name(args.namespace, topics.CATALOG_PRODUCTS.name))
        # Fences a killed predecessor first: its open transaction is aborted, so the restore reads
        # to the changelog's end instead of stopping at that transaction's first record.
        self.producer.init_transactions()
        self.restore(args.bootstrap, args.group)
        self.running = True

    def restore(self, bootstrap: str, group: str) -> None:
        """Bring the stock store to the end of the changelog, each partition from the offset it reflects."""
        reader = confluent_kafka.Consumer({
            "bootstrap.servers": bootstrap, "group.id": f"{group}-restore", "isolation.level": "read_committed",
            "enable.auto.commit": False, "enable.partition.eof": True,
        })
        try:
            partitions = reader.list_topics(self.changelog, timeout=10).topics[self.changelog].partitions
            starts = {p: int(self.stock.get(offset_key(p)) or 0) for p in partitions}
            todo = [TopicPartition(self.changelog, p, start) for p, start in starts.items()
                    if start < reader.get_watermark_offsets(TopicPartition(self.changelog, p), timeout=10)[1]]
            reader.assign(todo)
            batch, at_end, restored = WriteBatch(raw_mode=True), set(), 0
            while len(at_end) < len(todo):
                for message in reader.consume(10_000, timeout=0.1):
                    error = message.error()
                    if error is None:
                        batch.put(message.key(), message.value())
                        restored += 1
                    elif error.code() == confluent_kafka.KafkaError._PARTITION_EOF:
                        at_end.add(message.partition())
                        batch.put(offset_key(message.partition()), str(message.offset()).encode())
                    else:
                        raise confluent_kafka.KafkaException(error)
            self.stock.write(batch)
            print(f"[peer-confluent] restored {restored} changelog records of {len(todo)} partitions", flush=True)
        finally:
            reader.close()

    def load_catalog(self, bootstrap: str, topic: str) -> None:
        for message in read_committed(bootstrap, topic):
            envelope = Envelope.from_bytes(message.value())
            product = catalog.decide(None, envelope, utc_now()).state
            if product is not None:
                self.products[message.key()] = product.model_dump_json().encode()

    def handle(self, message: confluent_kafka.Message) -> None:
        key: bytes = message.key()
        try:
            envelope = Envelope.from_bytes(message.value())
        except ValidationError as exc:
            return self.dead_letter(message, f"invalid event: {exc.error_count()} errors")
        if type(envelope.payload) not in SPEC.payloads or SPEC.key_of(envelope) != key:
            return self.dead_letter(message, f"{envelope.type} does not belong on {SPEC.name} under this key")
        raw_state = self.pending.get(key) or self.stock.get(key)
        state = None if raw_state is None else StockLevel.model_validate_json(raw_state)
        raw_product = self.products.get(key)
        product = None if raw_product is None else Product.model_validate_json(raw_product)
        try:
            decision = inventory.decide(state, envelope, utc_now(), product=product)
        except UnhandledEvent as exc:
            return self.dead_letter(message, str(exc))
        if decision.state != state:
            self.pending[key] = decision.state.model_dump_json().encode()
        for index, payload in enumerate(decision.events):
            derived = envelope.derive(payload, index, utc_now())
            spec, out_key = topics.route(derived)
            produce_all(self.producer, f"{self.prefix}{spec.name}", out_key, derived.to_bytes())

    def dead_letter(self, message: confluent_kafka.Message, error: str) -> None:
        produce_all(self.producer, f"{self.prefix}dead-letters", message.key() or b"",
                    f"{message.topic()}[{message.partition()}]@{message.offset()}: {error}".encode())

    def commit(self) -> None:
        """Changelog, flush, offsets, commit; only then the store, with the changelog offsets."""
        reached: dict[int, int] = {}

        def delivered(error: confluent_kafka.KafkaError | None, message: confluent_kafka.Message) -> None:
            if error is None:
                reached[message.partition()] = max(reached.get(message.partition(), -1), message.offset())

        for key, value in self.pending.items():
            produce_all(self.producer, self.changelog, key, value, on_delivery=delivered)
        if self.producer.flush(30) != 0:
            raise RuntimeError("changelog records not acknowledged within 30s")
        positions = [tp for tp in self.consumer.position(self.consumer.assignment()) if tp.offset >= 0]
        self.producer.send_offsets_to_transaction(positions, self.consumer.consumer_group_metadata())
        self.producer.commit_transaction()
        batch = WriteBatch(raw_mode=True)
        for key, value in self.pending.items():
            batch.put(key, value)
        for partition, offset in reached.items():
            batch.put(offset_key(partition), str(offset + 1).encode())
        self.stock.write(batch)
        self.pending.clear()

    def run(self) -> None:
        self.consumer.subscribe([self.source])
        print(f"[peer-confluent] consuming {self.source}", flush=True)
        in_transaction = False
        began = 0.0
        while self.running:
            messages = self.consumer.consume(500, timeout=0.05)
            for message in messages:
                if message.error() is not None:
                    continue
                if not in_transaction:
                    self.producer.begin_transaction()
                    in_transaction, began = True, time.monotonic()
                self.handle(message)
            if in_transaction and (not messages or time.monotonic() - began >= COMMIT_INTERVAL_SECONDS):
                self.commit()
                in_transaction = False
        if in_transaction:
            self.commit()
        self.consumer.close()
        self.stock.close()
        self.products.close()

    def stop(self, *_: object) -> None:
        self.running = False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("bootstrap", "namespace", "group", "data-dir", "output-prefix"):
        parser.add_argument(f"--{name}", required=True)
    peer = Peer(parser.parse_args())
    signal.signal(signal.SIGTERM, peer.stop)
    signal.signal(signal.SIGINT, peer.stop)
    peer.run()


if __name__ == "__main__":
    main()
