"""Restoring a store from its changelog: from the offset the store reflects to the end.

The changelog holds committed writes only for a `read_committed` reader, and the store holds what
the changelog held up to its stored offset (stores.py), so restoring is reading the tail. A store
whose offset lies outside the changelog (the topic was recreated, or records before the offset
were deleted) is rebuilt from the changelog's beginning. Tombstones delete.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import confluent_kafka
from confluent_kafka import TopicPartition

from streams.logs import kafka_client_logger
from streams.runtime.metrics import RESTORE_REMAINING, RESTORE_SECONDS, RESTORED_RECORDS
from streams.runtime.stores import PartitionStore

log = logging.getLogger(__name__)

WRITE_EVERY = 10_000


class Restorer:
    """One consumer outside any group, assigned to one changelog partition at a time."""

    def __init__(self, bootstrap: str, client_id: str) -> None:
        self._consumer = confluent_kafka.Consumer({
            "bootstrap.servers": bootstrap,
            "client.id": client_id,
            "group.id": f"{client_id}-restore",  # required by the client; never joined, never committed
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "fetch.max.bytes": 64 * 1024 * 1024,
            # The end of a partition shows only after an empty fetch, which the broker holds this
            # long (500 ms by default): every restore, however small, took half a second.
            "fetch.wait.max.ms": 10,
            "logger": kafka_client_logger(),
        })

    def restore(self, stores: dict[tuple[str, int], PartitionStore]) -> dict[tuple[str, int], PartitionStore]:
        """Bring each store up to the end of its changelog partition, all in one pass; returns the
        stores (a new one where a store had to be rebuilt). Keys are (changelog topic, partition)."""
        started = time.monotonic()
        starts: dict[tuple[str, int], int] = {}
        ends: dict[tuple[str, int], int] = {}
        for (topic, partition), store in list(stores.items()):
            low, high = self._consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            start = store.changelog_offset
            if start > high or start < low:
                log.warning("%s[%d]: the store reflects offset %d, outside the changelog's %d..%d; rebuilding it",
                            topic, partition, start, low, high)
                path = store.path
                store.destroy()
                stores[(topic, partition)], start = PartitionStore(path), low
            if start < high:
                starts[(topic, partition)] = start
                ends[(topic, partition)] = high
        if not starts:
            return stores
        self._consumer.assign([TopicPartition(topic, partition, start) for (topic, partition), start in starts.items()])
        changes: dict[tuple[str, int], dict[bytes, bytes | None]] = {tp: {} for tp in starts}
        positions = dict(starts)
        at_end: set[tuple[str, int]] = set()
        applied = 0
        RESTORE_REMAINING.set(sum(ends[where] - start for where, start in starts.items()))
        try:
            while len(at_end) < len(starts):
                before = applied
                for message in self._consumer.consume(10_000, timeout=0.05):
                    where = (message.topic(), message.partition())
                    error = message.error()
                    if error is not None:
                        if error.code() != confluent_kafka.KafkaError._PARTITION_EOF:
                            raise confluent_kafka.KafkaException(error)
                        at_end.add(where)
                        positions[where] = max(positions[where], message.offset())
                        continue
                    changes[where][message.key()] = message.value()
                    positions[where] = message.offset() + 1
                    applied += 1
                for where, pending in changes.items():
                    if len(pending) >= WRITE_EVERY or (where in at_end and pending):
                        stores[where].write(pending, positions[where])
                        changes[where] = {}
                RESTORED_RECORDS.inc(applied - before)
                RESTORE_REMAINING.set(sum(max(0, ends[where] - positions[where])
                                          for where in starts if where not in at_end))
        finally:
            self._consumer.unassign()
            RESTORE_REMAINING.set(0)
        for where, start in starts.items():
            if positions[where] > start:
                stores[where].write({}, positions[where])
        RESTORE_SECONDS.observe(time.monotonic() - started)
        log.info("restored %d changelog records of %d partitions in %.2fs", applied, len(starts),
                 time.monotonic() - started)
        return stores

    def close(self) -> None:
        self._consumer.close()


def store_path(data_dir: Path, table: str, partition: int) -> Path:
    return data_dir / table / str(partition)
