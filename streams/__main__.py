"""Start a worker: check its secrets (`load_for`), wait for Kafka, create the topics and the group's
changelogs, run the agents.

    python -m streams                      # every agent, in the group FC_APP_ID
    python -m streams --agents payments    # a subset, as its own group <FC_APP_ID>-payments

Local state is kept across restarts: stores hold committed state only, with the changelog offset
they reflect, so a start restores only the changelogs' tails (streams/runtime/stores.py).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from connectors.kafka import prepare_cluster
from connectors.stripe import StripePayments
from streams import agents, logs
from streams.runtime.stores import changelog_topic
from streams.runtime.worker import group_id, serve
from streams.settings import load, load_for


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", default=",".join(agents.NAMES),
                        help=f"comma-separated agents to run (default all: {','.join(agents.NAMES)})")
    args = parser.parse_args()
    settings = load()
    logs.configure(settings, "worker")
    settings = load_for("worker", settings)
    names = [name.strip() for name in args.agents.split(",") if name.strip()]
    provider = StripePayments.from_settings(settings)
    running = agents.build(settings, provider, names)
    group = group_id(settings, names, agents.NAMES)
    tables = sorted({table.name for agent in running for table in agent.tables})
    prepare_cluster(settings, changelogs=[changelog_topic(group, table) for table in tables])
    sys.exit(asyncio.run(serve(settings, running, group, on_stop=provider.close)))


if __name__ == "__main__":
    main()
