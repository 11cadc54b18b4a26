"""Discovery through the gateway: listings, searches and recommendations per second, with p50/p99, on
a catalog of --products products of one tenant.

    .venv/bin/python -m bench.discovery [--products 100000] [--seconds 20] [--concurrency 32]

Starts its own broker (or uses KAFKA_BOOTSTRAP_SERVERS) and one worker, writes the catalog straight
to the topics as the registry routes it (`bench.reservations.records`): the products and stock of
`bench.catalog_view` (same seed, vocabulary and tenant, so the two benches' figures are of one
catalog: about half the SKUs in stock, 8 in 10 active), as `ProductUpserted` on `catalog.products`
and `AdjustStock` on `inventory.commands`, and the co-purchase counts of --orders confirmed orders
over a few hundred hot SKUs (the `CountCoPurchase` commands `streams.tables.recommendations.split`
makes of each, on `recommendations.commands`). It waits until the worker has processed all of it,
then starts the gateway with every rate limit `off` and waits for its /readyz (the catalog view
caught up with the topics).

Then, for each kind of request in `KINDS`, a closed loop: --concurrency clients (customers' tokens,
keep-alive connections) each send the request and the next as soon as the answer came, for
--seconds, after --warmup seconds not counted. Per kind: requests per second, p50 and p99 of the
time from sending to the last byte of the answer, answers other than 200, and the CPU time of the
gateway's and the worker's processes per request over the counted span (/proc), and of this process
(`driver`, JSON only). The clients run in this process, on the same machine: they take CPU from the
gateway, as in bench/orders_e2e.py.
Raw figures go to bench/results/discovery.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import time
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp

from bench.catalog_view import records as catalog_records
from bench.common import RESULTS_DIR, broker, cpu_seconds, data_dir, progress
from bench.gateway_edge import OFF
from bench.orders_e2e import percentile
from bench.reservations import records as routed, write
from devtools.stack import JWT_SECRET, WORKER_READ_HEADERS, Stack
from gateway.tokens import mint
from streams.models import AdjustStock, AvailabilityChanged, Envelope, OrderLine, OrderStatusChanged, ProductUpserted
from streams.settings import load
from streams.tables.recommendations import split

TENANT = "acme"  # bench.catalog_view's
CUSTOMERS = 64
HOT_SKUS = 300  # the SKUs confirmed orders are made of (recommendations with a co-purchase history)

# name -> path and query; `{hot}` / `{cold}`: a SKU with co-purchases / one never ordered, new each request.
KINDS = {
    "listing newest": "/v1/products?sort=newest",
    "listing in stock, 200.00-300.00 EUR, price_desc": "/v1/products?in_stock=true&min_price=20000&max_price=30000"
                                                        "&sort=price_desc",
    "search q=mug (common word)": "/v1/products?q=mug",
    "search q=blue mug": "/v1/products?q=blue%20mug",
    "recommendations, product with co-purchases": "/v1/products/{hot}/recommendations",
    "recommendations, product never ordered (popularity)": "/v1/products/{cold}/recommendations",
}


def catalog(products: int, orders: int, seed: int = 11) -> tuple[list[Envelope], list[str], list[str]]:
    """The envelopes to write (products, then opening stock and co-purchase counts), the hot SKUs (active,
    in stock, ordered together) and cold ones (active, in stock, never ordered)."""
    rng = random.Random(seed)
    envelopes: list[Envelope] = []
    active: set[str] = set()
    stocked: list[str] = []
    for event in catalog_records(products):
        payload = event.payload
        if isinstance(payload, ProductUpserted):
            envelopes.append(event)
            if payload.status == "active":
                active.add(payload.sku)
        elif isinstance(payload, AvailabilityChanged) and payload.available > 0:
            # The inventory agent writes the availability; the bench gives the stock it follows from.
            envelopes.append(Envelope.new(TENANT, AdjustStock(
                adjustment_id=uuid.UUID(int=rng.getrandbits(128), version=4), sku=payload.sku,
                delta=payload.available, reason="bench opening stock")))
            stocked.append(payload.sku)
    eligible = [sku for sku in stocked if sku in active]
    rng.shuffle(eligible)
    hot, cold = eligible[:HOT_SKUS], eligible[HOT_SKUS:2 * HOT_SKUS]
    now = datetime.now(UTC)
    weights = [1 / (rank + 1) for rank in range(len(hot))]  # a few SKUs bought far more often
    for _ in range(orders):
        lines = {sku: OrderLine(sku=sku, quantity=1) for sku in rng.choices(hot, weights, k=rng.randint(2, 4))}
        confirmed = Envelope.new(TENANT, OrderStatusChanged(
            order_id=uuid.UUID(int=rng.getrandbits(128), version=4), customer="bench", status="confirmed",
            previous_status="paid", lines=tuple(lines.values())), occurred_at=now)
        envelopes += [Envelope.new(TENANT, command, occurred_at=now) for command in split(confirmed)]
    return envelopes, hot, cold


async def closed_loop(base: str, path: str, pick: Callable[[str], str], concurrency: int, seconds: float,
                      warmup: float, processes: dict[str, int]) -> dict[str, Any]:
    """`concurrency` clients sending `path` one after the other for `warmup` + `seconds`; the figures
    of the requests sent after the warm-up."""
    tokens = [mint(JWT_SECRET, f"bench-customer-{n}", "customer", TENANT) for n in range(CUSTOMERS)]
    latencies: list[float] = []
    errors: dict[str, int] = {}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        started = time.perf_counter()
        counted_from = started + warmup
        ends = counted_from + seconds
        cpu_before: dict[str, float] = {}

        async def client(n: int) -> None:
            headers = {"Authorization": f"Bearer {tokens[n % CUSTOMERS]}"}
            while (sent := time.perf_counter()) < ends:
                counted = sent >= counted_from
                try:
                    async with session.get(base + pick(path), headers=headers) as reply:
                        await reply.read()
                        status = str(reply.status)
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    status = type(exc).__name__
                if counted:
                    if status == "200":
                        latencies.append(time.perf_counter() - sent)
                    else:
                        errors[status] = errors.get(status, 0) + 1

        async def cpu_mark() -> None:
            await asyncio.sleep(max(0.0, counted_from - time.perf_counter()))
            cpu_before.update({name: cpu_seconds(pid) for name, pid in processes.items()})

        marker = asyncio.create_task(cpu_mark())
        await asyncio.gather(*(client(n) for n in range(concurrency)))
        await marker
        elapsed = time.perf_counter() - counted_from
    done = len(latencies) + sum(errors.values())
    return {
        "requests": done, "seconds": elapsed, "requests_per_second": done / elapsed,
        "p50_ms": percentile(latencies, 0.50) * 1000 if latencies else None,
        "p99_ms": percentile(latencies, 0.99) * 1000 if latencies else None,
        "errors": errors,
        **{f"{name}_cpu_ms_per_request": 1000 * (cpu_seconds(pid) - cpu_before[name]) / max(1, done)
           for name, pid in processes.items()},
    }


async def sample_answers(base: str, hot: str, cold: str) -> dict[str, Any]:
    """One answer of each kind, to show what was measured (items per page, recommendation source)."""
    headers = {"Authorization": f"Bearer {mint(JWT_SECRET, 'bench-customer-0', 'customer', TENANT)}"}
    shown: dict[str, Any] = {}
    async with aiohttp.ClientSession() as session:
        for name, path in KINDS.items():
            async with session.get(base + path.format(hot=hot, cold=cold), headers=headers) as reply:
                body = await reply.json()
            if reply.status != 200:
                raise SystemExit(f"[bench] {name}: {reply.status} {body}")
            if "products" in body:
                shown[name] = f"{len(body['products'])} products, next page: {body['next_cursor'] is not None}"
            else:
                # Stock refused or counts lost would make it a figure of empty answers: stop instead.
                if len(body["recommendations"]) < 5 or body["source"] not in ("co_purchase", "popularity", "mixed"):
                    raise SystemExit(f"[bench] {name}: expected 5 recommendations, got {body}")
                shown[name] = f"{len(body['recommendations'])} recommendations, source {body['source']}"
    return shown


def gateway_ready_body(stack: Stack) -> dict[str, Any]:
    assert stack.gateway is not None
    request = urllib.request.Request(f"{stack.gateway.url}/readyz", headers=WORKER_READ_HEADERS)
    with urllib.request.urlopen(request, timeout=5) as reply:
        return dict(json.loads(reply.read()))


def measure(bootstrap: str, args: argparse.Namespace) -> dict[str, Any]:
    stack = Stack(bootstrap=bootstrap, name="bench-discovery")
    stack.base_dir = data_dir("discovery")
    result: dict[str, Any] = {"products": args.products, "orders": args.orders, "seconds": args.seconds,
                              "warmup_seconds": args.warmup, "concurrency": args.concurrency,
                              "load_average_at_start": os.getloadavg()[0], "kinds": {}}
    try:
        progress("starting a worker")
        stack.start_worker(0)
        progress(f"building {args.products} products, their stock and {args.orders} confirmed orders' co-purchases")
        envelopes, hot, cold = catalog(args.products, args.orders)
        products = [e for e in envelopes if isinstance(e.payload, ProductUpserted)]
        rest = [e for e in envelopes if not isinstance(e.payload, ProductUpserted)]
        started = time.monotonic()
        # The products first: the inventory agent refuses stock for a SKU its catalog does not have yet.
        for label, batch in (("products", products), ("stock and co-purchase counts", rest)):
            write(bootstrap, stack.namespace, routed(batch))
            progress(f"wrote {len(batch)} records ({label}); waiting for the worker")
            stack.wait_drained(timeout=600)
        result["setup_seconds"] = time.monotonic() - started
        progress(f"worker drained {time.monotonic() - started:.1f} s after the first write; starting the gateway")
        started = time.monotonic()
        gateway = stack.start_gateway(**OFF)  # waits for /readyz: the catalog view caught up
        result["gateway_ready_seconds"] = time.monotonic() - started
        progress(f"gateway ready in {result['gateway_ready_seconds']:.1f} s: {gateway_ready_body(stack)}")
        rng = random.Random(5)
        samples = asyncio.run(sample_answers(gateway.url, hot[0], cold[0]))
        processes = {"gateway": gateway.pid, "worker": stack.workers[0].pid, "driver": os.getpid()}

        def pick(template: str) -> str:
            return template.format(hot=rng.choice(hot), cold=rng.choice(cold)) if "{" in template else template

        for name, path in KINDS.items():
            figures = asyncio.run(closed_loop(gateway.url, path, pick, args.concurrency, args.seconds, args.warmup,
                                              processes))
            figures["path"], figures["answer"] = path, samples[name]
            result["kinds"][name] = figures
            progress(f"{name}: {figures['requests_per_second']:.0f}/s, p50 {figures['p50_ms']:.1f} ms, "
                     f"p99 {figures['p99_ms']:.1f} ms, errors {figures['errors'] or 0}, CPU ms per request: gateway "
                     f"{figures['gateway_cpu_ms_per_request']:.2f}, worker {figures['worker_cpu_ms_per_request']:.2f}, "
                     f"clients {figures['driver_cpu_ms_per_request']:.2f} ({samples[name]})")
        result["load_average_at_end"] = os.getloadavg()[0]
        return result
    finally:
        stack.stop()
        shutil.rmtree(stack.base_dir, ignore_errors=True)


def main() -> None:
    args = parser().parse_args()
    with broker(load().external_bootstrap) as bootstrap:
        result = measure(bootstrap, args)
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "discovery.json").write_text(json.dumps(result, indent=2))
    command = (f"python -m bench.discovery --products {args.products} --seconds {args.seconds:g} "
               f"--concurrency {args.concurrency}" + (f" --warmup {args.warmup:g}" if args.warmup != 2 else "")
               + (f" --orders {args.orders}" if args.orders != 2000 else ""))
    print()
    print("\n".join(table(result, command)))


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=20.0, help="counted seconds per kind of request")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds per kind before counting")
    parser.add_argument("--concurrency", type=int, default=32, help="clients in the closed loop")
    parser.add_argument("--orders", type=int, default=2000, help="confirmed orders over the hot SKUs")
    return parser


def table(result: dict[str, Any], command: str) -> list[str]:
    rows = [f"| {result['products']:,} products, {result['concurrency']} clients, {result['seconds']:g} s each "
            "| requests/s | p50 ms | p99 ms | errors | gateway CPU ms / request | worker CPU ms / request |",
            "|---|---|---|---|---|---|---|"]
    for name, f in result["kinds"].items():
        rows.append(f"| {name} | {f['requests_per_second']:,.0f} | {f['p50_ms']:.1f} | {f['p99_ms']:.1f} "
                    f"| {sum(f['errors'].values())} | {f['gateway_cpu_ms_per_request']:.2f} "
                    f"| {f['worker_cpu_ms_per_request']:.2f} |")
    rows.append(f"[bench] load average {result['load_average_at_start']:.1f} at the start, "
                f"{result['load_average_at_end']:.1f} at the end ({command})")
    return rows


if __name__ == "__main__":
    main()
