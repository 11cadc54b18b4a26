"""Fault injection: the seam through which tests make a produce or a commit fail mid-work.

`FC_INJECT_FAULTS="produce=97,commit=13"` makes every 97th record produced and every 13th commit
raise the error the client raises for a broker that refused, so the runtime's abort path (abort,
drop the writes, rewind, process again) runs for real against a real broker. Off unless set; a
worker that has it set says so when it starts.
"""

from __future__ import annotations

import confluent_kafka


class InjectedFault(confluent_kafka.KafkaException):
    pass


class Faults:
    def __init__(self, spec: str = "") -> None:
        every = dict(part.split("=", 1) for part in spec.split(",") if part.strip())
        self.produce_every = int(every.get("produce", 0))
        self.commit_every = int(every.get("commit", 0))
        self.produced = 0
        self.commits = 0

    @property
    def enabled(self) -> bool:
        return bool(self.produce_every or self.commit_every)

    def before_produce(self) -> None:
        self.produced += 1
        _fail_every(self.produce_every, self.produced, "produce")

    def before_commit(self) -> None:
        self.commits += 1
        _fail_every(self.commit_every, self.commits, "commit")


def _fail_every(every: int, count: int, what: str) -> None:
    if every and count % every == 0:
        raise InjectedFault(confluent_kafka.KafkaError(confluent_kafka.KafkaError._TRANSPORT,
                                                       f"injected {what} failure #{count}"))
