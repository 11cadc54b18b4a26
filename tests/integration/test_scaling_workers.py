"""Scaling out and in under load: two workers on their own loopback addresses, a third joining and
the first leaving in the middle of a burst of orders. Every order is answered once, and the gateway,
which knows no worker address beforehand, routes each read to the worker owning the key."""

from __future__ import annotations

import asyncio
import json
import urllib.request
import pytest

from tests.conftest import Api
from tests.harness import WORKER_READ_HEADERS, Stack, eventually_async
from tests.integration.orders_api import place
from tests.integration.settlement import burst, each_settled_once, levels

ORDERS = 150


# Two workers on addresses of their own; a third slot for the one that joins.
STACK_WORKERS = [{"host": "127.0.0.2"}, {"host": "127.0.0.3"}]


@pytest.fixture
def api(seeded_api: Api) -> Api:
    return seeded_api


def served_partitions(url: str) -> set[int]:
    with urllib.request.urlopen(urllib.request.Request(f"{url}/fc/assignment", headers=WORKER_READ_HEADERS),
                                timeout=5) as response:
        return set(json.load(response)["tables"]["orders"])


async def test_a_worker_joining_and_one_leaving_mid_burst_answer_every_order_once(api: Api, stack: Stack) -> None:
    # Given two workers on 127.0.0.2 and 127.0.0.3 sharing the partitions
    assert served_partitions(stack.workers[0].url) and served_partitions(stack.workers[1].url)
    opening = await levels(stack, api)
    wanted = burst(29, ORDERS)
    accepted: list[tuple[str, str]] = []
    gate = asyncio.Semaphore(8)

    async def order(n: int) -> None:
        async with gate:
            accepted.append((await place(api, f"scale-{n}", wanted[n]), f"scale-{n}"))

    async def thirds_accepted(thirds: int) -> bool:
        return len(accepted) >= thirds * ORDERS // 3

    # When a third worker joins on 127.0.0.4 a third of the way into a burst of orders, and the
    # first one stops two thirds of the way in
    placing = asyncio.ensure_future(asyncio.gather(*(order(n) for n in range(ORDERS))))
    await eventually_async(lambda: thirds_accepted(1), 60, "a third of the orders accepted", pause=0.02)
    await asyncio.to_thread(stack.start_worker, 2, True, "127.0.0.4")
    await eventually_async(lambda: thirds_accepted(2), 60, "two thirds of the orders accepted", pause=0.02)
    await asyncio.to_thread(stack.workers[0].stop)
    await placing
    await asyncio.to_thread(stack.wait_ready)

    # Then every order settles once (read through the gateway from whichever worker owns it) ...
    await each_settled_once(api, stack, accepted, opening)
    # ... and the two remaining workers share every partition between them
    second, third = served_partitions(stack.workers[1].url), served_partitions(stack.workers[2].url)
    assert second and third and not second & third
    assert second | third == set(range(stack.partitions))
