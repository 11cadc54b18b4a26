"""The thread that fills a gateway's `CatalogView` from `catalog.products` and `inventory.availability`.

A plain confluent-kafka consumer that joins no group: it `assign()`s every partition of both
compacted topics from the beginning, reads committed records only (`isolation.level=read_committed`)
and never commits (as `streams/tap.py`'s Reader). It notes each partition's end offset when it
starts; once it has read every partition up to there (or met its end), the view is ready
(`/readyz` waits for it), and it goes on following both topics for the life of the process.
A record that is not an event of the topic is logged and skipped.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable
from typing import Any

import confluent_kafka

from gateway.catalog_view import CatalogView
from streams import tap, topics
from streams.models import Envelope
from streams.settings import Settings

log = logging.getLogger("gateway.catalog_feed")

SOURCES = (topics.CATALOG_PRODUCTS, topics.INVENTORY_AVAILABILITY)
POLL_SECONDS = 0.5
RETRY_SECONDS = 2.0


def consumer_config(settings: Settings) -> dict[str, Any]:
    return {**tap.consumer_config(settings, "fc-gateway-catalog-view"), "log_level": 3}


class CatalogFeed:
    def __init__(self, settings: Settings, view: CatalogView,
                 consumer: Callable[[dict[str, Any]], Any] = confluent_kafka.Consumer) -> None:
        self.settings = settings
        self.view = view
        self._new_consumer = consumer
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="catalog-view", daemon=True)
        self.skipped = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        consumer = self._new_consumer(consumer_config(self.settings))
        try:
            behind = self._assign(consumer)
            if behind is None:
                return
            if not behind:
                self.view.ready.set()
            while not self._stop.is_set():
                message = consumer.poll(POLL_SECONDS)
                if message is None:
                    continue
                where = (message.topic(), message.partition())
                if message.error():
                    if message.error().code() == confluent_kafka.KafkaError._PARTITION_EOF:
                        behind.pop(where, None)
                    else:
                        log.warning("catalog view: %s", message.error().str())
                else:
                    self._apply(message)
                    if where in behind and message.offset() + 1 >= behind[where]:
                        del behind[where]
                if not behind and not self.view.ready.is_set():
                    log.info("catalog view caught up: %s", self.view.sizes())
                    # The view's objects (millions with a large catalog) out of the collector's full
                    # passes, which otherwise scan them all and stall requests for a few hundred ms.
                    gc.freeze()
                    self.view.ready.set()
        except Exception:  # noqa: BLE001 - a dead feed must say why; /readyz stays not ready if it never caught up
            log.exception("catalog view feed stopped")
        finally:
            consumer.close()

    def _assign(self, consumer: Any) -> dict[tuple[str, int], int] | None:
        """Assign every partition of both topics from the beginning; the end offsets to reach, per
        partition with records. None when stopped before the topics exist."""
        names = [topics.full_name(self.settings.topic_namespace, spec.name) for spec in SOURCES]
        while not self._stop.is_set():
            try:
                assignment, behind = [], {}
                for name in names:
                    metadata = consumer.list_topics(name, timeout=10).topics.get(name)
                    if metadata is None or metadata.error is not None or not metadata.partitions:
                        raise LookupError(f"topic {name} does not exist (yet)")
                    for partition in sorted(metadata.partitions):
                        low, high = consumer.get_watermark_offsets(
                            confluent_kafka.TopicPartition(name, partition), timeout=10)
                        if high > low:
                            behind[(name, partition)] = high
                        assignment.append(confluent_kafka.TopicPartition(name, partition,
                                                                         confluent_kafka.OFFSET_BEGINNING))
                consumer.assign(assignment)
                return behind
            except (LookupError, confluent_kafka.KafkaException) as exc:
                log.warning("catalog view: %s; trying again in %.0f s", exc, RETRY_SECONDS)
                self._stop.wait(RETRY_SECONDS)
        return None

    def _apply(self, message: Any) -> None:
        try:
            event = Envelope.from_bytes(message.value() or b"")
        except ValueError as exc:
            self.skipped += 1
            log.warning("%s[%d]@%d is not an event, skipped: %s", message.topic(), message.partition(),
                        message.offset(), str(exc).splitlines()[0])
            return
        self.view.apply(event)
