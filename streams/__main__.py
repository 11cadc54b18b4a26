"""Start a worker: wait for Kafka, create the registry's topics, run the Faust worker.

`python -m streams` is what the Procfile and the test harness run. Logging is at info: at warn
and below Faust's spinner turns root logging to DEBUG and costs a quarter of the throughput.

Local state is thrown away at every start and restored from the changelogs, which hold committed
writes only, as Kafka Streams does after an unclean stop under exactly-once: a worker's RocksDB
holds the writes of its last transaction before that transaction commits, and a worker stopped
between a write and the commit (killed, or stopped while an event was in flight) would otherwise
apply those events twice, or hide them from their reprocessing. A clean-stop marker would save
the restore, but nothing in Faust guarantees that no event is processed after the last commit of
a stopping worker; restoring costs seconds for the state of this project's tests and demos.
"""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path

from connectors.kafka import prepare_cluster
from streams.settings import load

log = logging.getLogger("streams")

def discard_local_state(data_dir: Path) -> None:
    stores = [p for p in data_dir.glob("*") if p.is_dir()]
    if stores:
        log.info("discarding local table state in %s: tables restore from their changelogs", data_dir)
        for store in stores:
            shutil.rmtree(store)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load()
    settings.worker_data_dir.mkdir(parents=True, exist_ok=True)
    discard_local_state(settings.worker_data_dir)
    from streams.app import app  # builds the app; nothing subscribes before app.main()

    # The tables' changelogs too: Faust declares them while the tables start, and a first write
    # that beats the declaration finds a topic "with 0 partitions" and crashes its agent.
    prepare_cluster(settings, changelogs=[table.changelog_topic.get_topic_name() for table in app.tables.values()])

    sys.argv = [sys.argv[0], "worker", "-l", "info"]
    app.main()


if __name__ == "__main__":
    main()
