"""Scaling and recovery of the real system: reservations/s with 1, 2 and 4 workers on 8 partitions,
and how long a partition takeover leaves a worker's keys unreadable, with and without standbys.

    .venv/bin/python -m bench.scaling [--runs 3] [--events 20000] [--skus 2000] [--workers 1,2,4]
        [--keys 100000] [--kill] [--only throughput|takeover] [--bootstrap HOST:PORT] [--keep]

Everything runs against a real broker (a throwaway one on free ports unless --bootstrap) and real
`python -m streams` workers (devtools.stack.Stack, exactly-once as in production), each run on a
fresh stack: own app id, topics and data directory under .data/bench-scaling-*.

Throughput. N workers start in one stack and the driver waits until the group has settled: every
worker's `/fc/ready` answers 200 and their assigned partitions of `inventory.commands` cover all
8 exactly once (twice in a row). The catalog and opening stock of bench/reservations.py's
`Workload` go through the workers, then every worker is paused (SIGSTOP) while the backlog of
ReserveStock is written, and resumed. The rate is the group's committed progress over the
backlog (bench/common.py `time_drain`); CPU ms per reservation is the CPU time of all the
workers together from the resume to the end of the drain, over the whole backlog. Every
reservation must be answered exactly once with the outcome a plain count predicts
(bench/reservations.py `verify`). The machine this was written on has 2 cores: with more
workers than cores the workers share them, and the table says so beside the ratios.

Takeover. A table partition moving to another worker is a restore of that partition's changelog
into the new owner's RocksDB, from the offset its local copy has reached (nothing, without a
standby replica; all but the tail, with one). Filling the `inventory` table through the worker
(about 600 events/s) would take minutes for 100k keys, so the driver writes the states straight
to the table's changelog topic `<app id>-inventory-changelog` (Faust's name for it, created as
the worker creates it, by `connectors.kafka.prepare_cluster`) before any worker starts: one valid
`StockLevel` JSON per key `<tenant>/<sku>`, partitioned with the project's murmur2 (as the
inventory agent's writes and Faust's `table_route` place the key). What this measures, the restore
from the changelog, is exactly what a takeover does; the writes only skip the agent. Then, with
`FC_STANDBY_REPLICAS` 0 or 1:
1. worker A starts on its own and restores all keys (start -> ready is reported for reference,
   with the restore alone from A's log);
2. worker B starts; the driver waits until both are ready with the partitions covered exactly
   once. With a standby, B also replicates A's partitions after it is ready. Faust exposes no
   signal for a standby having caught up, so the driver waits until B's CPU is idle (below
   `IDLE_CPU_SHARE` of a core over `IDLE_WINDOW_SECONDS`; applying a changelog keeps a core
   busy), at least `STANDBY_EXTRA_SECONDS` after B is ready; the restore B does at the takeover
   (from B's log: records between where it starts reading and the changelog's end) shows
   whether the replica had caught up;
3. A is stopped with SIGTERM (a clean leave: the rebalance starts at once), or SIGKILL with
   `--kill` (the group then waits for A's 10 s session timeout), and the driver times from the
   signal until B serves one sample key of every partition A held: B's `/fc/ready` answers 200
   with the partition among its own, and `GET /state/inventory?key=` answers 200 with the written
   value (polled every `POLL_SECONDS`; 503 means recovering). Without the first condition a read
   that B forwards to A, while A still runs its web server, would count. The same is given from
   A's exit: a clean stop leaves the group first and exits a few seconds later, so B can serve
   before it. Afterwards more keys of those partitions are read from B and checked.

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
    produce_all,
    producer,
    progress,
    stop_resumed,
    time_drain,
)
from bench.reservations import TENANT, Workload, problems, records, verify, write
from connectors.kafka import prepare_cluster
from devtools.stack import Process, Stack, eventually
from streams import topics
from streams.models import AdjustmentOutcome, AdjustStock, ProductUpserted, StockLevel
from streams.partitioning import partition_for
from streams.settings import Settings

INPUT = topics.INVENTORY_COMMANDS.name
TABLE = "inventory"
POLL_SECONDS = 0.05
# B has caught up its standby replicas when its CPU stays below this share of one core for this
# long (an idle worker commits every 0.1 s and uses a few per cent; a restore keeps a core busy).
IDLE_CPU_SHARE = 0.25
IDLE_WINDOW_SECONDS = 2.0
STANDBY_EXTRA_SECONDS = 3.0
# Keys of A's partitions read from B after the takeover, beyond the timed samples.
CHECKED_KEYS = 200
LOG_TIME = re.compile(r"^\[?(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})")


# -- shared by both measurements ---------------------------------------------------------------

def get_json(url: str, timeout: float = 5.0) -> tuple[int, Any]:
    """(status, decoded body) of a GET; status 0 when nothing answered (connection refused, timeout)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except (OSError, ValueError):
        return 0, None


