"""One RocksDB store per table partition, holding committed state only.

A store is written once per checkpoint, after the Kafka transaction that carried the same writes
to the table's changelog committed (`checkpoint.py`), and it keeps, beside the data, the changelog
offset those writes reach. So RocksDB never holds what an aborted transaction wrote, and a
restart, clean or killed, restores only the changelog's tail past that offset (`recovery.py`).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

from rocksdict import Options, Rdict, WriteBatch

# Data keys are `d` + key and timer index keys `t` + ... (timers.py): one sorted keyspace per store,
# with the bookkeeping beside them under a prefix no data key can have.
DATA = b"d"
CHANGELOG_OFFSET = b"\x00changelog-offset"


def changelog_topic(group: str, table: str) -> str:
    """The compacted topic that holds a table's committed writes for a consumer group's workers."""
    return f"{group}-{table}-changelog"


class PartitionStore:
    """Committed state of one partition of one table."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = Rdict(str(path), options=Options(raw_mode=True))

    @property
    def changelog_offset(self) -> int:
        """The changelog offset the store reflects: recovery reads from here; 0 for a new store."""
        raw = self._db.get(CHANGELOG_OFFSET)
        return 0 if raw is None else int(raw)

    def get(self, key: bytes) -> bytes | None:
        return self.get_raw(DATA + key)

    def get_raw(self, raw_key: bytes) -> bytes | None:
        return self._db.get(raw_key)  # type: ignore[no-any-return]

    def write(self, changes: dict[bytes, bytes | None], changelog_offset: int) -> None:
        """Apply `changes` (raw keys of the store's keyspace; None deletes) and the offset they reach, atomically."""
        batch = WriteBatch(raw_mode=True)
        for key, value in changes.items():
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        batch.put(CHANGELOG_OFFSET, str(changelog_offset).encode())
        self._db.write(batch)

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Committed entries whose raw key starts with `prefix`, in key order."""
        it = self._db.iter()
        it.seek(prefix)
        while it.valid():
            key = it.key()
            if not key.startswith(prefix):
                return
            yield key, it.value()
            it.next()

    def close(self) -> None:
        self._db.close()

    def destroy(self) -> None:
        """Close and remove the files: the partition moved away for good (its changelog keeps it)."""
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)
