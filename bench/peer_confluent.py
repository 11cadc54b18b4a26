"""The plain-Python peer of the reservation benchmark: one confluent-kafka process running the
project's own inventory decision with the same exactly-once shape as the Faust worker.

    .venv/bin/python -m bench.peer_confluent --bootstrap HOST:PORT --namespace NS --group G \\
        --data-dir DIR --output-prefix P

Consumer read_committed on `<NS>inventory.commands` (its own group), one transactional producer.
Per transaction (committed every 100 ms, as the worker's FC_COMMIT_INTERVAL): for each command,
decode the envelope (pydantic, as the worker does), load the SKU's StockLevel from a rocksdict
store, call `streams.tables.inventory.decide(state, envelope, now, product=...)` with the product
from a rocksdict catalog, write a changed state to the store and to `<P>inventory-changelog`,
produce the decision's events (`Envelope.derive`, as the worker) to `<P><their topic>`, then
`send_offsets_to_transaction` and commit. Undecodable or misplaced commands go to `<P>dead-letters`.
The catalog is read from `<NS>catalog.products` into its store before the first command.
Runs until SIGTERM. bench/run.py starts it and times it like the worker.
"""

from __future__ import annotations

import argparse
import signal
import time
from pathlib import Path

import confluent_kafka
from pydantic import ValidationError
from rocksdict import Rdict

from bench.common import produce_all, producer, read_committed
from streams import topics
from streams.models import Envelope, Product, StockLevel, utc_now
from streams.tables import catalog, inventory
from streams.tables.decision import UnhandledEvent

COMMIT_INTERVAL_SECONDS = 0.1
SPEC = topics.INVENTORY_COMMANDS


class Peer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.source = topics.full_name(args.namespace, SPEC.name)
        self.prefix = args.output_prefix
        self.changelog = f"{self.prefix}inventory-changelog"
        data = Path(args.data_dir)
        data.mkdir(parents=True, exist_ok=True)
        self.stock = Rdict(str(data / "stock"))
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
        self.running = True

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
        raw_state = self.stock.get(key)
        state = None if raw_state is None else StockLevel.model_validate_json(raw_state)
        raw_product = self.products.get(key)
        product = None if raw_product is None else Product.model_validate_json(raw_product)
        try:
            decision = inventory.decide(state, envelope, utc_now(), product=product)
        except UnhandledEvent as exc:
            return self.dead_letter(message, str(exc))
        if decision.state != state:
            value = decision.state.model_dump_json().encode()
            self.stock[key] = value
            produce_all(self.producer, self.changelog, key, value)
        for index, payload in enumerate(decision.events):
            derived = envelope.derive(payload, index, utc_now())
            spec, out_key = topics.route(derived)
            produce_all(self.producer, f"{self.prefix}{spec.name}", out_key, derived.to_bytes())

    def dead_letter(self, message: confluent_kafka.Message, error: str) -> None:
        produce_all(self.producer, f"{self.prefix}dead-letters", message.key() or b"",
                    f"{message.topic()}[{message.partition()}]@{message.offset()}: {error}".encode())

    def commit(self) -> None:
        positions = [tp for tp in self.consumer.position(self.consumer.assignment()) if tp.offset >= 0]
        self.producer.send_offsets_to_transaction(positions, self.consumer.consumer_group_metadata())
        self.producer.commit_transaction()

    def run(self) -> None:
        self.producer.init_transactions()
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