def partitions_of(ready: dict[str, Any], topic: str) -> list[int]:
    """The partitions of `topic` in a worker's `/fc/ready` answer ("<topic>:<partition>" each)."""
    return sorted(int(a.rsplit(":", 1)[1]) for a in ready["assigned"] if a.rsplit(":", 1)[0] == topic)


def owned_partitions(stack: Stack, slots: list[int]) -> dict[int, list[int]] | None:
    """slot -> its partitions of the input topic, if every worker is ready and together they cover
    every partition exactly once; None while not (starting, rebalancing, an old assignment)."""
    topic = stack.topic(INPUT)
    owned: dict[int, list[int]] = {}
    for slot in slots:
        worker = stack.workers[slot]
        if not worker.running:
            raise RuntimeError(f"{worker.name} exited:\n{worker.log_tail()}")
        status, body = get_json(f"{worker.url}/fc/ready")
        if status != 200:
            return None
        owned[slot] = partitions_of(body, topic)
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


def assignment_facts(stack: Stack, slots: list[int]) -> dict[str, Any]:
    """Which worker holds the assignor's leader topic (one partition, 0) and which holds partition 0
    of the input topic. streams/eos.py names a transaction `<app id>-p<partition>` whatever the
    topic, so when two workers hold these two, both open a producer `<app id>-p0` and the later one
    fences the other."""
    leader = f"{stack.app_id}-__assignor-__leader"
    facts: dict[str, Any] = {}
    for slot in slots:
        status, ready = get_json(f"{stack.workers[slot].url}/fc/ready")
        if status == 200:
            if 0 in partitions_of(ready, leader):
                facts["assignor_leader_slot"] = slot
            if 0 in partitions_of(ready, stack.topic(INPUT)):
                facts["partition_0_slot"] = slot
    facts["transactional_id_p0_on_two_workers"] = (
        facts.get("assignor_leader_slot", -1) != facts.get("partition_0_slot", -1))
    return facts


def crash_lines(stack: Stack, most: int = 8) -> list[str]:
    """Each worker's first log line naming a fenced producer and its first line saying why a service
    or an agent crashed."""
    found: list[str] = []
    for worker in stack.workers.values():
        if not worker.log_path.exists():
            continue
        lines = [line for line in log_since(worker) if line.startswith("[")]
        for mark in ("ProducerFenced", "Crashed reason="):
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
        facts.update(assignment_facts(stack, slots))
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
        if paused > 8:
            progress(f"  {workers} worker(s): WARNING: paused longer than 8s; the group may rebalance on resume")
        cpu_before = sum(cpu_seconds(pid) for pid in pids)
        resumed_at = time.monotonic()
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
        drain = time_drain(bootstrap, stack.app_id, stack.topic(INPUT), workload.setup_commands, pids[0],
                           lambda: all(stack.workers[s].running for s in slots),
                           timeout=max(300.0, workload.events / 50), label=f"{workers} worker(s)")
        cpu_all = sum(cpu_seconds(pid) for pid in pids) - cpu_before
        busy = cpu_all / (time.monotonic() - resumed_at)
        owned_after = owned_partitions(stack, slots)
    checked = verify(bootstrap, stack.topic(topics.INVENTORY_RESERVATIONS.name), workload, f"{workers} worker(s)")
    del facts["stack"]
    result = {
        **facts, **drain.as_dict(), "paused_seconds": paused,
        "cpu_ms_per_event_all_workers": 1000 * cpu_all / workload.events, "cores_busy": busy,
        "owned_after": owned_after, "verified": checked,
    }
    # time_drain takes CPU from one process; with several workers that is one worker's share only.
    result["cpu_ms_per_event_worker_0"] = result.pop("cpu_ms_per_event")
    progress(f"  {workers} worker(s): {drain.events_per_second:.0f} reservations/s, "
             f"{result['cpu_ms_per_event_all_workers']:.2f} CPU ms per reservation, {busy:.2f} cores busy (all workers)")
    anomalies = []
    if not checked["exactly_once"]:
        anomalies.append("not exactly once")
    if owned_after != owned:
        anomalies.append(f"the assignment changed during the drain: {owned} -> {owned_after}")
    result["kept"] = discard(stack, keep, f"{workers} worker(s): {'; '.join(anomalies)}" if anomalies else None)
    return result


# -- 2. takeover with and without standbys -----------------------------------------------------

def sku_of(index: int) -> str:
    return f"SKU-{index:06d}"


def state_of(index: int) -> StockLevel:
    """The state written for key `index`: an on_hand that differs between neighbours, and one
    remembered adjustment, as a SKU has after its opening stock."""
    return StockLevel(tenant=TENANT, sku=sku_of(index), on_hand=1 + (index * 7919) % 10_000,
                      recent_adjustments={f"opening-{index}": AdjustmentOutcome(applied=True)})


def fill_changelog(bootstrap: str, stack: Stack, keys: int) -> tuple[str, int]:
    """Create the stack's topics and the inventory changelog, write `keys` states to it; returns the
    changelog's name and the average value size."""
    changelog = f"{stack.app_id}-{TABLE}-changelog"
    settings = Settings(external_bootstrap=bootstrap, topic_partitions=stack.partitions,
                        topic_namespace=stack.namespace, app_id=stack.app_id)
    prepare_cluster(settings, changelogs=[changelog])
    client = producer(bootstrap)
    size = 0
    for index in range(keys):
        value = state_of(index).model_dump_json().encode()
        size += len(value)
        produce_all(client, changelog, topics.sku_key(TENANT, sku_of(index)), value)
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


def serves(worker: Process, index: int) -> bool:
    """Whether `worker` answers key `index` of the inventory table with 200 and the written value."""
    key = urllib.parse.quote(topics.sku_key(TENANT, sku_of(index)).decode(), safe="")
    status, body = get_json(f"{worker.url}/state/{TABLE}?key={key}", timeout=2.0)
    return status == 200 and body.get("on_hand") == state_of(index).on_hand


def log_since(worker: Process, offset: int = 0) -> list[str]:
    """The lines the worker logged from byte `offset` of its log on."""
    with open(worker.log_path, "rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace").splitlines()


def log_times(lines: list[str], message: str) -> list[datetime]:
    """Times of the log lines that contain `message`."""
    found = []
    for line in lines:
        match = LOG_TIME.match(line)
        if match and message in line:
            found.append(datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f"))
    return found


def between(lines: list[str], first: str, then: str) -> float | None:
    """Seconds from the last log line with `first` to the first line with `then` after it."""
    firsts = log_times(lines, first)
    thens = [t for t in log_times(lines, then) if firsts and t >= firsts[-1]]
    return (thens[0] - firsts[-1]).total_seconds() if thens else None


def restore_seconds(lines: list[str]) -> float | None:
    """The last restore from the changelogs in these log lines, start to end."""
    return between(lines, "Restoring state from changelog topics", "Done reading from changelog topics")


def restored_to_ready_seconds(lines: list[str]) -> float | None:
    """From the end of the last restore to the worker being ready (seeking its streams, starting its fetcher)."""
    return between(lines, "Done reading from changelog topics", "Worker ready")


def wait_idle(worker: Process, timeout: float) -> float:
    """Until the worker's CPU share over IDLE_WINDOW_SECONDS is below IDLE_CPU_SHARE; returns the wait."""
    started = time.monotonic()
    samples: list[tuple[float, float]] = []
    while True:
        if not worker.running:
            raise RuntimeError(f"{worker.name} exited:\n{worker.log_tail()}")
        now = time.monotonic()
        samples.append((now, cpu_seconds(worker.pid)))
        window = [s for s in samples if s[0] >= now - IDLE_WINDOW_SECONDS - 1e-6]
        if now - started >= IDLE_WINDOW_SECONDS and window[-1][0] > window[0][0]:
            share = (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0])
            if share < IDLE_CPU_SHARE:
                return now - started
        if now - started > timeout:
            raise RuntimeError(f"{worker.name} was still busy after {timeout:.0f}s")
        time.sleep(0.25)


def takeover_run(facts: dict[str, Any], bootstrap: str, keys: int, standbys: int, kill: bool, keep: bool,
                 seed: int) -> dict[str, Any]:
    """Fill the changelog, start A, then B, stop A and time until B serves every partition A held.
    `facts` is filled as the run goes, for a failed run's report."""
    label = f"standbys={standbys}{' kill' if kill else ''}"
    stack = facts["stack"] = new_stack(bootstrap, f"scaling-takeover-s{standbys}", 2,
                                       FC_STANDBY_REPLICAS=str(standbys))
    facts.update(standbys=standbys, kill=kill, keys=keys)
    by_partition = keys_by_partition(keys, stack.partitions)
    with running(stack):
        changelog, value_bytes = fill_changelog(bootstrap, stack, keys)
        progress(f"  {label}: wrote {keys} states ({value_bytes} bytes each) to {changelog}; starting A")
        started = time.monotonic()
        a = stack.start_worker(0, wait=False)
        wait_settled(stack, [0], timeout=120.0 + keys / 500)
        a_ready = time.monotonic() - started
        a_log = log_since(a)
        a_restore, a_restored_to_ready = restore_seconds(a_log), restored_to_ready_seconds(a_log)
        wrong = [p for p, indexes in by_partition.items() if not serves(a, indexes[0])]
        if wrong:
            raise RuntimeError(f"{label}: A restored but does not serve the written value for partitions {wrong}")
        progress(f"  {label}: A ready in {a_ready:.1f}s (restore {a_restore}s); starting B")
        started = time.monotonic()
        b = stack.start_worker(1, wait=False)
        owned = wait_settled(stack, [0, 1], timeout=120.0 + keys / 500)
        b_ready = time.monotonic() - started
        facts.update(assignment_facts(stack, [0, 1]))
        b_idle = None
        if standbys:
            time.sleep(STANDBY_EXTRA_SECONDS)
            b_idle = wait_idle(b, timeout=120.0 + keys / 500) + STANDBY_EXTRA_SECONDS
        again = owned_partitions(stack, [0, 1])
        if again != owned:
            raise RuntimeError(f"{label}: the assignment moved while B caught up: {owned} -> {again}")
        held = owned[0]
        samples = {p: by_partition[p][0] for p in held}
        progress(f"  {label}: both ready {b_ready:.1f}s after B's start (A holds {held}, B {owned[1]})"
                 + (f", B idle {b_idle:.1f}s after" if b_idle is not None else "") + "; stopping A")
        # B's changelog partitions of the table: its actives' and, with a standby, A's.
        b_changelog = partitions_of(get_json(f"{b.url}/fc/ready")[1] or {"assigned": []}, changelog)
        b_log_at_stop = b.log_path.stat().st_size  # where the takeover starts in B's log
        served_at, exited_at = time_takeover(stack, a, b, samples, kill, timeout=120.0 + keys / 500)
        takeover = max(served_at.values())  # from the signal to A
        rng = random.Random(seed)
        pool = [i for p in held for i in by_partition[p]]
        checked = rng.sample(pool, min(CHECKED_KEYS, len(pool)))
        wrong_after = [i for i in checked if not serves(b, i)]
        takeover_log = log_since(b, b_log_at_stop)
        b_restore, b_restored_to_ready = restore_seconds(takeover_log), restored_to_ready_seconds(takeover_log)
        restored = takeover_restore_records(takeover_log, changelog, held)
    del facts["stack"]
    result = {
        **facts, "value_bytes": value_bytes,
        "a_start_to_ready_seconds": a_ready, "a_restore_seconds": a_restore,
        "a_restored_to_ready_seconds": a_restored_to_ready,
        "b_start_to_settled_seconds": b_ready, "b_idle_after_seconds": b_idle,
        "a_partitions": held, "b_partitions": owned[1], "b_changelog_partitions_before": b_changelog,
        "a_signal_to_exit_seconds": exited_at,
        "takeover_seconds": takeover, "takeover_from_exit_seconds": takeover - exited_at,
        "served_after_signal_by_partition": served_at,
        "b_takeover_restore_seconds": b_restore, "b_takeover_restore_records": restored,
        "b_takeover_restored_to_ready_seconds": b_restored_to_ready,
        "checked_keys": len(checked), "wrong_after_takeover": len(wrong_after),
    }
    progress(f"  {label}: B served every partition of A {takeover:.2f}s after the signal to A "
             f"({result['takeover_from_exit_seconds']:+.2f}s from A's exit); B restored "
             f"{restored if restored is not None else '?'} records at the takeover; "
             f"{len(checked) - len(wrong_after)}/{len(checked)} further keys right")
    anomalies = []
    if wrong_after:
        anomalies.append(f"B served wrong values for {len(wrong_after)} of {len(checked)} keys")
    if standbys and restored != 0:
        anomalies.append(f"the standby replica was not caught up: B restored {restored} records at the takeover "
                         f"(B's changelog partitions before it: {b_changelog})")
    result["kept"] = discard(stack, keep, f"{label}: {'; '.join(anomalies)}" if anomalies else None)
    return result


