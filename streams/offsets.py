"""How far each stream partition has been processed, in log order, and nothing past a missing record.

Faust decides what to commit from the offsets its streams acknowledged, and tolerates holes: a
record that was fetched and then dropped (its stream buffer cleared by a rebalance or a recovery,
a fetch abandoned when flow stopped) leaves a hole that Faust commits past, and the record is lost.
The ledger is the stricter rule Kafka Streams follows: a partition's position only moves by
processing its next record, so the committed position never passes a record that was not
processed.

Offsets in a partition are not dense: transaction markers and records of aborted transactions
take offsets that a read_committed consumer never sees. The fetcher tells them apart: whatever
lies between two records it returned one after the other (or between its fetch position and the
first record it returned) is not a record to process, and `fetched` writes those runs down. A
delivered record whose predecessors are neither processed nor such a run is out of order: records
before it went missing, and the caller re-reads the partition from its position.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Hashable, Iterable

# Runs below the position are useless; they are pruned once a partition holds this many.
_PRUNE_AT = 512


class Admission(enum.Enum):
    NEXT = "next"  # the record after the position: process it
    SEEN = "seen"  # below the position: processed already, skip it
    OUT_OF_ORDER = "out_of_order"  # records before it are missing: re-read from the position


class OffsetLedger:
    """Per partition: the offset of the next record to process, and the offset runs holding none.

    `fetched` is called from the consumer's fetch thread, everything else from the event loop;
    a lock keeps the two apart.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._position: dict[Hashable, int] = {}
        # record offset -> first offset of the record-free run the fetcher crossed to reach it
        self._crossed_from: dict[Hashable, dict[int, int]] = {}
        # the record-free run after the last record fetched: (its first offset, the next fetch position)
        self._tail: dict[Hashable, tuple[int, int]] = {}

    def start(self, tp: Hashable, position: int) -> None:
        """The partition is (re)assigned or re-read: its next record to process is at `position`."""
        with self._lock:
            self._position[tp] = position

    def forget(self, tps: Iterable[Hashable]) -> None:
        with self._lock:
            for tp in tps:
                self._position.pop(tp, None)
                self._crossed_from.pop(tp, None)
                self._tail.pop(tp, None)

    def fetched(self, tp: Hashable, fetch_position: int, offsets: Iterable[int], next_position: int) -> None:
        """The fetcher returned records at `offsets`, in order, reading from `fetch_position` up to
        `next_position` (past any markers after the last record)."""
        with self._lock:
            # A fetch that ended by crossing markers leaves its position past them, and the next
            # fetch starts there: the run it crossed reaches this fetch's first record. Without
            # it, every record right after a commit marker that ended a fetch (the common case for
            # a consumer that keeps up) looked out of order and cost a re-read.
            tail = self._tail.get(tp)
            expected = tail[0] if tail is not None and tail[1] == fetch_position else fetch_position
            # Runs are kept for partitions being processed only (changelogs are compacted: full
            # of holes nobody asks about), the tail for every partition.
            runs = self._crossed_from.setdefault(tp, {}) if tp in self._position else None
            for offset in offsets:
                if runs is not None and offset > expected:
                    runs[offset] = expected
                expected = offset + 1
            self._tail[tp] = (expected, next_position)

    def fetched_past(self, tp: Hashable, position: int, end: int) -> bool:
        """The fetcher's last fetch of the partition returned nothing at or after `position` and
        moved past `end`: no record lies in between."""
        tail = self._tail.get(tp)
        return tail is not None and tail[0] <= position and tail[1] >= end

    def caught_up(self, tp: Hashable, end: int) -> bool:
        """Every record below `end` processed, as far as the fetcher has shown."""
        with self._lock:
            position = self._position.get(tp)
            if position is None:
                return False
            return position >= end or self.fetched_past(tp, position, end)

    def position(self, tp: Hashable) -> int | None:
        return self._position.get(tp)

    def admit(self, tp: Hashable, offset: int) -> Admission:
        with self._lock:
            position = self._position.get(tp)
            if position is None:
                return Admission.OUT_OF_ORDER
            if offset < position:
                return Admission.SEEN
            if offset == position:
                return Admission.NEXT
            crossed_from = self._crossed_from.get(tp, {}).get(offset)
            return Admission.NEXT if crossed_from is not None and crossed_from <= position else Admission.OUT_OF_ORDER

    def processed(self, tp: Hashable, offset: int) -> None:
        with self._lock:
            self._position[tp] = offset + 1
            runs = self._crossed_from.get(tp)
            if runs is not None and len(runs) >= _PRUNE_AT:
                for stale in [o for o in runs if o <= offset]:
                    del runs[stale]
