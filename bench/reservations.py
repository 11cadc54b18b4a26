"""Reservations processed per second by one real worker (`python -m streams`, exactly-once), reading
a backlog of ReserveStock commands straight from `inventory.commands`.

    .venv/bin/python -m bench.reservations [--events 100000] [--skus 10000] [--backlog-on-restart]

The workload: a catalog of K SKUs (ProductUpserted) and opening stock for each (AdjustStock) go
through the worker first. Then the worker is paused (SIGSTOP, for the few seconds the writing
takes, inside the bench broker's 6 s KIP-848 session timeout), N ReserveStock envelopes for
random SKUs and 1-3 units are written to `inventory.commands`, keyed and partitioned as the
project writes them, and the worker is resumed. The opening stock covers about 85 % of the
demand, so both outcomes occur. The rate is taken from the worker group's committed offsets
(bench/common.py). Afterwards every ReserveStock must have produced exactly one committed answer
on `inventory.reservations`, with the id `Envelope.derive` gives it and the outcome a plain count
of each SKU's stock predicts. The peers (bench/peer_confluent.py, bench/kafka-streams) read the same topic under their own groups
and are checked the same way; bench/run.py runs all of them.

`--backlog-on-restart` stops the worker cleanly instead and starts it again once the backlog is
written: the case of a worker restarted while its input piled up (see bench/README.md for what it
showed).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bench.common import (
    DATA_ROOT,
    Drain,
    broker,
    data_dir,
    produce_all,
    producer,
    progress,
    read_committed,
    stop_resumed,
    time_drain,
)
from devtools.stack import Stack
from streams import topics
from streams.models import AdjustStock, Envelope, Money, ProductUpserted, ReserveStock

TENANT = "bench"
PRICE = Money(amount=1299, currency="EUR")


@dataclass
class Workload:
    """The catalog, the opening stock and the reservations of one run, with their expected outcomes."""

    skus: int
    events: int
    seed: int
    setup: list[Envelope] = field(default_factory=list)
    reservations: list[Envelope] = field(default_factory=list)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        now = datetime.now(UTC)
        names = [f"SKU-{n:06d}" for n in range(self.skus)]
        picks = [(rng.choice(names), rng.randint(1, 3)) for _ in range(self.events)]
        demand: Counter[str] = Counter()
        for sku, quantity in picks:
            demand[sku] += quantity
        self.opening = {sku: int(demand[sku] * 0.85) for sku in names}
        self.setup = [Envelope.new(TENANT, ProductUpserted(sku=sku, name=sku, price=PRICE), occurred_at=now)
                      for sku in names]
        self.setup += [
            Envelope.new(TENANT, AdjustStock(adjustment_id=uuid.UUID(int=rng.getrandbits(128), version=4), sku=sku,
                                             delta=self.opening[sku], reason="bench opening stock"), occurred_at=now)
            for sku in names if self.opening[sku] > 0
        ]
        self.reservations = [
            Envelope.new(TENANT, ReserveStock(order_id=uuid.UUID(int=rng.getrandbits(128), version=4), sku=sku,
                                              quantity=quantity),
                         event_id=uuid.UUID(int=rng.getrandbits(128), version=4), occurred_at=now)
            for sku, quantity in picks
        ]

    @property
    def setup_commands(self) -> int:
        """How many setup records land on inventory.commands (the AdjustStock ones)."""
        return sum(1 for e in self.setup if isinstance(e.payload, AdjustStock))

    def expected(self) -> dict[uuid.UUID, tuple[uuid.UUID, str]]:
        """order id -> (the answer's event id, its type), by counting each SKU's stock in order."""
        available = dict(self.opening)
        answers = {}
        for envelope in self.reservations:
            command = envelope.payload
            assert isinstance(command, ReserveStock)
            if available[command.sku] >= command.quantity:
                available[command.sku] -= command.quantity
                kind = "StockReserved"
            else:
                kind = "StockReservationRejected"
            answers[command.order_id] = (uuid.uuid5(envelope.event_id, f"0:{kind}"), kind)
        return answers

    def average_size(self) -> int:
        sample = self.reservations[:1000]
        return round(sum(len(e.to_bytes()) for e in sample) / max(1, len(sample)))


Record = tuple[str, bytes, bytes]  # topic name without namespace, key, value


def records(envelopes: list[Envelope]) -> list[Record]:
    """Envelopes as the registry routes them: topic, key, bytes."""
    routed = []
    for envelope in envelopes:
        spec, key = topics.route(envelope)
        routed.append((spec.name, key, envelope.to_bytes()))
    return routed


def write(bootstrap: str, namespace: str, routed: list[Record]) -> None:
    """Write records keyed and partitioned as the project does, and wait until the broker has them."""
    client = producer(bootstrap)
    for name, key, value in routed:
        produce_all(client, topics.full_name(namespace, name), key, value)
    if client.flush(60) != 0:
        raise RuntimeError("the workload was not fully written within 60s")


def verify(bootstrap: str, topic: str, workload: Workload, label: str) -> dict[str, Any]:
    """Check that every reservation was answered exactly once, with the expected id and outcome.

    Returns the counts with `exactly_once` true or false (a failed check is reported beside the
    figure, not raised, so that the other figures of the run are still measured).
    """
    expected = workload.expected()
    seen: Counter[str] = Counter()
    kinds: dict[str, str] = {}
    wrong: list[str] = []
    outcomes: Counter[str] = Counter()
    for message in read_committed(bootstrap, topic):
        answer = json.loads(message.value())
        order_id = uuid.UUID(answer["payload"]["order_id"])
        seen[answer["event_id"]] += 1
        kinds[answer["event_id"]] = answer["type"]
        outcomes[answer["type"]] += 1
        want = expected.get(order_id)
        if want is None or (uuid.UUID(answer["event_id"]), answer["type"]) != want:
            wrong.append(f"order {order_id}: got {answer['type']} {answer['event_id']}, expected {want}")
        if message.key() != str(order_id).encode():
            wrong.append(f"order {order_id}: keyed {message.key()!r}")
    duplicated = Counter({kinds[event_id]: n - 1 for event_id, n in seen.items() if n > 1})
    report = {
        "exactly_once": not (duplicated or len(seen) != len(expected) or wrong),
        "answers": len(seen), "reserved": outcomes["StockReserved"], "rejected": outcomes["StockReservationRejected"],
        "unanswered": len(expected) - len(seen), "answered_twice": sum(duplicated.values()),
        "answered_twice_by_type": dict(duplicated), "wrong": len(wrong), "first_wrong": wrong[:5],
    }
    if report["exactly_once"]:
        progress(f"  {label}: verified {len(seen)} answers, each once, as expected "
                 f"({report['reserved']} reserved, {report['rejected']} rejected)")
    else:
        progress(f"  {label}: VERIFICATION FAILED: {problems(report)}")
    return report


def problems(report: dict[str, Any]) -> str:
    """A failed verification in a few words."""
    twice = ", ".join(f"{n} {kind}" for kind, n in report["answered_twice_by_type"].items())
    return (f"{report['unanswered']} unanswered, {report['answered_twice']} answered twice"
            f"{f' ({twice})' if twice else ''}, {report['wrong']} wrong")


class OursRun:
    """The project's worker over one workload: its stack also gives the peers their input topics."""

    def __init__(self, bootstrap: str, workload: Workload, backlog_on_restart: bool = False) -> None:
        self.bootstrap = bootstrap
        self.workload = workload
        self.backlog_on_restart = backlog_on_restart
        self.stack = Stack(bootstrap=bootstrap, name="bench-reservations", worker_slots=1,
                           extra_env={"FC_HOLD_TTL_SECONDS": "3600"})
        self.stack.base_dir = data_dir("reservations")

    @property
    def namespace(self) -> str:
        return self.stack.namespace

    def prepare(self) -> None:
        """Worker up (it creates the topics), catalog and stock through it, then the backlog written
        while the worker is paused (or stopped)."""
        progress(f"  ours: starting a worker; setup of {self.workload.skus} SKUs with stock")
        worker = self.stack.start_worker(0)
        # Products first: stock for a SKU the catalog does not know yet would be refused.
        for kind in (ProductUpserted, AdjustStock):
            write(self.bootstrap, self.namespace,
                  records([e for e in self.workload.setup if isinstance(e.payload, kind)]))
            self.stack.wait_drained(timeout=max(120.0, self.workload.skus / 50))
        backlog = records(self.workload.reservations)
        if self.backlog_on_restart:
            worker.stop()
        else:
            os.kill(worker.pid, signal.SIGSTOP)
        started = time.monotonic()
        write(self.bootstrap, self.namespace, backlog)
        paused = time.monotonic() - started
        progress(f"  ours: wrote {len(backlog)} ReserveStock to inventory.commands in {paused:.1f}s while the "
                 f"worker was {'stopped' if self.backlog_on_restart else 'paused'}")
        if paused > 4 and not self.backlog_on_restart:
            progress(f"  ours: WARNING: paused {paused:.1f}s, near the broker's session timeout; the worker's "
                     "group may rebalance on resume")

    def measure(self) -> Drain:
        if self.backlog_on_restart:
            worker = self.stack.start_worker(0, wait=False)
        else:
            worker = self.stack.workers[0]
            os.kill(worker.pid, signal.SIGCONT)
        try:
            drain = time_drain(self.bootstrap, self.stack.app_id, self.stack.topic("inventory.commands"),
                               self.workload.setup_commands, worker.pid, lambda: worker.running,
                               timeout=max(300.0, self.workload.events / 50), label="ours")
        except RuntimeError:
            print(worker.log_tail())
            raise
        finally:
            self.close()
        return drain

    def close(self) -> None:
        """Stop the stack, resuming a worker left paused by a failure first."""
        stop_resumed(self.stack)

    def verify(self) -> dict[str, Any]:
        return verify(self.bootstrap, self.stack.topic("inventory.reservations"), self.workload, "ours")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--skus", type=int, default=10_000)
    parser.add_argument("--bootstrap", help="an existing cluster (default: a throwaway broker)")
    parser.add_argument("--backlog-on-restart", action="store_true",
                        help="stop the worker while the backlog is written instead of pausing it")
    args = parser.parse_args()
    DATA_ROOT.mkdir(exist_ok=True)
    with broker(args.bootstrap) as bootstrap:
        ours = OursRun(bootstrap, Workload(args.skus, args.events, seed=1), args.backlog_on_restart)
        try:
            ours.prepare()
            drain = ours.measure()
        finally:
            ours.close()
        checked = ours.verify()
    progress(f"ours: {drain.events_per_second:.0f} reservations/s ({drain.events} in {drain.seconds:.1f}s), "
             f"{drain.cpu_ms_per_event * 1000:.1f} CPU µs per reservation")
    if not checked["exactly_once"]:
        raise SystemExit(f"[bench] ours did not answer every reservation exactly once: {problems(checked)}")


if __name__ == "__main__":
    main()
