"""`make bench`: the benchmarks side by side on one broker, with medians over several runs.

    .venv/bin/python -m bench.run [--runs 3] [--events 100000] [--skus 10000]
        [--broker-records 1000000] [--orders 2000] [--skip-orders]
        [--scaling-events 100000] [--scaling-skus 10000] [--workers 1,2,4] [--keys 100000]
        [--tail-keys 5000] [--skip-scaling] [--products 100000] [--skip-discovery]
        [--bootstrap HOST:PORT] [--keep]

Each run, on a fresh stack (own topics, worker and data directory under .data/bench-*):
1. ours: reservations per second of one worker (`python -m streams`, the runtime of
   streams/runtime/) over a backlog on `inventory.commands` (bench/reservations.py), verified
   exactly once;
2. the peers over the same input under their own groups: a confluent-kafka transactional loop
   with the project's decision and the runtime's commit order, crash-safe like it
   (bench/peer_confluent.py), and a Kafka Streams app with exactly_once_v2 and RocksDB
   (bench/kafka-streams), verified the same way (bench/peers.py);
3. the broker's ceiling from Kafka's ProducerPerformance / ConsumerPerformance (bench/broker_ceiling.py).
Then once: orders settled end to end through the gateway (bench/orders_e2e.py's run, with its own
--runs), unless --skip-orders. Then scaling and recovery (bench/scaling.py, with the same --runs):
reservations/s with 1, 2 and 4 workers on 8 partitions, and how long a worker that takes over the
partitions of a table of --keys keys needs to serve them, once restoring them in full (it never
held them) and once only the changelog's tail (it held them before), unless --skip-scaling. Then
once: listings, searches and recommendations through the gateway over a catalog of --products
products (bench/discovery.py, 32 clients, 20 s per kind of request), unless --skip-discovery.
Prints the tables of medians and the command that reproduces them; the raw figures go to
bench/results/bench-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime
from typing import Any

from bench import broker_ceiling, discovery, orders_e2e, scaling
from bench.common import DATA_ROOT, RESULTS_DIR, broker, int_list, progress
from bench.peers import PEERS, build_kstreams, run_peer
from bench.reservations import OursRun, Workload, problems

LABELS = {"ours": "ours: worker (python -m streams, streams/runtime)",
          "confluent": "peer: confluent-kafka loop, same decision, crash-safe store",
          "kstreams": "peer: Kafka Streams, exactly_once_v2 + RocksDB"}


def one_run(bootstrap: str, args: argparse.Namespace, run_no: int) -> dict[str, Any]:
    workload = Workload(args.skus, args.events, seed=run_no)
    ours = OursRun(bootstrap, workload)
    result: dict[str, Any] = {"envelope_bytes": workload.average_size()}
    try:
        ours.prepare()
        result["ours"] = {**ours.measure().as_dict(), "verified": ours.verify()}
        progress(f"  ours: {result['ours']['events_per_second']:.0f} reservations/s")
        for peer in PEERS:
            result[peer] = run_peer(peer, ours)
            progress(f"  {peer}: {result[peer]['events_per_second']:.0f} reservations/s")
    finally:
        ours.close()
    if not args.keep:
        shutil.rmtree(ours.stack.base_dir, ignore_errors=True)
    result["broker"] = broker_ceiling.measure(bootstrap, args.broker_records, result["envelope_bytes"])
    return result


def orders_end_to_end(bootstrap: str, args: argparse.Namespace) -> dict[str, Any]:
    progress("orders end to end (bench/orders_e2e.py)")
    e2e_args = argparse.Namespace(orders=args.orders, runs=args.runs, concurrency=orders_e2e.DEFAULT_LADDER,
                                  latency_seconds=10.0)
    return orders_e2e.measure(bootstrap, e2e_args, keep=args.keep)


def scaling_figures(bootstrap: str, args: argparse.Namespace) -> dict[str, Any]:
    progress("scaling and recovery (bench/scaling.py)")
    scaling_args = scaling.parser().parse_args([
        "--runs", str(args.runs), "--events", str(args.scaling_events), "--skus", str(args.scaling_skus),
        "--workers", ",".join(map(str, args.workers)), "--keys", str(args.keys),
        "--tail-keys", str(args.tail_keys),
    ])
    scaling_args.keep = args.keep
    return scaling.measure(bootstrap, scaling_args)


def discovery_figures(bootstrap: str, args: argparse.Namespace) -> dict[str, Any]:
    progress(f"listings, searches and recommendations over {args.products} products (bench/discovery.py)")
    return discovery.measure(bootstrap, discovery.parser().parse_args(["--products", str(args.products)]))


def median(runs: list[dict[str, Any]], *path: str) -> float:
    values = []
    for run in runs:
        value: Any = run
        for step in path:
            value = value[step]
        values.append(value)
    return statistics.median(values)


def table(results: dict[str, Any], command: str) -> str:
    runs = results["runs"]
    n = len(runs)
    ours = median(runs, "ours", "events_per_second")
    rows = [f"| figure (median of {n} run{'s' if n > 1 else ''}) | value |", "|---|---|"]
    for name in ("ours", *PEERS):
        rate = median(runs, name, "events_per_second")
        later = median(runs, name, "second_half_events_per_second")
        failed = [f"run {n}: {problems(run[name]['verified'])}" for n, run in enumerate(runs, 1)
                  if not run[name]["verified"]["exactly_once"]]
        warning = f" NOT EXACTLY ONCE ({'; '.join(failed)})" if failed else ""
        cpu = median(runs, name, "cpu_ms_per_event")
        rows.append(f"| {LABELS[name]}: reservations/s | {rate:,.0f} (second half of the backlog: {later:,.0f}; "
                    f"{cpu:.2f} CPU ms each){warning} |")
    for peer in PEERS:
        ratio = statistics.median(run["ours"]["events_per_second"] / run[peer]["events_per_second"] for run in runs)
        # A peer's CPU reads 0 when its whole span is shorter than a clock tick (a tiny --events).
        cpu_ratios = [run["ours"]["cpu_ms_per_event"] / run[peer]["cpu_ms_per_event"] for run in runs
                      if run[peer]["cpu_ms_per_event"] > 0]
        cpu = (f"CPU per reservation {statistics.median(cpu_ratios):,.1f} x the peer's" if cpu_ratios
               else "CPU per reservation: the peer's span was shorter than a CPU clock tick; give more --events")
        rows.append(f"| ours / {peer} (median of per-run ratios) | {ratio:.3f} (1 : {1 / ratio:,.1f}); {cpu} |")
    size = runs[0]["envelope_bytes"]
    for key, what in (("producer", "producer"), ("producer_transactional", "producer, transactions of 100 ms"),
                      ("consumer", "consumer")):
        rate = median(runs, "broker", key, "records_per_second")
        mb = median(runs, "broker", key, "mb_per_second")
        rows.append(f"| broker ceiling, {what}, {size}-byte records | {rate:,.0f} records/s ({mb:.1f} MB/s) |")
    e2e = results.get("orders_e2e")
    if e2e:
        rising = sum(e2e.get("still_rising", []))
        bound = (f"; still rising at the ladder's top in {rising} of {len(e2e['still_rising'])} runs, so bound by "
                 "the ladder" if rising else "")
        rows.append(f"| orders settled per second, POST -> reserved | {statistics.median(e2e['orders_per_second']):.0f} "
                    f"(with {statistics.median(e2e['clients_at_best_rate']):.0f} clients; CPU ms per order: "
                    f"worker {statistics.median(e2e['worker_cpu_ms_per_order']):.1f}, "
                    f"gateway {statistics.median(e2e['gateway_cpu_ms_per_order']):.1f}; whole machine "
                    f"{statistics.median(e2e['machine_cores_busy_at_best_rate']):.2f} of {results['cpus']} cores "
                    f"busy{bound}) |")
        rows.append(f"| p50 / p99 POST -> reserved at half that rate | {statistics.median(e2e['p50_ms']):.0f} ms / "
                    f"{statistics.median(e2e['p99_ms']):.0f} ms |")
    else:
        rows.append("| orders end to end | skipped (--skip-orders); `make bench-orders` measures it |")
    rows.append("")
    rows.append(f"{results['events']} reservations over {results['skus']} SKUs per run, one worker, 8 partitions; "
                f"ours = {ours:,.0f}/s. Reproduce with: {command}")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--events", type=int, default=100_000, help="ReserveStock commands per run")
    parser.add_argument("--skus", type=int, default=10_000)
    parser.add_argument("--broker-records", type=int, default=1_000_000, help="records per perf-tool pass")
    parser.add_argument("--orders", type=int, default=2000, help="orders per step of the end-to-end ladder")
    parser.add_argument("--skip-orders", action="store_true", help="leave out the end-to-end orders figures")
    parser.add_argument("--scaling-events", type=int, default=100_000,
                        help="ReserveStock commands per scaling run (each worker count)")
    parser.add_argument("--scaling-skus", type=int, default=10_000)
    parser.add_argument("--workers", type=int_list, default=[1, 2, 4],
                        help="worker counts of the scaling runs, comma-separated (default 1,2,4)")
    parser.add_argument("--keys", type=int, default=100_000, help="keys of the table a takeover restores")
    parser.add_argument("--tail-keys", type=int, default=5_000,
                        help="keys changed through the workers before each takeover (the tail)")
    parser.add_argument("--skip-scaling", action="store_true", help="leave out scaling and recovery")
    parser.add_argument("--products", type=int, default=100_000, help="products of the discovery catalog")
    parser.add_argument("--skip-discovery", action="store_true", help="leave out listings, searches, recommendations")
    parser.add_argument("--bootstrap", help="an existing cluster (default: a throwaway broker on free ports)")
    parser.add_argument("--keep", action="store_true", help="keep the runs' data directories and logs")
    args = parser.parse_args()
    given = " ".join(shlex.quote(a) for a in sys.argv[1:])
    command = f"make bench BENCH_ARGS={shlex.quote(given)}" if given else "make bench"
    DATA_ROOT.mkdir(exist_ok=True)
    started = time.monotonic()
    build_kstreams()
    results: dict[str, Any] = {"started_at": datetime.now(UTC).isoformat(), "command": command,
                               "events": args.events, "skus": args.skus, "cpus": os.cpu_count(),
                               "load_average_at_start": os.getloadavg(), "runs": []}
    with broker(args.bootstrap) as bootstrap:
        for run_no in range(1, args.runs + 1):
            progress(f"run {run_no}/{args.runs}: {args.events} reservations over {args.skus} SKUs")
            results["runs"].append(one_run(bootstrap, args, run_no))
        if not args.skip_orders:
            results["orders_e2e"] = orders_end_to_end(bootstrap, args)
        if not args.skip_scaling:
            results["scaling"] = scaling_figures(bootstrap, args)
        if not args.skip_discovery:
            results["discovery"] = discovery_figures(bootstrap, args)
    results["load_average_at_end"] = os.getloadavg()
    results["seconds"] = time.monotonic() - started
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"bench-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(results, indent=2))
    print()
    print(table(results, command))
    if "scaling" in results:
        print()
        print("\n".join(scaling.table(results["scaling"], command)))
    if "discovery" in results:
        print()
        print("\n".join(discovery.table(results["discovery"], command)))
    print(f"\nraw results: {path.relative_to(RESULTS_DIR.parent.parent)}; load average at start "
          f"{results['load_average_at_start'][0]:.1f}, at end {results['load_average_at_end'][0]:.1f} "
          f"on {results['cpus']} CPUs")
    failed = sorted({name for run in results["runs"] for name in ("ours", *PEERS)
                     if not run[name]["verified"]["exactly_once"]})
    trouble = [f"not every reservation was answered exactly once by: {', '.join(failed)}" if failed else None,
               scaling.trouble_in(results["scaling"]) if "scaling" in results else None]
    if any(trouble):
        raise SystemExit(f"[bench] {'; '.join(t for t in trouble if t)} (see the tables and the JSON)")


if __name__ == "__main__":
    main()
