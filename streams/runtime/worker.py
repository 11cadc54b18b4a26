"""A worker process: its agents' processing thread beside the read server, and clean stops.

`python -m streams` runs every agent in the group `FC_APP_ID`; `python -m streams --agents payments`
runs a subset as its own group (`<app id>-payments`), so operators can split payments from
reservations. The processing thread does all Kafka work (loop.py); the event loop of the main
thread serves reads and runs outside calls (Stripe).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable, Sequence

from aiohttp import web

from streams.runtime.agent import Agent
from streams.runtime.faults import Faults
from streams.runtime.loop import StreamThread
from streams.runtime.reads import ReadServer, Watchers, read_credential
from streams.settings import Settings

log = logging.getLogger(__name__)

# SIGTERM: the processing thread commits what is done and leaves the group; past this the process
# exits anyway (the broker may be gone, and the next owner processes the rest again); honcho
# (make run) SIGKILLs what still runs 5 s after Ctrl-C.
STOP_SECONDS = 4.0
# A worker's consumers are named by this and its read address: the gateway finds workers by it
# among the members of the app's consumer groups (gateway/workers.py).
CLIENT_ID_PREFIX = "fc-worker "


def group_id(settings: Settings, names: Sequence[str], all_names: Sequence[str]) -> str:
    return settings.app_id if sorted(names) == sorted(all_names) else f"{settings.app_id}-{'-'.join(sorted(names))}"


async def serve(settings: Settings, agents: list[Agent], group: str,
                on_stop: Callable[[], object] | None = None) -> int:
    """Run until SIGTERM or SIGINT, or until the processing thread dies; the exit status."""
    loop = asyncio.get_running_loop()
    watchers = Watchers()
    faults = Faults(settings.inject_faults)
    if faults.enabled:
        log.warning("fault injection is on (FC_INJECT_FAULTS=%s): for tests only", settings.inject_faults)
    thread = StreamThread(
        bootstrap=settings.bootstrap_servers, group_id=group,
        transactional_id=f"{group}-{settings.worker_id}", client_id=f"{CLIENT_ID_PREFIX}{settings.worker_url}",
        namespace=settings.topic_namespace, partitions=settings.topic_partitions, agents=agents,
        data_dir=settings.worker_data_dir / group, commit_interval=settings.commit_interval_seconds,
        batch_size=settings.commit_batch_size, timer_interval=settings.expiry_scan_interval_seconds,
        transaction_timeout=settings.transaction_timeout_seconds, faults=faults, loop=loop,
        on_committed=lambda changed: loop.call_soon_threadsafe(watchers.notify, changed),
    )
    app = ReadServer(thread, agents, watchers, settings.worker_url, read_credential(settings.jwt_secret)).application()
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.worker_host, settings.worker_port).start()
    log.info("worker %s serving reads at %s", settings.worker_id, settings.worker_url)

    stopped = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    processing = threading.Thread(target=thread.run, name="processing", daemon=True)
    processing.start()
    died = asyncio.ensure_future(_until_dead(processing))
    waiting = asyncio.ensure_future(stopped.wait())
    await asyncio.wait([died, waiting], return_when=asyncio.FIRST_COMPLETED)
    status = 0
    if died.done():
        log.error("the processing thread stopped; exiting so that a supervisor restarts the worker")
        status = 1
    else:
        log.info("stopping: committing what is done and leaving the group")
    thread.stop()
    try:
        await asyncio.wait_for(asyncio.shield(died), STOP_SECONDS)
    except TimeoutError:
        log.warning("the processing thread did not stop within %.0fs; exiting anyway", STOP_SECONDS)
    waiting.cancel()
    await runner.cleanup()
    if on_stop is not None:
        await on_stop()  # type: ignore[misc]
    log.info("stopped (%d commits, %d aborts)", thread.commits, thread.aborts)
    return status


async def _until_dead(thread: threading.Thread) -> None:
    # Polled rather than joined in an executor thread: a processing thread stuck on a broker that
    # is gone must not keep the process from exiting (it is a daemon thread).
    while thread.is_alive():
        await asyncio.sleep(0.1)
