"""Java-compatible murmur2 partitioning (streams/partitioning.py) against aiokafka's partitioner."""

from __future__ import annotations

import random
import uuid

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

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
    # When hashed here and by aiokafka
    # Then both give the Java value, read as an unsigned 32-bit int
    expected = java_signed & 0xFFFFFFFF
    assert aiokafka_murmur2(key) == expected, "the vector itself is wrong"
    assert murmur2(key) == expected


@pytest.mark.parametrize(("key", "partition"), JAVA_PARTITIONS_OF_1000, ids=repr)
def test_partition_for_matches_the_java_partitioner_vectors(key, partition):
    partitions = list(range(1000))
    assert DefaultPartitioner()(key, partitions, partitions) == partition, "the vector itself is wrong"
    assert partition_for(key, 1000) == partition


def test_murmur2_equals_aiokafkas_for_many_keys():
    # Given keys of every tail length, random bytes and project-shaped keys
    # When hashed by both implementations
    # Then every hash agrees and fits in 32 bits
    mismatches = [key for key in KEYS if murmur2(key) != aiokafka_murmur2(key)]
    assert mismatches == []
    assert all(0 <= murmur2(key) < 2**32 for key in KEYS)


@pytest.mark.parametrize("partitions", PARTITION_COUNTS)
def test_partition_for_equals_aiokafkas_default_partitioner(partitions):
    # Given a topic of `partitions` partitions, all of them available
    all_partitions = list(range(partitions))
    partitioner = DefaultPartitioner()

    # When each key is partitioned here and by aiokafka (which Faust uses)
    ours = [partition_for(key, partitions) for key in KEYS]
    theirs = [partitioner(key, all_partitions, all_partitions) for key in KEYS]

    # Then both put every key on the same partition, within range
    assert ours == theirs
    assert all(0 <= p < partitions for p in ours)


@pytest.mark.parametrize("partitions", [6, 12])
def test_partition_for_ignores_which_partitions_are_available(partitions):
    # Given a topic where only a few partitions currently have a leader
    all_partitions = list(range(partitions))
    available = all_partitions[:2]

    # When keyed messages are partitioned
    # Then the choice is the key's partition regardless, as in Java (keys never move)
    for key in KEYS[:200]:
        assert DefaultPartitioner()(key, all_partitions, available) == partition_for(key, partitions)


@pytest.mark.parametrize("partitions", [6, 12, 50])
def test_project_keys_spread_over_every_partition(partitions):
    # Given hundreds of "<tenant>/<sku>" and order-id keys
    # When partitioned
    # Then no partition is left empty (a constant or degenerate hash would fail this)
    assert {partition_for(key, partitions) for key in KEYS} == set(range(partitions))


def test_confluent_producers_use_a_java_compatible_partitioner():
    # librdkafka's default (consistent_random) is CRC32-based; only its murmur2 partitioners agree with Java.
    assert CONFLUENT_PARTITIONER in {"murmur2", "murmur2_random"}
