"""What every benchmark of bench/ shares: progress lines, data directories, a throwaway broker, and
the Kafka reads that time and check a run (committed offsets of a group, committed records of a
topic).

A run is timed the same way for every implementation: the input backlog is on the topic before
the processor starts consuming it, and the driver polls the processor's consumer group's committed
offsets on the input topic until they reach its end. The rate is the number of records committed
between the first poll that saw the group past the setup records and the poll that saw it at the
end, over the time between those two polls, so start-up and the setup records are not counted.
The same rate from the first poll past half of the backlog is kept beside it: a JVM's first
seconds run before its JIT has compiled the hot path.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import confluent_kafka
from confluent_kafka.admin import AdminClient, NewTopic

from devtools.kafka import throwaway_broker
from devtools.stack import Stack, free_port
from streams.partitioning import CONFLUENT_PARTITIONER
from streams.settings import PROJECT_ROOT

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
DATA_ROOT = PROJECT_ROOT / ".data"
# Ports the benchmark must never take even if the kernel offers them (other stacks on the machine).
RESERVED_PORTS = {9092, 8080, 6066, 12111, 19092, *range(18081, 19000)}
POLL_SECONDS = 0.1


def progress(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def int_list(text: str) -> list[int]:
    """A command-line list of whole numbers, comma-separated ("1,2,4")."""
    return [int(n) for n in text.split(",")]


def stop_resumed(stack: Stack) -> None:
    """Stop a stack's processes, resuming paused workers first (a stopped process ignores SIGTERM
    until SIGCONT)."""
    for worker in stack.workers.values():
        if worker.running:
            os.kill(worker.pid, signal.SIGCONT)
    stack.stop()


def data_dir(name: str) -> Path:
    """A fresh directory .data/bench-<name>-<tag>."""
    path = DATA_ROOT / f"bench-{name}-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    return path


def bench_port() -> int:
    while True:
        port = free_port()
        if port not in RESERVED_PORTS:
            return port


@contextmanager
def broker(external: str | None = None) -> Iterator[str]:
    """`external` if given, else a throwaway single-node broker on free ports under .data/bench-kafka-*."""
    if external:
        yield external
        return
    directory = data_dir("kafka")
    try:
        with throwaway_broker(directory, bench_port) as bootstrap:
            yield bootstrap
    finally:
        directory.with_suffix(".log").unlink(missing_ok=True)


def create_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 4})
    for name, future in admin.create_topics([NewTopic(n, partitions, 1) for n in names]).items():
        try:
            future.result()
        except confluent_kafka.KafkaException as exc:
            if exc.args[0].code() != confluent_kafka.KafkaError.TOPIC_ALREADY_EXISTS:
                raise RuntimeError(f"could not create {name}: {exc}") from None


def producer(bootstrap: str, **extra: Any) -> confluent_kafka.Producer:
    """A producer that partitions as the project does (Java-compatible murmur2 on the key bytes)."""
    return confluent_kafka.Producer({
        "bootstrap.servers": bootstrap,
        "partitioner": CONFLUENT_PARTITIONER,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "queue.buffering.max.messages": 1_000_000,
        **extra,
    })


def produce_all(client: confluent_kafka.Producer, topic: str, key: bytes, value: bytes, **extra: Any) -> None:
    """Produce, waiting for room in the local queue instead of failing when it is full (`extra`:
    `partition=`, `on_delivery=` of `Producer.produce`)."""
    while True:
        try:
            client.produce(topic, key=key, value=value, **extra)
            return
        except BufferError:
            client.poll(0.05)


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """The last stable offset of every partition (what a read_committed reader reaches)."""
    consumer = confluent_kafka.Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"bench-ends-{uuid.uuid4().hex}",
        "isolation.level": "read_committed",
    })
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: consumer.get_watermark_offsets(confluent_kafka.TopicPartition(topic, p), timeout=10)[1]
                for p in partitions}
    finally:
        consumer.close()


def read_committed(bootstrap: str, topic: str) -> list[confluent_kafka.Message]:
    """Every committed record of a topic, read to the end of every partition."""
    consumer = confluent_kafka.Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"bench-reader-{uuid.uuid4().hex}",
        "isolation.level": "read_committed",
        "enable.partition.eof": True,
        "enable.auto.commit": False,
    })
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING) for p in partitions])
        at_end: set[int] = set()
        records = []
        while len(at_end) < len(partitions):
            for message in consumer.consume(10_000, timeout=1.0):
                if message.error() is None:
                    records.append(message)
                elif message.error().code() == confluent_kafka.KafkaError._PARTITION_EOF:
                    at_end.add(message.partition())
        return records
    finally:
        consumer.close()


@dataclass
class Drain:
    """One timed pass of a processor over the backlog of its input topic."""

    events: int  # records committed between the two polls that bound the measurement
    seconds: float
    events_per_second: float
    startup_seconds: float  # from the start of the processor to the first progress past the setup
    # The same from the first poll past half of the backlog: without a JIT's warm-up, for instance.
    second_half_events_per_second: float
    # CPU time the processor's process used per record over the same span as `events_per_second`:
    # what the work costs, whatever else the shared machine was doing meanwhile.
    cpu_ms_per_event: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent running something so far, all cores together (Linux
    `/proc/stat`: user, nice, system, irq and softirq; not idle, iowait, or steal, the time a
    hypervisor gave to others), to tell a figure bound by the machine's cores from one bound by
    the design."""
    user, nice, system, _idle, _iowait, irq, softirq = (
        int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def time_drain(bootstrap: str, group: str, topic: str, setup_records: int, pid: int, alive: Callable[[], bool],
               timeout: float, label: str) -> Drain:
    """Poll `group`'s committed offsets on `topic` from now until they reach the topic's end.

    `pid` is the processor's process, whose CPU time is taken over the timed span.
    """
    ends = end_offsets(bootstrap, topic)
    end_total = sum(ends.values())
    wanted = [confluent_kafka.TopicPartition(topic, p) for p in ends]
    watcher = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    started = time.monotonic()
    first: tuple[float, int] | None = None
    cpu_at_first = 0.0
    half: tuple[float, int] | None = None
    last_report = started
    try:
        while True:
            now = time.monotonic()
            committed = sum(max(tp.offset, 0) for tp in watcher.committed(wanted, timeout=10))
            if first is None and committed > setup_records:
                first = (now, committed)
                cpu_at_first = cpu_seconds(pid)
            if half is None and committed > (setup_records + end_total) / 2:
                half = (now, committed)
            if committed >= end_total:
                if first is None or half is None or now <= half[0]:
                    raise RuntimeError(f"{label}: the backlog was committed before the first polls; "
                                       "give it more events")
                events = committed - first[1]
                seconds = now - first[0]
                return Drain(events, seconds, events / seconds, first[0] - started,
                             (committed - half[1]) / (now - half[0]), 1000 * (cpu_seconds(pid) - cpu_at_first) / events)
            if now - started > timeout:
                raise RuntimeError(f"{label}: {committed - setup_records} of {end_total - setup_records} "
                                   f"records committed after {timeout:.0f}s")
            if not alive():
                raise RuntimeError(f"{label}: the processor exited with {end_total - committed} records left")
            if now - last_report >= 5:
                progress(f"  {label}: {max(0, committed - setup_records)}/{end_total - setup_records} committed")
                last_report = now
            time.sleep(max(0.0, POLL_SECONDS - (time.monotonic() - now)))
    finally:
        watcher.close()
