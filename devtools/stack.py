"""Real processes of the system on free ports: workers and a gateway with their own app id, topic
namespace and data directories, so that several stacks share one broker without meeting. Used by
the integration tests and the benchmarks.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import confluent_kafka

from streams.runtime.reads import read_headers
from streams.settings import DEVELOPMENT_STRIPE_API_KEY, PROJECT_ROOT

RUNS_DIR = PROJECT_ROOT / ".data" / "test-runs"
# Strong secrets, new in every process that starts stacks: the stacks run outside development mode,
# as in production, and this process mints their tokens and signs their webhooks with the same.
JWT_SECRET = secrets.token_urlsafe(32)
WEBHOOK_SECRET = f"whsec_{secrets.token_urlsafe(32)}"
CARRIER_SECRET = secrets.token_urlsafe(32)
# Bursts of tests and benchmarks come from one address and a few principals: budgets far above them,
# so that a 429 is met only where a test sets its own budgets (tests/integration/test_gateway_edge.py).
UNLIMITED_EDGE = {
    "GATEWAY_RATE_LIMIT_WRITES": "1000000/second", "GATEWAY_RATE_LIMIT_READS": "1000000/second",
    "GATEWAY_RATE_LIMIT_LONG_POLLS": "1000000/second", "GATEWAY_RATE_LIMIT_PER_ADDRESS": "1000000/second",
    "GATEWAY_MAX_LONG_POLLS": "100000",
}
# What a test or a benchmark sends to read a worker's endpoints, as the gateway does.
WORKER_READ_HEADERS = read_headers(JWT_SECRET)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def eventually(check: Callable[[], Any], timeout: float, what: str, pause: float = 0.2) -> Any:
    """Call `check` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (OSError, urllib.error.URLError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(pause)
    raise AssertionError(f"{what} did not happen within {timeout:.0f}s (last: {last!r})")


def http_status(url: str, headers: dict[str, str] | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@dataclass
class Process:
    name: str
    command: list[str]
    env: dict[str, str]
    log_path: Path
    port: int
    host: str = "127.0.0.1"
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT)
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} was never started"
        return self.popen.pid

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown, no last commit, as when a machine dies."""
        if self.running:
            assert self.popen is not None
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait()

    def stop(self, timeout: float = 30.0) -> None:
        if self.running:
            assert self.popen is not None
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Stack:
    """One system under test: its own topics (namespace), app id, workers and gateway."""

    bootstrap: str
    name: str
    extra_env: dict[str, str] = field(default_factory=dict)
    worker_slots: int = 2
    partitions: int = 8

    def __post_init__(self) -> None:
        tag = uuid.uuid4().hex[:8]
        self.namespace = f"t{tag}."
        self.app_id = f"fc-test-{self.name}-{tag}"
        self.base_dir = RUNS_DIR / f"{self.name}-{tag}"
        self.worker_ports = [free_port() for _ in range(self.worker_slots)]
        self.workers: dict[int, Process] = {}
        self.gateway: Process | None = None

    def env(self, **overrides: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FC_", "GATEWAY_", "WEB_"))}
        env.update(
            KAFKA_BOOTSTRAP_SERVERS=self.bootstrap,
            FC_TOPIC_NAMESPACE=self.namespace,
            FC_APP_ID=self.app_id,
            FC_TOPIC_PARTITIONS=str(self.partitions),
            FC_WORKER_URLS=",".join(f"http://127.0.0.1:{p}" for p in self.worker_ports),
            GATEWAY_JWT_SECRET=JWT_SECRET,
            STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
            CARRIER_WEBHOOK_SECRET=CARRIER_SECRET,
            PYTHONUNBUFFERED="1",
            **UNLIMITED_EDGE,
        )
        # stripe-mock takes any test key; a Stripe of the environment's (STRIPE_API_BASE) comes with its own.
        env["STRIPE_API_KEY"] = env.get("STRIPE_API_KEY") or DEVELOPMENT_STRIPE_API_KEY
        env.update(self.extra_env)
        env.update(overrides)
        return env

    def start_worker(self, slot: int = 0, wait: bool = True, host: str = "127.0.0.1",
                     agents: str | None = None) -> Process:
        """Start worker `slot` (its own port and data directory, kept across restarts) on `host`, a
        loopback address of its own if asked: the gateway finds it through its consumer group.
        `agents` runs a subset (`--agents`), in a group of its own."""
        port = self.worker_ports[slot]
        worker = Process(
            name=f"worker-{slot}",
            command=[sys.executable, "-m", "streams", *(["--agents", agents] if agents else [])],
            env=self.env(FC_WORKER_HOST=host, FC_WORKER_PORT=str(port),
                         FC_WORKER_DATA_DIR=str(self.base_dir / f"worker-{slot}")),
            log_path=self.base_dir / f"worker-{slot}.log",
            port=port,
            host=host,
        ).start()
        self.workers[slot] = worker
        if wait:
            self.wait_worker_ready(worker)
        return worker

    def wait_worker_ready(self, worker: Process, timeout: float = 90.0) -> None:
        def ready() -> bool:
            if not worker.running:
                raise AssertionError(f"{worker.name} exited:\n{worker.log_tail()}")
            return http_status(f"{worker.url}/fc/ready") == 200

        eventually(ready, timeout, f"{worker.name} of {self.name} becoming ready")

    def start_gateway(self, **overrides: str) -> Process:
        port = free_port()
        self.gateway = Process(
            name="gateway",
            command=[sys.executable, "-m", "gateway"],
            env=self.env(GATEWAY_PORT=str(port), **overrides),
            log_path=self.base_dir / "gateway.log",
            port=port,
        ).start()
        self.wait_ready()
        return self.gateway

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Until the gateway's /readyz says every partition is served by a ready worker."""
        assert self.gateway is not None
        gateway = self.gateway

        def ready() -> bool:
            if not gateway.running:
                raise AssertionError(f"gateway exited:\n{gateway.log_tail()}")
            return http_status(f"{gateway.url}/readyz") == 200

        eventually(ready, timeout, f"{self.name} becoming ready")

    def topic(self, name: str) -> str:
        return f"{self.namespace}{name}"

    def wait_drained(self, timeout: float = 90.0, agents: str | None = None) -> None:
        """Until the agents have processed and committed every event on every topic they consume:
        the app group's agents, or those of a worker started with `agents` (`--agents`, its group).

        A status read through the gateway can be ahead of what it caused: a rejected order's
        releases may still be on their way to the SKUs. The pipeline is drained when no committed
        record lies at or after the group's committed offset of any consumed partition, twice in a
        row with the same offsets (a record processed during the first pass may have caused one
        on a partition that pass had already looked at).
        """
        last: list[dict[tuple[str, int], int]] = []

        def drained() -> bool:
            offsets, pending = self._pending_records(agents)
            settled = pending == 0 and bool(last) and last[-1] == offsets
            last.append(offsets)
            return settled

        eventually(drained, timeout, f"the agents of {self.name} processing every event", pause=0.5)

    def _pending_records(self, agents: str | None = None) -> tuple[dict[tuple[str, int], int], int]:
        """The group's committed offsets and how many committed records lie at or after them."""
        from streams import agents as known
        from streams.runtime.worker import group_id
        from streams.settings import Settings

        chosen = list(known.NAMES) if agents is None else agents.split(",")
        # Built only to read their sources (a topic such as orders.events is read by another group).
        built = known.build(Settings(development=True, app_id=self.app_id), None, chosen)  # type: ignore[arg-type]
        names = sorted({self.topic(spec.name) for agent in built for spec in agent.sources})
        group_name = group_id(Settings(development=True, app_id=self.app_id), chosen, known.NAMES)
        group = confluent_kafka.Consumer({"bootstrap.servers": self.bootstrap, "group.id": group_name})
        reader = confluent_kafka.Consumer({
            "bootstrap.servers": self.bootstrap,
            "group.id": f"drain-check-{uuid.uuid4().hex}",
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        })
        try:
            wanted = [confluent_kafka.TopicPartition(name, p) for name in names for p in range(self.partitions)]
            committed = group.committed(wanted, timeout=10)
            offsets = {(tp.topic, tp.partition): tp.offset for tp in committed}
            reader.assign([
                confluent_kafka.TopicPartition(tp.topic, tp.partition,
                                               tp.offset if tp.offset >= 0 else confluent_kafka.OFFSET_BEGINNING)
                for tp in committed
            ])
            at_end: set[tuple[str, int]] = set()
            pending = 0
            while len(at_end) < len(committed):
                message = reader.poll(1.0)
                if message is None:
                    continue
                if message.error() is not None:
                    if message.error().code() == confluent_kafka.KafkaError._PARTITION_EOF:
                        at_end.add((message.topic(), message.partition()))
                    continue
                pending += 1
            return offsets, pending
        finally:
            group.close()
            reader.close()

    def stop(self) -> None:
        for process in [*self.workers.values(), *([self.gateway] if self.gateway else [])]:
            process.stop()

