"""Scaling and recovery of the real system: reservations/s with 1, 2 and 4 workers on 8 partitions,
and how long a partition takeover leaves a table's keys unreadable.

    .venv/bin/python -m bench.scaling [--runs 3] [--events 100000] [--skus 10000] [--workers 1,2,4]
        [--keys 100000] [--tail-keys 5000] [--kill] [--only throughput|takeover] [--bootstrap HOST:PORT]
        [--keep]

Everything runs against a real broker (a throwaway one on free ports unless --bootstrap) and real
`python -m streams` workers (devtools.stack.Stack, exactly-once as in production: one consumer of
the KIP-848 group protocol with the broker's range assignor, one transactional producer), each
run on a fresh stack: own app id, topics and data directory under .data/bench-scaling-*.

Throughput. N workers start in one stack and the driver waits until the group has settled: every
worker's `/fc/ready` answers 200 and the partitions they serve cover all 8 exactly once (twice
in a row). The catalog and opening stock of bench/reservations.py's `Workload` go through the
workers, then every worker is paused (SIGSTOP) while the backlog of ReserveStock is written, and
resumed. The rate is the group's committed progress over the backlog (bench/common.py
`time_drain`); CPU ms per reservation is the CPU time of all the workers together from the resume
to the end of the drain, over the whole backlog. Every reservation must be answered exactly once
with the outcome a plain count predicts (bench/reservations.py `verify`). The machine this was
written on has 2 cores: with more workers than cores the workers share them, and the table says
so beside the ratios.

Takeover. The runtime has no standby replicas: a table partition that moves is restored by its
new owner from the table's changelog `<group id>-<table>-changelog` (the group id is FC_APP_ID
when a worker runs every agent), from the changelog offset its local RocksDB store reflects
(streams/runtime/recovery.py). A worker that never held the partition has no store and restores
all of it; one that held it before (its store stays on disk after a revoke or a stop) restores
only the tail written since. Both are measured, on one stack of two workers A and B, per run:

1. The driver writes `--keys` states straight to `<app id>-inventory-changelog` (created as the
   worker creates it, by `connectors.kafka.prepare_cluster`) before any worker starts: one valid
   `StockLevel` JSON per key `d<tenant>/<sku>` (the store's data prefix `d`, as the runtime's
   checkpoint writes it), partitioned with the project's murmur2. Filling the table through the
   agent would only take longer; what a takeover does, the restore, is the same.
2. A starts alone and restores every key (start -> ready, and the restore from A's log line
   `restored N changelog records of P partitions in S s`). B starts; B gets half the partitions
   (restoring them in full) and A revokes them, keeping their stores on disk.
3. `--tail-keys` AdjustStock commands for distinct keys go through the workers (the SKUs are not
   in the catalog, so each is refused, but the refusal is remembered in the key's state: one
   changelog record per key, on_hand unchanged).
4. FULL: A is stopped (SIGTERM, a clean leave; `--kill` for SIGKILL, after which the group waits
   for the broker's session timeout). B takes A's partitions, whose stores it never had, and
   restores them from the changelog's beginning.
5. `--tail-keys` more AdjustStock go through B while A is down. A restarts on its old data
   directory (restart -> ready is reported, with the tail A restored) and gets half back.
6. TAIL: B is stopped the same way. A takes B's partitions back: A held every partition in step
   2, so it restores only what was written to them since it gave them up.

For each takeover the driver times from the signal until the taker serves one sample key of every
moved partition itself: its `/fc/ready` answers 200 listing the partition, and
`GET /state/inventory?key=` answers 200 with the written on_hand (polled every `POLL_SECONDS`; a
worker answers 421 for a partition it does not serve, 503 while restoring). The same is given from
the stopped worker's exit. The records restored are the sum of the taker's `restored ...` log lines
after the signal. Whether the taker held each moved partition before is read from its data
directory (a store directory `<data dir>/<group>/inventory/<partition>`) just before the signal.
Afterwards `CHECKED_KEYS` more keys of the moved partitions, and every key of them changed by
steps 3 and 5, are read from the taker and checked (on_hand, and the remembered adjustment).
The issue's target is a takeover served within `TARGET_SECONDS` for 100k keys.

Prints a markdown table of medians over --runs with the command that reproduces it, and writes the
raw figures to bench/results/scaling-<UTC time>.json. `make bench` (bench/run.py) runs
it after the other figures with `measure(bootstrap, args)`, `table(results, command)` and
`trouble_in(results)`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shlex
import shutil
import signal
import statistics
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import (
    DATA_ROOT,
    RESULTS_DIR,
    broker,
    cpu_seconds,
    data_dir,
    int_list,
    machine_busy_seconds,
    produce_all,
    producer,
    progress,
    stop_resumed,
    time_drain,
)
from bench.reservations import TENANT, Workload, problems, records, verify, write
from connectors.kafka import prepare_cluster
from devtools.stack import WORKER_READ_HEADERS, Process, Stack, eventually
from streams import topics
from streams.models import AdjustmentOutcome, AdjustStock, Envelope, ProductUpserted, StockLevel
from streams.partitioning import partition_for
from streams.runtime.stores import DATA, changelog_topic
from streams.settings import Settings

INPUT = topics.INVENTORY_COMMANDS.name
TABLE = "inventory"
POLL_SECONDS = 0.05
# The bench broker's KIP-848 session timeout is 6 s (devtools/kafka.py): a worker paused longer is
# fenced out of the group and its partitions move.
PAUSE_WARNING_SECONDS = 4.0
# Keys of the moved partitions read from the taker after a takeover, beyond the timed samples.
CHECKED_KEYS = 200
# The target: a moved partition of a 100k-key table is served within this long.
TARGET_SECONDS = 3.0
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})")
RESTORED = re.compile(r"restored (\d+) changelog records of (\d+) partitions in ([\d.]+)s")
# What a worker logs when something went wrong (streams/runtime/loop.py, worker.py, task.py).
TROUBLE_MARKS = ("Traceback", " ERROR ", "aborting the transaction", "fenced", "partitions lost")
CASES = ("full", "tail")


# -- shared by both measurements ---------------------------------------------------------------

def get_json(url: str, timeout: float = 5.0) -> tuple[int, Any]:
    """(status, decoded body) of a GET of a worker endpoint, with the read credential the gateway
    sends; status 0 when nothing answered (connection refused, timeout)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=WORKER_READ_HEADERS), timeout=timeout) as response:
            return int(response.status), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except (OSError, ValueError):
        return 0, None


