"""Java-compatible murmur2 partitioning, the one rule every producer of the project follows.

Kafka's Java client and librdkafka's `murmur2` partitioners compute
`(murmur2(key) & 0x7fffffff) % partitions`. Writing it down here lets tests prove that the
gateway, the workers and a plain confluent-kafka producer agree.
"""

from __future__ import annotations

import struct
from functools import lru_cache

# confluent-kafka's default partitioner is CRC32-based; this setting makes it Java-compatible.
CONFLUENT_PARTITIONER = "murmur2_random"
SEED = 0x9747B28C
M = 0x5BD1E995


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 as an unsigned 32-bit int. Every record a worker reads is checked against it
    (a key on another partition than its own is dead-lettered), so the 4-byte words are unpacked in
    one call rather than assembled byte by byte."""
    length = len(data)
    h = (SEED ^ length) & 0xFFFFFFFF
    words = length // 4
    for k in struct.unpack_from(f"<{words}I", data):
        k = (k * M) & 0xFFFFFFFF
        k ^= k >> 24
        h = ((h * M) & 0xFFFFFFFF) ^ ((k * M) & 0xFFFFFFFF)
    extra = length % 4
    tail = words * 4
    if extra >= 3:
        h ^= data[tail + 2] << 16
    if extra >= 2:
        h ^= data[tail + 1] << 8
    if extra >= 1:
        h ^= data[tail]
        h = (h * M) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * M) & 0xFFFFFFFF
    h ^= h >> 15
    return h


# Every record a worker reads is checked against its key's partition, and keys repeat (a SKU's
# commands, an order's events): remembering recent answers took murmur2 off the profile.
@lru_cache(maxsize=1 << 16)
def partition_for(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions
