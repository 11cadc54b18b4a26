"""The gateway's CPU per request with its rate limits counting and without, in one run.

    .venv/bin/python -m bench.gateway_edge [--requests 4000] [--rounds 3] [--clients 32]

Starts its own broker (or uses KAFKA_BOOTSTRAP_SERVERS), one worker and a gateway, seeds a
product, then, round after round, restarts the gateway alternately with every budget `off` (the
edge counts nothing: the gateway as it was before rate limiting) and with budgets that count every
request but never refuse (per address, per principal and kind), and sends --requests reads of the
product (`GET /v1/products/{sku}`, 64 customers, --clients at once) through it. It prints the
gateway process's CPU time per request (median over the rounds) of each and their ratio. Every
answer must be a 200: a refusal would mean the budgets were not the ones meant.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
from typing import Any

import aiohttp

from bench.common import broker, cpu_seconds, data_dir, progress
from devtools.stack import JWT_SECRET, UNLIMITED_EDGE, Stack
from gateway.tokens import mint
from streams.settings import load

TENANT = "bench"
SKU = "EDGE-1"
CUSTOMERS = 64
OFF = {name: "off" for name in UNLIMITED_EDGE if name.startswith("GATEWAY_RATE_LIMIT_")}


async def reads(base: str, requests: int, clients: int) -> None:
    tokens = [mint(JWT_SECRET, f"edge-customer-{n}", "customer", TENANT) for n in range(CUSTOMERS)]
    statuses: dict[int, int] = {}

    async with aiohttp.ClientSession() as session:
        async def client(first: int) -> None:
            for n in range(first, requests, clients):
                headers = {"Authorization": f"Bearer {tokens[n % CUSTOMERS]}"}
                async with session.get(f"{base}/v1/products/{SKU}", headers=headers) as reply:
                    await reply.read()
                    statuses[reply.status] = statuses.get(reply.status, 0) + 1

        await asyncio.gather(*(client(n) for n in range(clients)))
    if set(statuses) != {200}:
        raise SystemExit(f"[bench] answers other than 200: {statuses}")


def cpu_ms_per_request(stack: Stack, edge: dict[str, str], requests: int, clients: int) -> float:
    gateway = stack.start_gateway(**edge)
    try:
        stack.wait_ready()
        asyncio.run(reads(gateway.url, clients, clients))  # warm: connections to the worker, caches
        assert gateway.popen is not None
        before = cpu_seconds(gateway.popen.pid)
        asyncio.run(reads(gateway.url, requests, clients))
        return (cpu_seconds(gateway.popen.pid) - before) / requests * 1000
    finally:
        gateway.stop()


async def seed(base: str) -> None:
    vendor = mint(JWT_SECRET, "edge-vendor", "vendor", TENANT)
    body: dict[str, Any] = {"sku": SKU, "name": "edge", "price": {"amount": 100, "currency": "EUR"}}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}/v1/products", json=body, headers={"Authorization": f"Bearer {vendor}"}) as r:
            if r.status >= 300:
                raise SystemExit(f"[bench] seeding the product failed: {r.status} {await r.text()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=32)
    args = parser.parse_args()
    figures: dict[str, list[float]] = {"off": [], "counting": []}
    with broker(load().external_bootstrap) as bootstrap:
        stack = Stack(bootstrap=bootstrap, name="bench-edge")
        stack.base_dir = data_dir("edge")
        try:
            stack.start_worker()
            gateway = stack.start_gateway()
            stack.wait_ready()
            asyncio.run(seed(gateway.url))
            gateway.stop()
            for round_no in range(args.rounds):
                for label, edge in (("off", OFF), ("counting", UNLIMITED_EDGE)):
                    figures[label].append(cpu_ms_per_request(stack, edge, args.requests, args.clients))
                    progress(f"round {round_no + 1}/{args.rounds}, rate limits {label}: "
                             f"{figures[label][-1]:.3f} CPU ms per request")
        finally:
            stack.stop()
            shutil.rmtree(stack.base_dir, ignore_errors=True)
    off, counting = statistics.median(figures["off"]), statistics.median(figures["counting"])
    print(f"[bench] gateway CPU per read (GET /v1/products/{{sku}}, median of {args.rounds} rounds): "
          f"rate limits off {off:.3f} ms, counting {counting:.3f} ms, ratio {counting / off:.2f} "
          f"(python -m bench.gateway_edge --requests {args.requests} --rounds {args.rounds})")


if __name__ == "__main__":
    main()