def partitions_of(ready: dict[str, Any] | None) -> list[int]:
    """The partition numbers a worker serves, from its `/fc/ready` answer (one task per partition
    number, holding that partition of every source topic and table)."""
    return sorted(ready.get("partitions", [])) if ready else []


def owned_partitions(stack: Stack, slots: list[int]) -> dict[int, list[int]] | None:
    """slot -> the partitions it serves, if every worker is ready and together they cover every
    partition exactly once; None while not (starting, rebalancing, restoring)."""
    owned: dict[int, list[int]] = {}
    for slot in slots:
        worker = stack.workers[slot]
        if not worker.running:
            raise RuntimeError(f"{worker.name} exited:\n{worker.log_tail()}")
        status, body = get_json(f"{worker.url}/fc/ready")
        if status != 200:
            return None
        owned[slot] = partitions_of(body)
    every = sorted(p for partitions in owned.values() for p in partitions)
    return owned if every == list(range(stack.partitions)) else None


def wait_settled(stack: Stack, slots: list[int], timeout: float) -> dict[int, list[int]]:
    """Until `owned_partitions` gives the same complete assignment twice in a row."""
    seen: list[dict[int, list[int]] | None] = [None]

    def settled() -> dict[int, list[int]] | None:
        owned = owned_partitions(stack, slots)
        same = owned is not None and owned == seen[-1]
        seen.append(owned)
        return owned if same else None

    return eventually(settled, timeout, f"the group of {stack.name} settling on {len(slots)} ready workers",
                      pause=0.5)


def crash_lines(stack: Stack, most: int = 8) -> list[str]:
    """Each worker's first log line of each kind of trouble (`TROUBLE_MARKS`)."""
    found: list[str] = []
    for worker in stack.workers.values():
        if not worker.log_path.exists():
            continue
        lines = log_since(worker)
        for mark in TROUBLE_MARKS:
            first = next((line for line in lines if mark in line), None)
            if first is not None:
                found.append(f"{worker.name}: {first[:300]}")
    return found[:most]


def attempt(kind: str, run: Any, *args: Any) -> dict[str, Any]:
    """`run(facts, *args)`, or what is known of it if it failed: the error, the workers' crash lines
    and the data directory kept."""
    facts: dict[str, Any] = {}
    try:
        return {**facts, **run(facts, *args)}
    except (RuntimeError, AssertionError) as exc:
        stack: Stack | None = facts.get("stack")
        progress(f"  {kind}: FAILED: {str(exc).splitlines()[0][:300]}")
        evidence = crash_lines(stack) if stack is not None else []
        for line in evidence:
            progress(f"    {line[:240]}")
        return {**{k: v for k, v in facts.items() if k != "stack"}, "failed": str(exc)[:2000],
                "crash_lines": evidence, "kept": str(stack.base_dir) if stack is not None else None}


def new_stack(bootstrap: str, name: str, workers: int, **env: str) -> Stack:
    stack = Stack(bootstrap=bootstrap, name=name, worker_slots=workers,
                  extra_env={"FC_HOLD_TTL_SECONDS": "3600", **env})
    stack.base_dir = data_dir(name)
    return stack


@contextmanager
def running(stack: Stack) -> Iterator[Stack]:
    """Stop the stack's processes (resuming paused ones first) whatever happens; a run that fails
    keeps its data directory and logs as evidence."""
    try:
        yield stack
    except BaseException:
        progress(f"  logs and data kept in {stack.base_dir}")
        raise
    finally:
        stop_resumed(stack)


def discard(stack: Stack, keep: bool, anomaly: str | None = None) -> str | None:
    """Remove a completed run's data directory unless `keep`, or the run showed an anomaly worth
    its logs; returns the directory kept, if any."""
    if anomaly:
        progress(f"  NOTE {anomaly}: logs and data kept in {stack.base_dir}")
    if keep or anomaly:
        return str(stack.base_dir)
    shutil.rmtree(stack.base_dir, ignore_errors=True)
    return None


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# -- 1. throughput with N workers --------------------------------------------------------------

def throughput_run(facts: dict[str, Any], bootstrap: str, workload: Workload, workers: int,
                   keep: bool) -> dict[str, Any]:
    """One drain of the workload's backlog by `workers` workers of one group, verified. `facts` is
    filled as the run goes, for a failed run's report."""
    stack = facts["stack"] = new_stack(bootstrap, f"scaling-w{workers}", workers)
    facts["workers"] = workers
    slots = list(range(workers))
    with running(stack):
        progress(f"  {workers} worker(s): starting")
        started = time.monotonic()
        for slot in slots:
            stack.start_worker(slot, wait=False)
        owned = facts["owned_before"] = wait_settled(stack, slots, timeout=120.0 + 30 * workers)
        progress(f"  {workers} worker(s): settled in {time.monotonic() - started:.1f}s, partitions "
                 f"{' '.join(str(owned[s]) for s in slots)}; setup of {workload.skus} SKUs with stock")
        for kind in (ProductUpserted, AdjustStock):  # products first: stock of an unknown SKU is refused
            write(bootstrap, stack.namespace, records([e for e in workload.setup if isinstance(e.payload, kind)]))
            stack.wait_drained(timeout=max(120.0, workload.skus / 50))
        pids = [stack.workers[s].pid for s in slots]
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        paused_at = time.monotonic()
        write(bootstrap, stack.namespace, records(workload.reservations))
        paused = time.monotonic() - paused_at
        progress(f"  {workers} worker(s): wrote {workload.events} ReserveStock in {paused:.1f}s while paused")
        if paused > PAUSE_WARNING_SECONDS:
            progress(f"  {workers} worker(s): WARNING: paused {paused:.1f}s, near the broker's session timeout; "
                     "the group may rebalance on resume")
        cpu_before = sum(cpu_seconds(pid) for pid in pids)
        machine_before = machine_busy_seconds()
        resumed_at = time.monotonic()
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
        drain = time_drain(bootstrap, stack.app_id, stack.topic(INPUT), workload.setup_commands, pids[0],
                           lambda: all(stack.workers[s].running for s in slots),
                           timeout=max(300.0, workload.events / 50), label=f"{workers} worker(s)")
        cpu_all = sum(cpu_seconds(pid) for pid in pids) - cpu_before
        machine_all = machine_busy_seconds() - machine_before
        elapsed = time.monotonic() - resumed_at
        busy, machine_busy = cpu_all / elapsed, machine_all / elapsed
        owned_after = owned_partitions(stack, slots)
    checked = verify(bootstrap, stack.topic(topics.INVENTORY_RESERVATIONS.name), workload, f"{workers} worker(s)")
    del facts["stack"]
    result = {
        **facts, **drain.as_dict(), "paused_seconds": paused,
        "cpu_ms_per_event_all_workers": 1000 * cpu_all / workload.events, "cores_busy": busy,
        "machine_cores_busy": machine_busy,
        "owned_after": owned_after, "verified": checked,
    }
    # time_drain takes CPU from one process; with several workers that is one worker's share only.
    result["cpu_ms_per_event_worker_0"] = result.pop("cpu_ms_per_event")
    progress(f"  {workers} worker(s): {drain.events_per_second:.0f} reservations/s, "
             f"{result['cpu_ms_per_event_all_workers']:.2f} CPU ms per reservation, {busy:.2f} cores busy (all workers), "
             f"{machine_busy:.2f} of {os.cpu_count()} (whole machine)")
    anomalies = []
    if not checked["exactly_once"]:
        anomalies.append("not exactly once")
    if owned_after != owned:
        anomalies.append(f"the assignment changed during the drain: {owned} -> {owned_after}")
    result["kept"] = discard(stack, keep, f"{workers} worker(s): {'; '.join(anomalies)}" if anomalies else None)
    return result


