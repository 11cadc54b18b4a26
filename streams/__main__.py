"""Start a worker: wait for Kafka, create the registry's topics, run the Faust worker.

`python -m streams` is what the Procfile and the test harness run. Logging is at info: at warn
and below Faust's spinner turns root logging to DEBUG and costs a quarter of the throughput.

Local state after an unclean stop is thrown away, as Kafka Streams does under exactly-once: a
worker killed mid-transaction has already written to RocksDB what its aborted transaction never
committed, so keeping it would apply those events twice (or hide them from reprocessing). A
worker that stopped cleanly leaves a marker and keeps its state; any other start restores every
table from its changelog, which holds committed writes only.
"""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path

from connectors.kafka import prepare_cluster
from streams.settings import load

log = logging.getLogger("streams")

CLEAN_STOP_MARKER = ".clean-stop"


def discard_state_after_unclean_stop(data_dir: Path) -> None:
    marker = data_dir / CLEAN_STOP_MARKER
    if marker.exists():
        marker.unlink()
        return
    stores = [p for p in data_dir.glob("*") if p.is_dir()]
    if stores:
        log.warning("%s was not stopped cleanly: discarding local table state, restoring from changelogs", data_dir)
        for store in stores:
            shutil.rmtree(store)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load()
    settings.worker_data_dir.mkdir(parents=True, exist_ok=True)
    discard_state_after_unclean_stop(settings.worker_data_dir)
    from streams.app import app  # builds the app; nothing subscribes before app.main()

    # The tables' changelogs too: Faust declares them while the tables start, and a first write
    # that beats the declaration finds a topic "with 0 partitions" and crashes its agent.
    prepare_cluster(settings, changelogs=[table.changelog_topic.get_topic_name() for table in app.tables.values()])

    sys.argv = [sys.argv[0], "worker", "-l", "info"]
    try:
        app.main()
    except SystemExit as exit_:
        if exit_.code in (0, None):
            (settings.worker_data_dir / CLEAN_STOP_MARKER).touch()
        raise


if __name__ == "__main__":
    main()
