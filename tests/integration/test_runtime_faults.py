"""The runtime's abort path, run for real: with one record produced in 50 and one commit in 10
made to fail at random (streams/runtime/faults.py), a burst of orders still settles exactly once, and the
worker's log shows that transactions were aborted and their events processed again."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import Api
from tests.harness import Stack
from tests.integration.orders_api import place
from tests.integration.settlement import burst, each_settled_once, levels

STACK_ENV = {"FC_INJECT_FAULTS": "produce=0.02,commit=0.1"}
ORDERS = 60


@pytest.fixture
def api(seeded_api: Api) -> Api:
    return seeded_api


async def test_produce_and_commit_failures_mid_outputs_leave_nothing_pending_or_held(api: Api, stack: Stack) -> None:
    # Given a worker whose produce and commit fail now and then, in the middle of events' outputs
    opening = await levels(stack, api)
    wanted = burst(23, ORDERS)
    gate = asyncio.Semaphore(8)

    async def order(n: int) -> tuple[str, str]:
        async with gate:
            return await place(api, f"faults-{n}", wanted[n]), f"faults-{n}"

    # When a burst of orders comes in
    accepted = list(await asyncio.gather(*(order(n) for n in range(ORDERS))))

    # Then every order settles once, and only the reserved ones hold units
    await each_settled_once(api, stack, accepted, opening)
    # And both kinds of failure did happen and were recovered from by aborting
    log = stack.workers[0].log_path.read_text()
    assert "injected produce failure" in log and "injected commit failure" in log
    assert log.count("aborting the transaction and processing again") >= 2