# -- 2. takeover: a full restore and a tail restore --------------------------------------------

def sku_of(index: int) -> str:
    return f"SKU-{index:06d}"


def state_of(index: int) -> StockLevel:
    """The state written for key `index`: an on_hand that differs between neighbours, and one
    remembered adjustment, as a SKU has after its opening stock."""
    return StockLevel(tenant=TENANT, sku=sku_of(index), on_hand=1 + (index * 7919) % 10_000,
                      recent_adjustments={f"opening-{index}": AdjustmentOutcome(applied=True)})


def fill_changelog(bootstrap: str, stack: Stack, keys: int) -> tuple[str, int]:
    """Create the stack's topics and the inventory changelog, write `keys` states to it as the
    runtime's checkpoint does (key: the store's data prefix + the table key); returns the
    changelog's name and the average value size."""
    changelog = changelog_topic(stack.app_id, TABLE)
    settings = Settings(external_bootstrap=bootstrap, topic_partitions=stack.partitions,
                        topic_namespace=stack.namespace, app_id=stack.app_id)
    prepare_cluster(settings, changelogs=[changelog])
    client = producer(bootstrap)
    size = 0
    for index in range(keys):
        value = state_of(index).model_dump_json().encode()
        size += len(value)
        key = topics.sku_key(TENANT, sku_of(index))
        # The changelog carries the store key (DATA + key) in the partition of the table key.
        produce_all(client, changelog, DATA + key, value, partition=partition_for(key, stack.partitions))
    if client.flush(120) != 0:
        raise RuntimeError(f"the {keys} states were not written to {changelog} within 120s")
    return changelog, round(size / max(1, keys))


def keys_by_partition(keys: int, partitions: int) -> dict[int, list[int]]:
    by_partition: dict[int, list[int]] = {p: [] for p in range(partitions)}
    for index in range(keys):
        by_partition[partition_for(topics.sku_key(TENANT, sku_of(index)), partitions)].append(index)
    if not all(by_partition.values()):
        raise SystemExit(f"{keys} keys leave a partition of the table empty; give more --keys")
    return by_partition


def read_state(worker: Process, index: int) -> dict[str, Any] | None:
    """Key `index` of the inventory table as `worker` serves it itself, or None (not 200)."""
    key = urllib.parse.quote(topics.sku_key(TENANT, sku_of(index)).decode(), safe="")
    status, body = get_json(f"{worker.url}/state/{TABLE}?key={key}", timeout=2.0)
    return body if status == 200 and isinstance(body, dict) else None


def serves(worker: Process, index: int, adjustment: str | None = None) -> bool:
    """Whether `worker` answers key `index` with the written on_hand (and, given, remembers
    `adjustment`, a tail change)."""
    body = read_state(worker, index)
    return (body is not None and body.get("on_hand") == state_of(index).on_hand
            and (adjustment is None or adjustment in body.get("recent_adjustments", {})))


def write_tail(bootstrap: str, stack: Stack, indexes: list[int]) -> dict[int, str]:
    """One AdjustStock per key through the workers, waited for; returns key index -> adjustment id.
    The SKUs are not in the catalog, so each is refused and the refusal remembered: the key's
    state changes (one changelog record), its on_hand does not."""
    now = datetime.now(UTC)
    adjustments = {index: uuid.uuid4() for index in indexes}
    write(bootstrap, stack.namespace, records([
        Envelope.new(TENANT, AdjustStock(adjustment_id=adjustment, sku=sku_of(index), delta=1,
                                         reason="bench tail"), occurred_at=now)
        for index, adjustment in adjustments.items()]))
    stack.wait_drained(timeout=max(120.0, len(indexes) / 50))
    return {index: str(adjustment) for index, adjustment in adjustments.items()}


def log_size(worker: Process) -> int:
    return worker.log_path.stat().st_size if worker.log_path.exists() else 0


def log_since(worker: Process, offset: int = 0) -> list[str]:
    """The lines the worker logged from byte `offset` of its log on."""
    with open(worker.log_path, "rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace").splitlines()


def restores(lines: list[str]) -> dict[str, Any]:
    """The restores these log lines report (`restored N changelog records of P partitions in S s`),
    summed: records, partitions, seconds, and how many restores. No such line: nothing was restored
    (the runtime logs only restores that read something)."""
    found = [RESTORED.search(line) for line in lines]
    matches = [m for m in found if m is not None]
    return {"records": sum(int(m.group(1)) for m in matches), "partitions": sum(int(m.group(2)) for m in matches),
            "seconds": sum(float(m.group(3)) for m in matches), "restores": len(matches)}


