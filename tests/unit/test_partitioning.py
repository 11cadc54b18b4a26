"""Java-compatible murmur2 partitioning (streams/partitioning.py) against the Java client's vectors and a
transcription of its `Utils.murmur2` in signed 32-bit arithmetic."""

from __future__ import annotations

import random
import uuid

import pytest

from streams.partitioning import CONFLUENT_PARTITIONER, murmur2, partition_for

PARTITION_COUNTS = [1, 2, 3, 6, 7, 12, 16, 50, 64, 100, 1000]


def sample_keys(seed: int = 20240501) -> list[bytes]:
    """Keys of every length from 0 to 70 bytes (all four tail lengths), random bytes, and keys
    shaped like the project's own: "<tenant>/<sku>" and order ids."""
    rng = random.Random(seed)
    random_bytes = [rng.randbytes(length) for length in range(71) for _ in range(8)]
    high_bytes = [bytes([0xFF] * length) for length in range(1, 9)]  # sign bits set in every byte
    sku_keys = [f"tenant-{rng.randrange(50)}/SKU-{rng.randrange(10**6)}".encode() for _ in range(300)]
    order_keys = [str(uuid.UUID(int=rng.getrandbits(128))).encode() for _ in range(300)]
    return [*random_bytes, *high_bytes, *sku_keys, *order_keys]


KEYS = sample_keys()


def _int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - 2**32 if value >= 2**31 else value


def java_murmur2(data: bytes) -> int:
    """org.apache.kafka.common.utils.Utils#murmur2 line by line, with Java's signed ints and `>>>`."""
    length = len(data)
    seed, m, r = _int32(0x9747B28C), 0x5BD1E995, 24
    h = _int32(seed ^ length)
    for i in range(length // 4):
        i4 = i * 4
        k = _int32((data[i4] & 0xFF) + ((data[i4 + 1] & 0xFF) << 8) + ((data[i4 + 2] & 0xFF) << 16)
                   + ((data[i4 + 3] & 0xFF) << 24))
        k = _int32(k * m)
        k = _int32(k ^ ((k & 0xFFFFFFFF) >> r))
        k = _int32(k * m)
        h = _int32(h * m)
        h = _int32(h ^ k)
    tail, extra = (length // 4) * 4, length % 4
    if extra == 3:
        h = _int32(h ^ ((data[tail + 2] & 0xFF) << 16))
    if extra >= 2:
        h = _int32(h ^ ((data[tail + 1] & 0xFF) << 8))
    if extra >= 1:
        h = _int32(h ^ (data[tail] & 0xFF))
        h = _int32(h * m)
    h = _int32(h ^ ((h & 0xFFFFFFFF) >> 13))
    h = _int32(h * m)
    return _int32(h ^ ((h & 0xFFFFFFFF) >> 15))


def java_partition(key: bytes, partitions: int) -> int:
    """The Java producer's `Utils.toPositive(murmur2(key)) % numPartitions`."""
    return (java_murmur2(key) & 0x7FFFFFFF) % partitions


# Vectors published with Kafka's Java client (org.apache.kafka.common.utils.UtilsTest#testMurmur2),
# where murmur2 returns a signed int; checked against aiokafka's murmur2 below.
JAVA_MURMUR2 = [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
]

# Partitions out of 1000 chosen by the Java producer's default partitioner
# (the Java-compatibility vectors kafka-python and aiokafka test against).
JAVA_PARTITIONS_OF_1000 = [
    (b"", 681),
    (b"a", 524),
    (b"ab", 434),
    (b"abc", 107),
    (b"123456789", 566),
    (b"\x00 ", 742),
]


@pytest.mark.parametrize(("key", "java_signed"), JAVA_MURMUR2, ids=[k.decode() for k, _ in JAVA_MURMUR2])
def test_murmur2_matches_the_java_client_vectors(key, java_signed):
    # Given a key with a hash published by the Java client
    # When hashed here and by the transcription of the Java client
    # Then both give the Java value (here read as an unsigned 32-bit int)
    assert java_murmur2(key) == java_signed, "the transcription is wrong"
    assert murmur2(key) == java_signed & 0xFFFFFFFF


@pytest.mark.parametrize(("key", "partition"), JAVA_PARTITIONS_OF_1000, ids=repr)
def test_partition_for_matches_the_java_partitioner_vectors(key, partition):
    assert java_partition(key, 1000) == partition, "the transcription is wrong"
    assert partition_for(key, 1000) == partition


def test_murmur2_equals_the_java_transcription_for_many_keys():
    # Given keys of every tail length, random bytes and project-shaped keys
    # When hashed by both implementations
    # Then every hash agrees and fits in 32 bits
    mismatches = [key for key in KEYS if murmur2(key) != java_murmur2(key) & 0xFFFFFFFF]
    assert mismatches == []
    assert all(0 <= murmur2(key) < 2**32 for key in KEYS)


@pytest.mark.parametrize("partitions", PARTITION_COUNTS)
def test_partition_for_equals_the_java_partitioner(partitions):
    # When each key is partitioned here and by the Java producer's rule
    ours = [partition_for(key, partitions) for key in KEYS]
    theirs = [java_partition(key, partitions) for key in KEYS]

    # Then both put every key on the same partition, within range
    assert ours == theirs
    assert all(0 <= p < partitions for p in ours)


@pytest.mark.parametrize("partitions", [6, 12, 50])
def test_project_keys_spread_over_every_partition(partitions):
    # Given hundreds of "<tenant>/<sku>" and order-id keys
    # When partitioned
    # Then no partition is left empty (a constant or degenerate hash would fail this)
    assert {partition_for(key, partitions) for key in KEYS} == set(range(partitions))


def test_confluent_producers_use_a_java_compatible_partitioner():
    # librdkafka's default (consistent_random) is CRC32-based; only its murmur2 partitioners agree with Java.
    assert CONFLUENT_PARTITIONER in {"murmur2", "murmur2_random"}