def time_takeover(stack: Stack, a: Process, b: Process, samples: dict[int, int], kill: bool,
                  timeout: float) -> tuple[dict[int, float], float]:
    """Stop A and poll B until it serves the sample key of each of A's partitions itself.

    Returns the seconds from the signal to A until B served each partition, and until A's process
    exited. A partition counts as served once B's `/fc/ready` answers 200 listing it among B's own
    and the key reads right: a read B forwards to A while A still runs its web server would answer
    right too, but from A.
    """
    assert a.popen is not None
    topic = stack.topic(INPUT)
    pending = dict(samples)
    served: dict[int, float] = {}
    exited: float | None = None
    signalled = time.monotonic()
    a.popen.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
    while pending:
        poll = time.monotonic()
        if exited is None and a.popen.poll() is not None:
            exited = poll - signalled
        if not b.running:
            raise RuntimeError(f"B exited during the takeover:\n{b.log_tail()}")
        if poll - signalled > timeout:
            raise RuntimeError(f"B did not serve partitions {sorted(pending)} of A within {timeout:.0f}s:\n"
                               f"{b.log_tail()}")
        status, ready = get_json(f"{b.url}/fc/ready", timeout=2.0)
        if status == 200:
            for partition in set(pending) & set(partitions_of(ready, topic)):
                if serves(b, pending[partition]):
                    served[partition] = time.monotonic() - signalled
                    del pending[partition]
        time.sleep(max(0.0, POLL_SECONDS - (time.monotonic() - poll)))
    if exited is None:
        a.popen.wait(timeout=60)
        exited = time.monotonic() - signalled
    return served, exited


def takeover_restore_records(lines: list[str], changelog: str, partitions: list[int]) -> int | None:
    """Records B read from the changelog partitions of A at the takeover, from the tables Faust logs
    in these lines: 'Reading Starts At - Active' (offset before the first record to read) and
    'Highwater - Active' (offset of the last record), per partition (the last of each)."""
    tables: dict[str, dict[int, int]] = {}
    current: dict[int, int] | None = None
    topic = ""
    for line in lines:
        if "Highwater - Active" in line or "Reading Starts At - Active" in line:
            current = tables["highwater" if "Highwater" in line else "start"] = {}
            continue
        if current is None:
            continue
        if not line.startswith(("|", "+")):
            current = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[1].isdigit() or not cells[2].lstrip("-").isdigit():
            continue
        topic = topic if cells[0] == "\u3003" else cells[0]  # a ditto mark repeats the topic above
        if topic == changelog:
            current[int(cells[1])] = int(cells[2])
    if "highwater" not in tables or "start" not in tables:
        return None
    high, start = tables["highwater"], tables["start"]
    return sum(max(0, high[p] - start.get(p, -1)) for p in partitions if p in high)