def stores_held(stack: Stack, slot: int, partitions: list[int]) -> list[int]:
    """Which of these partitions of the inventory table have a store in the worker's data directory
    (the worker held them before: a revoke or a stop keeps the store)."""
    base = stack.base_dir / f"worker-{slot}" / stack.app_id / TABLE
    return [p for p in partitions if (base / str(p)).is_dir()]


def time_takeover(stopped: Process, taker: Process, samples: dict[int, int], kill: bool,
                  timeout: float) -> tuple[dict[int, float], float]:
    """Stop `stopped` and poll `taker` until it serves the sample key of each moved partition itself.

    Returns the seconds from the signal until the taker served each partition, and until the
    stopped process exited. A partition counts as served once the taker's `/fc/ready` answers 200
    listing it and the key reads right from the taker (a worker answers 421 for keys of partitions
    it does not serve, so a read is never answered by the other worker).
    """
    assert stopped.popen is not None
    pending = dict(samples)
    served: dict[int, float] = {}
    exited: float | None = None
    signalled = time.monotonic()
    stopped.popen.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
    while pending:
        poll = time.monotonic()
        if exited is None and stopped.popen.poll() is not None:
            exited = poll - signalled
        if not taker.running:
            raise RuntimeError(f"{taker.name} exited during the takeover:\n{taker.log_tail()}")
        if poll - signalled > timeout:
            raise RuntimeError(f"{taker.name} did not serve partitions {sorted(pending)} within {timeout:.0f}s:\n"
                               f"{taker.log_tail()}")
        status, ready = get_json(f"{taker.url}/fc/ready", timeout=2.0)
        if status == 200:
            for partition in set(pending) & set(partitions_of(ready)):
                if serves(taker, pending[partition]):
                    served[partition] = time.monotonic() - signalled
                    del pending[partition]
        time.sleep(max(0.0, POLL_SECONDS - (time.monotonic() - poll)))
    if exited is None:
        stopped.popen.wait(timeout=60)
        exited = time.monotonic() - signalled
    return served, exited


def one_takeover(stack: Stack, case: str, stopped_slot: int, taker_slot: int, owned: dict[int, list[int]],
                 by_partition: dict[int, list[int]], tail: dict[int, str], kill: bool, keys: int,
                 rng: random.Random) -> dict[str, Any]:
    """Stop the worker in `stopped_slot`, time the worker in `taker_slot` taking its partitions,
    and check the moved keys on the taker afterwards."""
    stopped, taker = stack.workers[stopped_slot], stack.workers[taker_slot]
    moved = owned[stopped_slot]
    held_before = stores_held(stack, taker_slot, moved)
    samples = {p: by_partition[p][0] for p in moved}
    at = log_size(taker)
    served_at, exited_at = time_takeover(stopped, taker, samples, kill, timeout=120.0 + keys / 500)
    takeover = max(served_at.values())
    restored = restores(log_since(taker, at))
    pool = [i for p in moved for i in by_partition[p]]
    checked = rng.sample(pool, min(CHECKED_KEYS, len(pool)))
    wrong = [i for i in checked if not serves(taker, i)]
    changed = {i: a for i, a in tail.items()
               if partition_for(topics.sku_key(TENANT, sku_of(i)), stack.partitions) in moved}
    tail_wrong = [i for i, adjustment in changed.items() if not serves(taker, i, adjustment)]
    result = {
        "case": case, "moved_partitions": moved, "taker_held_before": held_before,
        "signal_to_exit_seconds": exited_at, "takeover_seconds": takeover,
        "takeover_from_exit_seconds": takeover - exited_at, "served_after_signal_by_partition": served_at,
        "restored_records": restored["records"], "restored_partitions": restored["partitions"],
        "restore_seconds": restored["seconds"], "restores": restored["restores"],
        "checked_keys": len(checked), "wrong_after_takeover": len(wrong),
        "tail_keys_checked": len(changed), "tail_keys_wrong": len(tail_wrong),
    }
    progress(f"  {case}: {taker.name} served every partition of {stopped.name} ({moved}; it held "
             f"{len(held_before)} of them before) {takeover:.2f}s after the signal ({takeover - exited_at:+.2f}s "
             f"from the exit); restored {restored['records']} records in {restored['seconds']:.2f}s; "
             f"{len(checked) - len(wrong)}/{len(checked)} keys and {len(changed) - len(tail_wrong)}/{len(changed)} "
             "changed keys right")
    return result


