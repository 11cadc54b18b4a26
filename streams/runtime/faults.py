"""Fault injection: the seam through which tests make a produce or a commit fail mid-work.

`FC_INJECT_FAULTS="produce=0.005,commit=0.1"` makes each record produced fail with probability
0.005 and each commit with probability 0.1, raising the error the client raises for a broker that
refused, so the runtime's abort path (abort, drop the writes, rewind, process again) runs for real
against a real broker. Failures are drawn at random rather than every Nth time: a transaction
longer than N records would fail at the same record forever. Off unless set; a worker that has it
set says so when it starts.
"""

from __future__ import annotations

import random

import confluent_kafka


class InjectedFault(confluent_kafka.KafkaException):
    pass


class Faults:
    def __init__(self, spec: str = "") -> None:
        chances = dict(part.split("=", 1) for part in spec.split(",") if part.strip())
        self.produce_chance = float(chances.get("produce", 0))
        self.commit_chance = float(chances.get("commit", 0))
        self.injected = 0
        self._random = random.Random()

    @property
    def enabled(self) -> bool:
        return bool(self.produce_chance or self.commit_chance)

    def before_produce(self) -> None:
        self._maybe_fail(self.produce_chance, "produce")

    def before_commit(self) -> None:
        self._maybe_fail(self.commit_chance, "commit")

    def _maybe_fail(self, chance: float, what: str) -> None:
        if chance and self._random.random() < chance:
            self.injected += 1
            raise InjectedFault(confluent_kafka.KafkaError(confluent_kafka.KafkaError._TRANSPORT,
                                                           f"injected {what} failure #{self.injected}"))
