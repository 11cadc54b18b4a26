"""Every worker of the app in one table: which agents it runs, which partitions it holds, its lag.

    python -m streams.topology            # worker, group, agents, partitions, lag
    python -m streams.topology --json     # each worker's whole `GET /fc/topology`

Workers are found as the gateway finds them: FC_WORKER_URLS, plus every member of the app's
consumer groups (FC_APP_ID, and `<app id>-...` for workers running a subset of the agents) whose
client id names its read address (gateway/workers.py `kafka_workers`). Each is asked for its
`/fc/topology` with the workers' read credential, derived from GATEWAY_JWT_SECRET (the
repository's in development mode). A worker that does not answer is listed with why. Exits 1 when
none answers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from typing import Any

import aiohttp
from confluent_kafka.admin import AdminClient

from gateway.workers import kafka_workers
from streams import logs
from streams.runtime.reads import read_headers
from streams.settings import Settings, load

log = logging.getLogger("streams.topology")

TIMEOUT_SECONDS = 5.0


def discover(settings: Settings) -> list[str]:
    """The seeds and the workers found in the app's consumer groups, sorted."""
    urls = {url.rstrip("/") for url in settings.worker_urls}
    try:
        # log_level 4: not the client's notice of unserved events when it is dropped, on the CLI's stderr
        admin = AdminClient({"bootstrap.servers": settings.bootstrap_servers, "log_level": 4})
        urls |= kafka_workers(admin, settings.app_id)
    except Exception as exc:  # noqa: BLE001 - Kafka unreachable: the seeds are still worth asking
        log.warning("finding workers in Kafka failed (%s); asking FC_WORKER_URLS only", exc)
    return sorted(urls)


async def ask(urls: list[str], headers: dict[str, str]) -> list[dict[str, Any]]:
    """Each worker's topology, or the error of asking it: `{"url", "topology"}` or `{"url", "error"}`."""
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)) as session:
        async def one(url: str) -> dict[str, Any]:
            try:
                async with session.get(f"{url}/fc/topology") as response:
                    if response.status != 200:
                        return {"url": url, "error": f"answered {response.status}"}
                    return {"url": url, "topology": await response.json()}
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
                return {"url": url, "error": f"no answer ({exc.__class__.__name__})"}

        return list(await asyncio.gather(*(one(url) for url in urls)))


def ranges(numbers: list[int]) -> str:
    """`[0, 1, 2, 3, 6]` -> `0-3,6`; `-` for none."""
    runs: list[list[int]] = []
    for number in sorted(numbers):
        if runs and number == runs[-1][1] + 1:
            runs[-1][1] = number
        else:
            runs.append([number, number])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs) or "-"


def total_lag(topology: dict[str, Any]) -> str:
    rows = topology.get("lag", [])
    known = [row["lag"] for row in rows if row.get("lag") is not None]
    unknown = len(rows) - len(known)
    return f"{sum(known)}" + (f" ({unknown} unknown)" if unknown else "")


def table(answers: list[dict[str, Any]]) -> str:
    """One line per worker: worker, group, agents, active partitions, standby, lag (sum over its partitions)."""
    header = ("WORKER", "GROUP", "AGENTS", "PARTITIONS", "STANDBY", "LAG")
    lines: list[tuple[str, ...]] = [header]
    for answer in answers:
        topology = answer.get("topology")
        if topology is None:
            lines.append((answer["url"], "-", answer["error"], "-", "-", "-"))
            continue
        held = topology["partitions"]
        lines.append((
            answer["url"] + ("" if topology.get("ready") else " (not ready)"),
            topology["group"],
            ",".join(agent["name"] for agent in topology["agents"]),
            ranges(held["active"]),
            ranges(held["standby"]),
            total_lag(topology),
        ))
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
                     for line in lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print each worker's whole topology as JSON")
    args = parser.parse_args(argv)
    settings = load()
    logs.configure(settings, "topology", level=logging.WARNING)
    if not settings.jwt_secret:
        raise SystemExit("GATEWAY_JWT_SECRET is not set: the workers' read credential derives from it "
                         "(FC_DEVELOPMENT=1 uses the repository's)")
    answers = asyncio.run(ask(discover(settings), read_headers(settings.jwt_secret)))
    if args.json:
        print(json.dumps(answers, indent=2))
    else:
        print(table(answers))
    return 0 if any("topology" in answer for answer in answers) else 1


if __name__ == "__main__":
    sys.exit(main())