def takeover_run(facts: dict[str, Any], bootstrap: str, keys: int, tail_keys: int, kill: bool, keep: bool,
                 seed: int) -> dict[str, Any]:
    """Fill the changelog, start A, then B; stop A (B restores in full), restart A on its data, stop
    B (A restores the tail). `facts` is filled as the run goes, for a failed run's report."""
    stack = facts["stack"] = new_stack(bootstrap, "scaling-takeover", 2)
    facts.update(kill=kill, keys=keys, tail_keys=tail_keys)
    by_partition = keys_by_partition(keys, stack.partitions)
    rng = random.Random(seed)
    tail_pool = rng.sample(range(keys), min(keys, 2 * tail_keys))
    with running(stack):
        changelog, value_bytes = fill_changelog(bootstrap, stack, keys)
        progress(f"  takeover: wrote {keys} states ({value_bytes} bytes each) to {changelog}; starting A")
        started = time.monotonic()
        a = stack.start_worker(0, wait=False)
        wait_settled(stack, [0], timeout=120.0 + keys / 500)
        a_ready = time.monotonic() - started
        a_restore = restores(log_since(a))
        wrong = [p for p, indexes in by_partition.items() if not serves(a, indexes[0])]
        if wrong:
            raise RuntimeError(f"A restored but does not serve the written value for partitions {wrong}")
        progress(f"  takeover: A ready in {a_ready:.1f}s (restored {a_restore['records']} records in "
                 f"{a_restore['seconds']:.2f}s); starting B")
        started = time.monotonic()
        b = stack.start_worker(1, wait=False)
        owned = wait_settled(stack, [0, 1], timeout=120.0 + keys / 500)
        b_ready = time.monotonic() - started
        b_restore = restores(log_since(b))
        progress(f"  takeover: both ready {b_ready:.1f}s after B's start (A serves {owned[0]}, B {owned[1]}; B "
                 f"restored {b_restore['records']} records); {tail_keys} changes through the workers")
        tail = write_tail(bootstrap, stack, tail_pool[:tail_keys])
        full = one_takeover(stack, "full", 0, 1, owned, by_partition, tail, kill, keys, rng)

        tail.update(write_tail(bootstrap, stack, tail_pool[tail_keys:]))
        progress(f"  takeover: {tail_keys} more changes through B; restarting A on its data directory")
        at = log_size(a)
        started = time.monotonic()
        a = stack.start_worker(0, wait=False)
        owned = wait_settled(stack, [0, 1], timeout=120.0 + keys / 500)
        a_again = time.monotonic() - started
        a_again_restore = restores(log_since(a, at))
        progress(f"  takeover: A ready again in {a_again:.1f}s, serving {owned[0]} (restored "
                 f"{a_again_restore['records']} records in {a_again_restore['seconds']:.2f}s)")
        tail_only = one_takeover(stack, "tail", 1, 0, owned, by_partition, tail, kill, keys, rng)
    del facts["stack"]
    result = {
        **facts, "value_bytes": value_bytes,
        "a_start_to_ready_seconds": a_ready, "a_restore_records": a_restore["records"],
        "a_restore_seconds": a_restore["seconds"],
        "b_start_to_settled_seconds": b_ready, "b_join_restore_records": b_restore["records"],
        "a_restart_to_ready_seconds": a_again, "a_restart_restore_records": a_again_restore["records"],
        "a_restart_restore_seconds": a_again_restore["seconds"],
        "full": full, "tail": tail_only,
    }
    anomalies = []
    for case in (full, tail_only):
        if case["wrong_after_takeover"] or case["tail_keys_wrong"]:
            anomalies.append(f"{case['case']}: wrong values for {case['wrong_after_takeover']} of "
                             f"{case['checked_keys']} keys and {case['tail_keys_wrong']} of "
                             f"{case['tail_keys_checked']} changed keys")
    if full["taker_held_before"]:
        anomalies.append(f"full: B already had stores of partitions {full['taker_held_before']}")
    if len(tail_only["taker_held_before"]) != len(tail_only["moved_partitions"]):
        anomalies.append(f"tail: A had stores of only {tail_only['taker_held_before']} of "
                         f"{tail_only['moved_partitions']}")
    result["kept"] = discard(stack, keep, f"takeover: {'; '.join(anomalies)}" if anomalies else None)
    return result


# -- both, with medians -------------------------------------------------------------------------

def measure(bootstrap: str, args: argparse.Namespace) -> dict[str, Any]:
    """Every figure of this benchmark on `bootstrap`: `args` as `parser()` gives them.

    A run that fails (a worker crashed, a wait timed out) is recorded with its error and the
    workers' crash lines, and tried again on a fresh stack up to `args.retries` times.
    """
    results: dict[str, Any] = {"events": args.events, "skus": args.skus, "workers": args.workers, "keys": args.keys,
                               "tail_keys": args.tail_keys, "kill": args.kill, "retries": args.retries,
                               "cpus": os.cpu_count(), "throughput": [], "takeover": []}

    def tries(kind: str, run_no: int, run: Any, *run_args: Any) -> None:
        for attempt_no in range(1, args.retries + 2):
            outcome = attempt(kind, run, *run_args)
            results[kind].append({"run": run_no, "attempt": attempt_no, **outcome})
            if "failed" not in outcome:
                return

    for run_no in range(1, args.runs + 1):
        if args.only in (None, "throughput"):
            progress(f"throughput, run {run_no}/{args.runs}: {args.events} reservations over {args.skus} SKUs, "
                     f"workers {args.workers}")
            workload = Workload(args.skus, args.events, seed=run_no)
            for workers in args.workers:
                tries("throughput", run_no, throughput_run, bootstrap, workload, workers, args.keep)
        if args.only in (None, "takeover"):
            progress(f"takeover, run {run_no}/{args.runs}: {args.keys} keys, {args.tail_keys} changed keys per tail")
            tries("takeover", run_no, takeover_run, bootstrap, args.keys, args.tail_keys, args.kill, args.keep, run_no)
    return results


