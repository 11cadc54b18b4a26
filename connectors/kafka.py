"""Kafka adapters for writers outside the workers: topic creation, a keyed event writer, broker waits.

The writer partitions exactly as the workers do (Java-compatible murmur2 on the key bytes), is
idempotent and waits for all in-sync replicas, so an accepted request is never lost or doubled by
a producer retry.
"""

from __future__ import annotations

import asyncio
import logging
import time

import confluent_kafka
from confluent_kafka.admin import AdminClient, NewTopic

from streams import topics
from streams.models import Envelope
from streams.partitioning import CONFLUENT_PARTITIONER
from streams.settings import Settings

log = logging.getLogger(__name__)


class TopicMismatch(RuntimeError):
    pass


def wait_for_broker(bootstrap: str, timeout: float = 120.0) -> None:
    """Block until the cluster answers a metadata request, logging while it does not."""
    # log_level 0: connection refusals while the broker starts are expected, not worth a line each.
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    deadline = time.monotonic() + timeout
    announced = False
    while True:
        try:
            admin.list_topics(timeout=2)
            return
        except confluent_kafka.KafkaException as exc:
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"Kafka at {bootstrap} did not answer within {timeout:.0f}s ({exc}). "
                    "Start it with `make broker` or point KAFKA_BOOTSTRAP_SERVERS at a cluster."
                ) from None
            if not announced:
                log.info("waiting for Kafka at %s ...", bootstrap)
                announced = True
            time.sleep(0.5)


def _new_topic(settings: Settings, name: str, config: dict[str, str]) -> NewTopic:
    return NewTopic(name, settings.topic_partitions, settings.topic_replication_factor,
                    config={**config, "min.insync.replicas": str(settings.topic_min_insync_replicas)})


def registry_topics(settings: Settings) -> dict[str, NewTopic]:
    """Every topic of the registry (and dead-letter twin) under the settings' namespace."""
    wanted: dict[str, NewTopic] = {}
    for spec in topics.ALL:
        config = {"cleanup.policy": spec.cleanup_policy, "retention.ms": str(spec.retention_ms)}
        names = [spec.name] + ([spec.dead_letter_name] if spec.consumed else [])
        for name in names:
            full = topics.full_name(settings.topic_namespace, name)
            wanted[full] = _new_topic(settings, full, config)
    return wanted


def changelog_topics(settings: Settings, names: list[str]) -> dict[str, NewTopic]:
    """Compacted changelog topics of tables, partitioned like the topics that feed them."""
    return {name: _new_topic(settings, name, {"cleanup.policy": "compact"}) for name in names}


def ensure_topics(settings: Settings, wanted: dict[str, NewTopic]) -> None:
    """Create the topics if missing; refuse a topic whose partition count differs."""
    admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers})
    existing = admin.list_topics(timeout=10).topics
    for name, new in wanted.items():
        if name in existing and len(existing[name].partitions) != settings.topic_partitions:
            raise TopicMismatch(
                f"topic {name!r} has {len(existing[name].partitions)} partitions but the project "
                f"expects {settings.topic_partitions} (FC_TOPIC_PARTITIONS). Keys would land on other "
                "partitions than the tables that own them. Delete the topic (and its consumers' "
                "state) or set FC_TOPIC_PARTITIONS to match."
            )
    missing = [new for name, new in wanted.items() if name not in existing]
    if not missing:
        return
    for name, future in admin.create_topics(missing, operation_timeout=30).items():
        try:
            future.result()
            log.info("created topic %s (%d partitions)", name, settings.topic_partitions)
        except confluent_kafka.KafkaException as exc:
            if exc.args[0].code() != confluent_kafka.KafkaError.TOPIC_ALREADY_EXISTS:
                raise


def prepare_cluster(settings: Settings, changelogs: list[str] | None = None) -> None:
    """What every process does first: wait for Kafka, then make sure the registry's topics (and
    the given tables' changelogs) exist."""
    wait_for_broker(settings.bootstrap_servers)
    wanted = registry_topics(settings)
    wanted.update(changelog_topics(settings, changelogs or []))
    try:
        ensure_topics(settings, wanted)
    except TopicMismatch as exc:
        raise SystemExit(str(exc)) from None


class EventWriter:
    """Writes envelopes to the topic the registry names, keyed and partitioned as the workers do."""

    def __init__(self, settings: Settings, client_id: str) -> None:
        self._namespace = settings.topic_namespace
        self._producer = confluent_kafka.Producer(
            {
                "bootstrap.servers": settings.bootstrap_servers,
                "client.id": client_id,
                "partitioner": CONFLUENT_PARTITIONER,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 2,
            }
        )
        self._poller: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._poller = asyncio.create_task(self._poll_forever())

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.to_thread(self._producer.poll, 0.2)

    async def write(self, event: Envelope) -> tuple[str, int]:
        """Write one event and wait until the broker has it; returns (topic, partition)."""
        spec, key = topics.route(event)
        loop = asyncio.get_running_loop()
        delivered: asyncio.Future[tuple[str, int]] = loop.create_future()

        def on_delivery(err: confluent_kafka.KafkaError | None, msg: confluent_kafka.Message) -> None:
            def settle() -> None:
                if delivered.done():
                    return
                if err is not None:
                    delivered.set_exception(confluent_kafka.KafkaException(err))
                else:
                    delivered.set_result((msg.topic(), msg.partition()))

            loop.call_soon_threadsafe(settle)

        self._producer.produce(
            topics.full_name(self._namespace, spec.name), key=key, value=event.to_bytes(), on_delivery=on_delivery
        )
        return await delivered

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
        await asyncio.to_thread(self._producer.flush, 10)
