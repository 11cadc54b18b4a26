"""The Faust app of a worker and the web endpoints it serves beside its agents.

`Worker` builds the app (RocksDB tables, exactly-once, partition counts from settings) and hands
agent modules what they bind: topics, tables, the watchers that wake long polls. It serves each
table at `GET /state/<table>?key=<key>[&wait=S&known=<status>]`, routed by Faust to the worker that
owns the key's partition, and `GET /fc/ready` for readiness.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import faust

from streams import eos
from streams.models import Envelope, utc_now
from streams.processing import StateTable, TopicBinder, Watchers
from streams.settings import Settings

log = logging.getLogger(__name__)
State = TypeVar("State")

MAX_LONG_POLL_SECONDS = 30.0
RECHECK_SECONDS = 0.5
# A key with uncommitted writes is answered as of the last commit; the writes show within a commit
# interval (FC_COMMIT_INTERVAL), so a long poll on such a key looks again this often.
COMMIT_RECHECK_SECONDS = 0.05


class StreamsApp(faust.App):
    # What the producers wait before retrying a request the broker refused for now (streams/eos.py);
    # set from `Settings` by `create_faust_app`, the one way this app is built.
    producer_retry_backoff_seconds: float

    def _new_transport(self) -> Any:
        return eos.Transport(self.conf.broker_consumer, self)

    @property
    def in_transaction(self) -> bool:  # type: ignore[override]
        # Faust caches this the first time anything asks, and it is true only once its worker
        # command has started: asked earlier (building the consumer, the producer or a table),
        # it stays false for good, and the app runs with no transactions, plain producers and
        # read_uncommitted consumers while configured for exactly-once. This app only ever runs
        # as a worker.
        return bool(self.conf.processing_guarantee == faust.types.enums.ProcessingGuarantee.EXACTLY_ONCE)


def create_faust_app(settings: Settings) -> faust.App:
    settings.worker_data_dir.mkdir(parents=True, exist_ok=True)
    app = StreamsApp(
        settings.app_id,
        broker=f"kafka://{settings.bootstrap_servers}",
        store="rocksdb://",
        processing_guarantee="exactly_once",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=1,
        table_standby_replicas=settings.standby_replicas,
        datadir=str(settings.worker_data_dir),
        web_host=settings.worker_host,
        web_bind=settings.worker_host,
        web_port=settings.worker_port,
        canonical_url=f"http://{settings.worker_host}:{settings.worker_port}",
        # A SIGKILLed worker's partitions move after this long, not after Faust's default minute.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
        # Topics and changelogs are created beforehand by `connectors.kafka.prepare_cluster`.
        topic_allow_declare=True,
        broker_commit_interval=settings.commit_interval_seconds,
        # Every send of an event belongs to a transaction, and a commit closes and sends the open
        # batches at once, so lingering a whole interval costs no latency and sends each producer's
        # interval as one request per broker instead of one per 5 ms (half the CPU per event,
        # bench/README.md). The few sends outside events (timers) wait up to an interval.
        producer_linger=settings.commit_interval_seconds,
        TableManager=eos.TableManager,
        # Keys and values are bytes everywhere: keys hash identically in every producer and in
        # `table_route`, values are envelopes and states that pydantic (de)serializes.
        key_serializer="raw",
        value_serializer="raw",
    )
    app.producer_retry_backoff_seconds = settings.producer_retry_backoff_seconds
    return app


class Worker:
    def __init__(self, settings: Settings, app: faust.App | None = None) -> None:
        self.settings = settings
        self.app = app or create_faust_app(settings)
        self.binder = TopicBinder(self.app, settings.topic_namespace)
        consumer = self.app.consumer
        self.watchers = Watchers(
            committed_offset=lambda tp: consumer._committed_offset.get(tp),
            assigned=lambda tp: tp in consumer.assignment(),
        )
        self._serve_readiness()
        eos.install_stall_guard(self.app, settings.stall_check_interval_seconds)

    def table(self, name: str) -> faust.Table:
        return self.app.Table(
            name,
            partitions=self.settings.topic_partitions,
            key_type=bytes,
            value_type=bytes,
        )

    def deadlines(self, name: str, states: StateTable[State], due_at: Callable[[State], datetime | None],
                  ask: Callable[[bytes, State], Envelope]) -> Callable[[bytes, State | None], None]:
        """A changelogged table of key -> due time beside `states`, and a timer that asks for each due key.

        Returns the hook that keeps a key's due time in step with its stored state (`on_stored`).
        The timer runs on every worker over the partitions it owns; it only asks (`ask` builds a
        command for the agent, which decides), so a timer that fires twice, or on a worker that
        just lost the partition, changes nothing. Due times live in a table: a restart or a
        rebalance never loses one.
        """
        due_times = self.table(name)

        def track(key: bytes, state: State | None) -> None:
            due = None if state is None else due_at(state)
            if due is not None:
                due_times[key] = due.isoformat().encode()
            elif key in due_times:
                del due_times[key]

        @self.app.timer(interval=self.settings.expiry_scan_interval_seconds, name=f"fire-due-{name}")
        async def fire_due() -> None:
            now = utc_now()
            for key, due in list(due_times.items()):
                state = states.get(key) if datetime.fromisoformat(due.decode()) <= now else None
                if state is not None:
                    command = ask(key, state)
                    log.info("%s: %s is due; asking with %s", name, key.decode(), command.type)
                    await self.binder.send(command)

        return track

    def serve_state(self, table: StateTable[Any], render: Callable[[Any], dict[str, Any]] | None = None) -> None:
        """Serve a table's values by key.

        `wait=S` waits up to S seconds (at most 30) for a missing key to appear or, with
        `known=<status>`, for the value's status to differ from the known one. Values are served as
        of the last commit (see `Watchers`).
        """
        watchers = self.watchers
        to_json = render or (lambda state: state.model_dump(mode="json"))

        async def read_state(web: Any, request: Any) -> Any:
            key = request.query["key"].encode()
            try:
                wait = min(max(float(request.query.get("wait", "0")), 0.0), MAX_LONG_POLL_SECONDS)
            except ValueError:
                return web.json({"error": "wait must be a number of seconds"}, status=400)
            known = request.query.get("known")
            started = time.monotonic()
            while True:
                if not self.serving():
                    # A table being restored would answer "missing" for keys it holds.
                    return web.json({"error": "recovering: retry shortly"}, status=503)
                uncommitted, state = watchers.committed_view(table.name, key)
                if not uncommitted:
                    state = table.get(key)
                elapsed = time.monotonic() - started
                if state is None:
                    remaining = wait - elapsed
                    if remaining <= 0:
                        return web.json({"error": "not found"}, status=404)
                elif known is not None and getattr(state, "status", None) == known and elapsed < wait:
                    remaining = wait - elapsed
                else:
                    return web.json(to_json(state))
                # Woken by the agent's write; the cap also catches changes that arrive by other
                # paths (a restore from the changelog) and a rebalance starting meanwhile.
                await watchers.wait(table.name, key, min(remaining, COMMIT_RECHECK_SECONDS if uncommitted else RECHECK_SECONDS))

        read_state.__name__ = f"read_{table.name.replace('-', '_')}"
        routed = self.app.table_route(table=table.table, query_param="key")(read_state)
        self.app.page(f"/state/{table.name}")(routed)

    def serving(self) -> bool:
        """Tables restored and no rebalance under way: reads answer from complete state."""
        return self.app.tables.recovery.completed.is_set() and not self.app.rebalancing

    def _serve_readiness(self) -> None:
        app = self.app

        @app.page("/fc/ready")
        async def ready(web: Any, request: Any) -> Any:
            serving = self.serving()
            assigned = sorted(f"{tp.topic}:{tp.partition}" for tp in app.consumer.assignment()) if serving else []
            return web.json({"ready": serving, "assigned": assigned}, status=200 if serving else 503)