# -- both, with medians -------------------------------------------------------------------------

def measure(bootstrap: str, args: argparse.Namespace) -> dict[str, Any]:
    """Every figure of this benchmark on `bootstrap`: `args` as `parser()` gives them.

    A run that fails (a worker crashed, a wait timed out) is recorded with its error and the
    workers' crash lines, and tried again on a fresh stack up to `args.retries` times.
    """
    results: dict[str, Any] = {"events": args.events, "skus": args.skus, "workers": args.workers, "keys": args.keys,
                               "kill": args.kill, "retries": args.retries, "cpus": os.cpu_count(),
                               "throughput": [], "takeover": []}

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
            progress(f"takeover, run {run_no}/{args.runs}: {args.keys} keys")
            for standbys in (0, 1):
                tries("takeover", run_no, takeover_run, bootstrap, args.keys, standbys, args.kill, args.keep, run_no)
    return results


def medians(rows: list[dict[str, Any]], key: str) -> float:
    """The median of a figure over runs, leaving out runs where it is unknown (nan if none)."""
    return median([r[key] for r in rows if r[key] is not None])


def failures(attempts: list[dict[str, Any]]) -> str:
    """The failed attempts among these, in a few words ('' if none)."""
    failed = [r for r in attempts if "failed" in r]
    if not failed:
        return ""
    fenced = sum(1 for r in failed if any("ProducerFenced" in line or "not in transaction" in line
                                          for line in r["crash_lines"]))
    shared = sum(1 for r in failed if r.get("transactional_id_p0_on_two_workers"))
    shared_ok = sum(1 for r in attempts if "failed" not in r and r.get("transactional_id_p0_on_two_workers"))
    notes = [f"{fenced} with a worker crashed on ProducerFenced" if fenced else "",
             f"{shared} with the assignor's leader partition and partition 0 on two workers" if shared else "",
             f"({shared_ok} such assignments did not fail)" if shared and shared_ok else ""]
    return f"FAILED {len(failed)} of {len(attempts)} attempts" + (
        f": {', '.join(n for n in notes if n)}" if any(notes) else "") + "; see the JSON"