def medians(rows: list[dict[str, Any]], key: str) -> float:
    """The median of a figure over runs, leaving out runs where it is unknown (nan if none)."""
    return median([r[key] for r in rows if r.get(key) is not None])


def failures(attempts: list[dict[str, Any]]) -> str:
    """The failed attempts among these, in a few words ('' if none)."""
    failed = [r for r in attempts if "failed" in r]
    if not failed:
        return ""
    first = failed[0]["failed"].splitlines()[0][:160]
    return f"FAILED {len(failed)} of {len(attempts)} attempts (first: {first}); see the JSON"


def table(results: dict[str, Any], command: str) -> list[str]:
    """Markdown rows of medians: throughput per worker count, then the two takeovers.
    Failed attempts count in their row's note, not in its figures."""
    rows = []
    attempts = results["throughput"]
    throughput = [r for r in attempts if "failed" not in r]
    if attempts:
        runs = len({r["run"] for r in throughput})
        base = {r["run"]: r["events_per_second"] for r in throughput if r["workers"] == 1}
        rows += [f"| workers, 8 partitions (median of {runs} run{'s' if runs != 1 else ''}) | reservations/s "
                 "| / 1 worker | cores busy, all workers | cores busy, whole machine | CPU ms per reservation, all workers "
                 "| exactly once |",
                 "|---|---|---|---|---|---|---|"]
        for workers in results["workers"]:
            mine = [r for r in throughput if r["workers"] == workers]
            crashed = failures([r for r in attempts if r["workers"] == workers])
            ratio = median([r["events_per_second"] / base[r["run"]] for r in mine if r["run"] in base])
            failed = [f"run {r['run']}: {problems(r['verified'])}" for r in mine if not r["verified"]["exactly_once"]]
            rows.append(f"| {workers} | {medians(mine, 'events_per_second'):,.0f} | "
                        f"{'-' if ratio != ratio else f'{ratio:.2f}'} | {medians(mine, 'cores_busy'):.2f} | "
                        f"{medians(mine, 'machine_cores_busy'):.2f} | "
                        f"{medians(mine, 'cpu_ms_per_event_all_workers'):.2f} | "
                        f"{'NOT EXACTLY ONCE (' + '; '.join(failed) + ')' if failed else 'yes' if mine else '-'}"
                        f"{'; ' + crashed if crashed else ''} |")
        more = [w for w in results["workers"] if w > (results["cpus"] or 1)]
        rows += ["", f"{results['events']} reservations over {results['skus']} SKUs per run on {results['cpus']} "
                 "CPUs" + (f": {', '.join(map(str, more))} workers share {results['cpus']} cores, so they cannot "
                           "scale linearly" if more else "") + ". Cores busy: CPU seconds per second from the resume "
                 "to the end of the drain, of the workers and of the whole machine (broker, the drain's poller "
                 "and everything else included): a whole machine near its core count bounds the figure.", ""]
    attempts = results["takeover"]
    takeover = [r for r in attempts if "failed" not in r]
    if attempts:
        runs = len({r["run"] for r in takeover})
        how = "SIGKILL, then the session timeout" if results["kill"] else "SIGTERM"
        rows += [f"| takeover, {results['keys']:,} keys, no standby replicas (median of {runs} "
                 f"run{'s' if runs != 1 else ''}) | moved partitions the taker held before "
                 f"| stopped ({how}) -> taker serves every moved partition | the same from the stopped worker's exit "
                 "| records restored then (restore) | within the 3 s target |",
                 "|---|---|---|---|---|---|"]
        names = {"full": "full restore: B takes A's partitions, never held",
                 "tail": "tail only: A, restarted on its data, takes B's partitions, held before"}
        for case in CASES:
            mine = [r[case] for r in takeover]
            wrong = sum(r["wrong_after_takeover"] + r["tail_keys_wrong"] for r in mine)
            held = ", ".join(sorted({f"{len(r['taker_held_before'])} of {len(r['moved_partitions'])}" for r in mine}))
            seconds = medians(mine, "takeover_seconds")
            within = sum(1 for r in mine if r["takeover_seconds"] <= TARGET_SECONDS)
            crashed = failures(attempts) if case == "full" else ""
            rows.append(f"| {names[case]} | {held or '-'} | {seconds:.2f} s"
                        f"{f' WRONG VALUES: {wrong}' if wrong else ''} | "
                        f"{medians(mine, 'takeover_from_exit_seconds'):+.2f} s | "
                        f"{medians(mine, 'restored_records'):,.0f} ({medians(mine, 'restore_seconds'):.2f} s) | "
                        f"{within} of {len(mine)} runs{'; ' + crashed if crashed else ''} |")
        rows += ["", f"A start -> ready with all {results['keys']:,} keys: "
                 f"{medians(takeover, 'a_start_to_ready_seconds'):.1f} s (restored "
                 f"{medians(takeover, 'a_restore_records'):,.0f} records in "
                 f"{medians(takeover, 'a_restore_seconds'):.2f} s). A restarted on its data directory -> ready: "
                 f"{medians(takeover, 'a_restart_to_ready_seconds'):.1f} s (restored "
                 f"{medians(takeover, 'a_restart_restore_records'):,.0f} records in "
                 f"{medians(takeover, 'a_restart_restore_seconds'):.2f} s). {results['tail_keys']:,} keys changed "
                 "through the workers before each takeover. The taker serves a partition once its /fc/ready lists "
                 "it and a key of it reads the written value; records restored are the taker's `restored ...` log "
                 "lines after the signal. From the exit: negative when the taker served before the stopped "
                 "process had ended (a clean stop leaves the group first, then closes its stores).", ""]
    rows.append(f"Reproduce with: {command}")
    return rows


def trouble_in(results: dict[str, Any]) -> str | None:
    """What went wrong in these results, in a few words, or None: failed attempts, runs whose answers
    were not exactly once, takeovers after which the taker served wrong values."""
    crashed = [r for r in results["throughput"] + results["takeover"] if "failed" in r]
    failed = [r for r in results["throughput"] if "failed" not in r and not r["verified"]["exactly_once"]]
    wrong = [r for r in results["takeover"] if "failed" not in r
             and any(r[c]["wrong_after_takeover"] or r[c]["tail_keys_wrong"] for c in CASES)]
    if not (crashed or failed or wrong):
        return None
    return (f"scaling: {len(crashed)} failed attempts, {len(failed)} runs not exactly once, {len(wrong)} "
            "takeover runs with wrong values")


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    # 100k: one worker drains them in about 5 s, long enough for the 100 ms polls of time_drain.
    parser.add_argument("--events", type=int, default=100_000, help="ReserveStock commands per throughput run")
    parser.add_argument("--skus", type=int, default=10_000)
    parser.add_argument("--workers", type=int_list, default=[1, 2, 4],
                        help="worker counts, comma-separated (default 1,2,4)")
    parser.add_argument("--keys", type=int, default=100_000, help="keys of the inventory table for the takeover")
    parser.add_argument("--tail-keys", type=int, default=5_000,
                        help="keys changed through the workers before each takeover (default 5000)")
    parser.add_argument("--kill", action="store_true", help="SIGKILL the stopped worker instead of SIGTERM")
    parser.add_argument("--only", choices=("throughput", "takeover"), help="measure only one of the two")
    parser.add_argument("--retries", type=int, default=2,
                        help="fresh attempts after a run fails (a worker crashed, a wait timed out); default 2")
    parser.add_argument("--bootstrap", help="an existing cluster (default: a throwaway broker on free ports)")
    parser.add_argument("--keep", action="store_true", help="keep the runs' data directories and logs")
    return parser


def main() -> None:
    args = parser().parse_args()
    given = " ".join(shlex.quote(a) for a in sys.argv[1:])
    command = f".venv/bin/python -m bench.scaling {given}".rstrip()
    DATA_ROOT.mkdir(exist_ok=True)
    started = time.monotonic()
    load_at_start = os.getloadavg()
    with broker(args.bootstrap) as bootstrap:
        results = measure(bootstrap, args)
    results.update(command=command, seconds=time.monotonic() - started, load_average_at_start=load_at_start,
                   load_average_at_end=os.getloadavg())
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"scaling-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    print()
    print("\n".join(table(results, command)))
    print(f"\nraw results: {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}; "
          f"{results['seconds'] / 60:.1f} min; load average at start {load_at_start[0]:.1f}, at end "
          f"{results['load_average_at_end'][0]:.1f} on {results['cpus']} CPUs")
    trouble = trouble_in(results)
    if trouble:
        raise SystemExit(f"[bench] {trouble} (see the table and the JSON)")


if __name__ == "__main__":
    main()
