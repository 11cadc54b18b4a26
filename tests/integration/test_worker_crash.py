"""Exactly-once under a crash: a worker SIGKILLed in the middle of a burst of orders, inside open
transactions, and started again leaves no unit reserved twice and no accepted order lost or
doubled; so does a worker that stopped and finds a backlog of orders when it starts again, also
when the records below its committed offsets were deleted meanwhile."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from confluent_kafka import Consumer, IsolationLevel, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from tests.conftest import Api, read_topic
from tests.harness import Stack, eventually_async
from tests.integration.conftest import seed_catalog_and_stock
from tests.integration.orders_api import VENDOR, place, settled, stock
from tests.integration import settlement
from tests.integration.settlement import SKUS, each_settled_once, levels

ORDERS = 150
# The crash test's clients place orders until the third kill, at most this many.
CLIENTS = 8
MAX_ORDERS = 600
# What the deleted-records test's 40 orders (about 60 units) find available of each SKU.
AVAILABLE_PER_SKU = 10
# What the backlog test's 150 orders (about 110 units of each SKU) find available of each SKU.
BACKLOG_AVAILABLE_PER_SKU = 60
# How long a worker caught inside an open transaction is stopped before the kill: far longer than a
# commit already on its way takes to be written, far shorter than the transaction timeout (10 s).
FREEZE_SECONDS = 2.0


@pytest.fixture
async def api(stack: Stack, http) -> Api:  # type: ignore[no-untyped-def]
    assert stack.gateway is not None
    api = Api(stack.gateway.url, http)
    await seed_catalog_and_stock(stack, api)
    return api


def burst(seed: int) -> list[dict[str, int]]:
    return settlement.burst(seed, ORDERS)


async def test_repeated_sigkills_inside_open_transactions_lose_and_double_nothing(api: Api, stack: Stack) -> None:
    # Given stock for three SKUs and 8 clients placing orders one after the other
    opening = await levels(stack, api)
    wanted = settlement.burst(13, MAX_ORDERS)
    outputs = [stack.topic(name) for name in ("orders.events", "inventory.reservations", "inventory.commands")]
    aborted_before = uncommitted_records(stack, outputs)
    accepted: list[tuple[str, str]] = []
    kills_done = asyncio.Event()

    async def client(first: int) -> None:
        # Each client waits for its order to settle before the next: the worker stays busy until
        # the last kill, however long its restarts take.
        for n in range(first, MAX_ORDERS, CLIENTS):
            if kills_done.is_set():
                return
            order_id = await place(api, f"kills-{n}", wanted[n])
            accepted.append((order_id, f"kills-{n}"))
            await settled(api, order_id, f"kills-{n}")

    # When the worker is SIGKILLed three times while the orders keep coming, each time while it has
    # records in an open transaction, and started again each time
    placing = asyncio.ensure_future(asyncio.gather(*(client(c) for c in range(CLIENTS))))
    async def more_accepted(than: int) -> bool:
        return len(accepted) >= than

    for _ in range(3):
        # (the restarted worker serves again before the next kill: every client settled an order)
        await eventually_async(lambda seen=len(accepted): more_accepted(seen + CLIENTS), 60,
                               "orders settling after the restart", pause=0.05)
        await eventually_async(lambda: frozen_inside_an_open_transaction(stack, outputs), 120,
                               "the worker frozen while it holds records in an open transaction", pause=0.01)
        stack.workers[0].kill()
        await asyncio.to_thread(stack.start_worker, 0)
    kills_done.set()
    await placing
    await asyncio.to_thread(stack.wait_ready)

    await each_settled_once(api, stack, accepted, opening)
    # And the kills landed inside open transactions: records were written that no committed reader saw
    assert uncommitted_records(stack, outputs) - aborted_before > 0


def open_transaction_has_records(stack: Stack, names: list[str]) -> bool:
    """Whether a partition of the topics holds records past its last stable offset: written in a
    transaction that is still open."""
    admin = AdminClient({"bootstrap.servers": stack.bootstrap})
    wanted = {TopicPartition(name, p): OffsetSpec.latest() for name in names for p in range(stack.partitions)}

    def ends(isolation: IsolationLevel) -> dict[tuple[str, int], int]:
        answers = admin.list_offsets(wanted, isolation_level=isolation)
        return {(tp.topic, tp.partition): future.result().offset for tp, future in answers.items()}

    stable, high = ends(IsolationLevel.READ_COMMITTED), ends(IsolationLevel.READ_UNCOMMITTED)
    return any(high[where] > stable[where] for where in high)


async def frozen_inside_an_open_transaction(stack: Stack, outputs: list[str]) -> bool:
    """Whether the worker, caught with records in an open transaction, is now SIGSTOPped with that
    transaction still open: no commit of it is on its way, so a SIGKILL now lands mid-transaction.

    A transaction seen open may already be committing (its EndTxn sent, the markers not yet
    written); after FREEZE_SECONDS of a stopped worker it would have closed. If it did, the
    worker is let go on and the caller asks again."""
    if not await asyncio.to_thread(open_transaction_has_records, stack, outputs):
        return False
    worker = stack.workers[0]
    os.kill(worker.pid, signal.SIGSTOP)
    await asyncio.sleep(FREEZE_SECONDS)
    if await asyncio.to_thread(open_transaction_has_records, stack, outputs):
        return True
    os.kill(worker.pid, signal.SIGCONT)
    return False


def uncommitted_records(stack: Stack, names: list[str]) -> int:
    """Records of the topics that were written and never committed (aborted, or still open)."""
    return sum(len(read_topic(stack.bootstrap, name, committed_only=False, idle_seconds=1.5))
               - len(read_topic(stack.bootstrap, name, idle_seconds=1.5)) for name in names)


async def test_a_backlog_met_at_restart_is_processed_once(api: Api, stack: Stack) -> None:
    # Given stock for three SKUs (topped up: the crash test before it sells a varying amount), and a
    # worker that stopped
    await available_at(api, BACKLOG_AVAILABLE_PER_SKU)
    opening = await levels(stack, api)
    wanted = burst(11)
    await asyncio.to_thread(stack.workers[0].stop)
    # When a burst of orders is accepted while it is down (with Idempotency-Keys, which the gateway
    # cannot check against the orders table now: it accepts and leaves a conflict to the agent),
    # and it starts again
    accepted = [(await place(api, f"backlog-{n}", lines, key=f"cart-{n}"), f"backlog-{n}")
                for n, lines in enumerate(wanted)]
    log_before = stack.workers[0].log_path.read_text()
    await asyncio.to_thread(stack.start_worker, 0)
    await asyncio.to_thread(stack.wait_ready)

    await each_settled_once(api, stack, accepted, opening)
    # And the restart kept the stores of the clean stop: it restored no changelog record
    restart_log = stack.workers[0].log_path.read_text()[len(log_before):]
    assert "restored 0 changelog records" in restart_log or "restored" not in restart_log


async def test_a_backlog_after_deleted_records_below_the_committed_offsets_is_processed_once(
        api: Api, stack: Stack) -> None:
    # Given a stopped worker whose group has committed offsets on orders.commands past some orders
    for n, lines in enumerate(burst(19)[:10]):
        await settled(api, await place(api, f"before-{n}", lines), f"before-{n}")
    await available_at(api, AVAILABLE_PER_SKU)
    opening = await levels(stack, api)
    await asyncio.to_thread(stack.workers[0].stop)
    topic = stack.topic("orders.commands")
    committed = committed_offsets(stack, topic)
    assert any(offset > 0 for offset in committed.values())
    # When the records below those offsets are deleted (retention, DeleteRecords) and orders come in
    admin = AdminClient({"bootstrap.servers": stack.bootstrap})
    for future in admin.delete_records([TopicPartition(topic, p, offset)
                                        for p, offset in committed.items() if offset > 0]).values():
        future.result()
    wanted = burst(17)[:40]
    accepted = [(await place(api, f"deleted-{n}", lines), f"deleted-{n}") for n, lines in enumerate(wanted)]
    await asyncio.to_thread(stack.start_worker, 0)
    await asyncio.to_thread(stack.wait_ready)

    # Then the worker takes up at its committed offsets, and each order settles once
    await each_settled_once(api, stack, accepted, opening)


async def available_at(api: Api, units: int) -> None:
    """Restock each SKU to `units` available (earlier tests of the module hold or sold some), so
    that the next orders meet both outcomes."""
    for sku in SKUS:
        short = units - (await stock(api, sku))["available"]
        if short > 0:
            reply = await api.post(f"/v1/inventory/{sku}/adjustments", VENDOR, {"delta": short, "reason": "restock"})
            assert reply.status == 202, reply.body


def committed_offsets(stack: Stack, topic: str) -> dict[int, int]:
    group = Consumer({"bootstrap.servers": stack.bootstrap, "group.id": stack.app_id})
    try:
        wanted = [TopicPartition(topic, p) for p in range(stack.partitions)]
        return {tp.partition: tp.offset for tp in group.committed(wanted, timeout=10)}
    finally:
        group.close()
