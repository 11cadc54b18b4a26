"""Start a worker: wait for Kafka, create the registry's topics, run the Faust worker.

`python -m streams` is what the Procfile and the test harness run. Logging is at info: at warn
and below Faust's spinner turns root logging to DEBUG and costs a quarter of the throughput.
"""

from __future__ import annotations

import logging
import sys

from connectors.kafka import TopicMismatch, ensure_topics, wait_for_broker
from streams.settings import load


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load()
    wait_for_broker(settings.bootstrap_servers)
    try:
        ensure_topics(settings)
    except TopicMismatch as exc:
        raise SystemExit(str(exc)) from None
    from streams.app import app  # imported after the topics exist: agents subscribe at start

    sys.argv = [sys.argv[0], "worker", "-l", "info"]
    app.main()


if __name__ == "__main__":
    main()
