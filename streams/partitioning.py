"""Java-compatible murmur2 partitioning, the one rule every producer of the project follows.

Kafka's Java client, aiokafka's default partitioner (used by Faust) and librdkafka's `murmur2`
partitioner all compute `(murmur2(key) & 0x7fffffff) % partitions`. Writing it down here lets
tests prove that the gateway, the workers and a plain confluent-kafka producer agree.
"""

from __future__ import annotations

# confluent-kafka's default partitioner is CRC32-based; this setting makes it Java-compatible.
CONFLUENT_PARTITIONER = "murmur2_random"


def murmur2(data: bytes) -> int:
    length = len(data)
    seed = 0x9747B28C
    m = 0x5BD1E995
    r = 24
    h = (seed ^ length) & 0xFFFFFFFF
    length4 = length // 4
    for i in range(length4):
        i4 = i * 4
        k = (data[i4] & 0xFF) + ((data[i4 + 1] & 0xFF) << 8) + ((data[i4 + 2] & 0xFF) << 16) + (
            (data[i4 + 3] & 0xFF) << 24
        )
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    extra = length % 4
    tail = length4 * 4
    if extra >= 3:
        h ^= (data[tail + 2] & 0xFF) << 16
    if extra >= 2:
        h ^= (data[tail + 1] & 0xFF) << 8
    if extra >= 1:
        h ^= data[tail] & 0xFF
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def partition_for(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions
