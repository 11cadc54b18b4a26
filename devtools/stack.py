"""Real processes of the system on free ports: workers and a gateway with their own app id, topic
namespace and data directories, so that several stacks share one broker without meeting. Used by
the integration tests and the benchmarks.
"""

from __future__ import annotations

import os
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

from streams.settings import PROJECT_ROOT

RUNS_DIR = PROJECT_ROOT / ".data" / "test-runs"
JWT_SECRET = "integration-test-secret-of-at-least-32-bytes"


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


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
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
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

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
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        env.update(overrides)
        return env

    def start_worker(self, slot: int = 0, wait: bool = True) -> Process:
        port = self.worker_ports[slot]
        worker = Process(
            name=f"worker-{slot}",
            command=[sys.executable, "-m", "streams"],
            env=self.env(FC_WORKER_PORT=str(port), FC_WORKER_DATA_DIR=str(self.base_dir / f"worker-{slot}")),
            log_path=self.base_dir / f"worker-{slot}.log",
            port=port,
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

    def start_gateway(self) -> Process:
        port = free_port()
        self.gateway = Process(
            name="gateway",
            command=[sys.executable, "-m", "gateway"],
            env=self.env(GATEWAY_PORT=str(port)),
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

    def stop(self) -> None:
        for process in [*self.workers.values(), *([self.gateway] if self.gateway else [])]:
            process.stop()