def table(results: dict[str, Any], command: str) -> list[str]:
    """Markdown rows of medians: throughput per worker count, then takeover per standby setting.
    Failed attempts count in their row's note, not in its figures."""
    rows = []
    attempts = results["throughput"]
    throughput = [r for r in attempts if "failed" not in r]
    if attempts:
        runs = len({r["run"] for r in throughput})
        base = {r["run"]: r["events_per_second"] for r in throughput if r["workers"] == 1}
        rows += [f"| workers, 8 partitions (median of {runs} run{'s' if runs != 1 else ''}) | reservations/s "
                 "| / 1 worker | cores busy, all workers | CPU ms per reservation, all workers | exactly once |",
                 "|---|---|---|---|---|---|"]
        for workers in results["workers"]:
            mine = [r for r in throughput if r["workers"] == workers]
            crashed = failures([r for r in attempts if r["workers"] == workers])
            ratio = median([r["events_per_second"] / base[r["run"]] for r in mine if r["run"] in base])
            failed = [f"run {r['run']}: {problems(r['verified'])}" for r in mine if not r["verified"]["exactly_once"]]
            rows.append(f"| {workers} | {medians(mine, 'events_per_second'):,.0f} | "
                        f"{'-' if ratio != ratio else f'{ratio:.2f}'} | {medians(mine, 'cores_busy'):.2f} | "
                        f"{medians(mine, 'cpu_ms_per_event_all_workers'):.2f} | "
                        f"{'NOT EXACTLY ONCE (' + '; '.join(failed) + ')' if failed else 'yes'}"
                        f"{'; ' + crashed if crashed else ''} |")
        more = [w for w in results["workers"] if w > (results["cpus"] or 1)]
        rows += ["", f"{results['events']} reservations over {results['skus']} SKUs per run on {results['cpus']} "
                 "CPUs" + (f": {', '.join(map(str, more))} workers share {results['cpus']} cores, so they cannot "
                           "scale linearly" if more else "") + ". Cores busy: the workers' CPU seconds per second "
                 "from the resume to the end of the drain.", ""]
    attempts = results["takeover"]
    takeover = [r for r in attempts if "failed" not in r]
    if attempts:
        runs = len({r["run"] for r in takeover})
        how = "SIGKILL, so after the 10 s session timeout" if results["kill"] else "SIGTERM"
        rows += [f"| standby replicas, {results['keys']:,} keys (median of {runs} run{'s' if runs != 1 else ''}) "
                 f"| A stopped ({how}) -> B serves every partition A held | the same from A's exit "
                 "| records B restored then (restore; restore end -> ready) | A start -> ready (restore alone) |",
                 "|---|---|---|---|---|"]
        for standbys in (0, 1):
            mine = [r for r in takeover if r["standbys"] == standbys]
            crashed = failures([r for r in attempts if r["standbys"] == standbys])
            if not mine and not crashed:
                continue
            wrong = sum(r["wrong_after_takeover"] for r in mine)
            behind = sum(1 for r in mine if standbys and r["b_takeover_restore_records"] != 0)
            b_restore = medians(mine, "b_takeover_restore_seconds")
            restore = "none" if b_restore != b_restore else (
                f"{b_restore:.1f} s; {medians(mine, 'b_takeover_restored_to_ready_seconds'):.1f} s")
            rows.append(f"| {standbys} | {medians(mine, 'takeover_seconds'):.2f} s"
                        f"{f' WRONG VALUES: {wrong}' if wrong else ''} | "
                        f"{medians(mine, 'takeover_from_exit_seconds'):+.2f} s | "
                        f"{medians(mine, 'b_takeover_restore_records'):,.0f} ({restore})"
                        f"{f'; STANDBY BEHIND in {behind} of {len(mine)} runs' if behind else ''} | "
                        f"{medians(mine, 'a_start_to_ready_seconds'):.1f} s ({medians(mine, 'a_restore_seconds'):.1f} s)"
                        f"{'; ' + crashed if crashed else ''} |")
        rows += ["", "B serves a partition once its /fc/ready lists it and a key of it reads the written value. "
                 "From A's exit: negative when B served before A's process had ended (a clean stop leaves the "
                 "group first, then closes its stores and producers).", ""]
    rows.append(f"Reproduce with: {command}")
    return rows


def trouble_in(results: dict[str, Any]) -> str | None:
    """What went wrong in these results, in a few words, or None: failed attempts, runs whose answers
    were not exactly once, takeovers after which B served wrong values."""
    crashed = [r for r in results["throughput"] + results["takeover"] if "failed" in r]
    failed = [r for r in results["throughput"] if "failed" not in r and not r["verified"]["exactly_once"]]
    wrong = [r for r in results["takeover"] if r.get("wrong_after_takeover")]
    if not (crashed or failed or wrong):
        return None
    return (f"scaling: {len(crashed)} failed attempts, {len(failed)} runs not exactly once, {len(wrong)} "
            "takeovers with wrong values")


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--events", type=int, default=20_000, help="ReserveStock commands per throughput run")
    parser.add_argument("--skus", type=int, default=2_000)
    parser.add_argument("--workers", type=int_list, default=[1, 2, 4],
                        help="worker counts, comma-separated (default 1,2,4)")
    parser.add_argument("--keys", type=int, default=100_000, help="keys of the inventory table for the takeover")
    parser.add_argument("--kill", action="store_true", help="SIGKILL worker A instead of SIGTERM")
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
