"""A real single-node Apache Kafka (KRaft, transactions on), fetched from Maven Central.

    python -m devtools.kafka fetch   # resolve the broker's jars with Maven into the cache
    python -m devtools.kafka run     # fetch, format storage if new, start, wait, serve until SIGTERM

The broker is one combined broker+controller on 127.0.0.1 with every internal topic at
replication factor 1, so transactions (exactly-once) work on one node. Tests start their own on
free ports through `KafkaBroker`.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from connectors.kafka import wait_for_broker
from devtools.maven import MavenFetch, pom_property
from devtools.processes import serve_in_foreground, terminate
from streams import logs
from streams.settings import PROJECT_ROOT, Settings, load

log = logging.getLogger("devtools.kafka")

POM = PROJECT_ROOT / "devtools" / "kafka" / "pom.xml"
LOG_CONFIG = PROJECT_ROOT / "devtools" / "kafka" / "log4j2.properties"


def kafka_version() -> str:
    return pom_property(POM, "kafka.version")


def fetch(cache_dir: Path) -> Path:
    """Resolve the broker's runtime jars with Maven; a marker file makes later calls instant."""
    libs = cache_dir / "libs"
    maven = MavenFetch("kafka", POM, cache_dir, kafka_version(), retry_hint="`make kafka`")
    if not maven.done:
        print(f"[kafka] fetching Apache Kafka {kafka_version()} from Maven Central into {libs} ...", flush=True)
        maven.copy(libs)
        maven.finish(libs)
    return libs


# How long `make run`'s broker waits after a stop signal (Ctrl-C) before stopping.
WORKERS_GRACE_SECONDS = 2.0


def server_properties(port: int, controller_port: int, data_dir: Path) -> str:
    return f"""\
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs={data_dir / "log"}
num.partitions=8
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=8
group.initial.rebalance.delay.ms=0
# The consumer group protocol of KIP-848 (what the runtime uses): a killed worker's partitions move
# after 6 s instead of the broker's default 45 s; heartbeats every second.
group.consumer.session.timeout.ms=6000
group.consumer.min.session.timeout.ms=6000
group.consumer.heartbeat.interval.ms=1000
group.consumer.min.heartbeat.interval.ms=1000
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
"""


class KafkaBroker:
    """One broker process on the given ports and data directory."""

    def __init__(self, port: int, controller_port: int, data_dir: Path, cache_dir: Path) -> None:
        self.port = port
        self.controller_port = controller_port
        self.data_dir = data_dir
        self.cache_dir = cache_dir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _java(self, *args: str, heap: str = "256m") -> list[str]:
        classpath = str(fetch(self.cache_dir) / "*")
        java = shutil.which("java")
        if java is None:
            raise SystemExit("java is not on PATH; install a JDK 17+ and retry.")
        return [java, f"-Xmx{heap}", f"-Dlog4j2.configurationFile={LOG_CONFIG}", "-cp", classpath, *args]

    def start(self, log_file: Path | None = None, timeout: float = 120.0) -> subprocess.Popen[bytes]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "server.properties"
        config.write_text(server_properties(self.port, self.controller_port, self.data_dir))
        if not (self.data_dir / "log" / "meta.properties").exists():
            cluster_id = subprocess.run(
                self._java("kafka.tools.StorageTool", "random-uuid"), check=True, capture_output=True, text=True
            ).stdout.strip().splitlines()[-1]
            subprocess.run(
                self._java("kafka.tools.StorageTool", "format", "--standalone", "-t", cluster_id, "-c", str(config)),
                check=True, capture_output=True,
            )
            print(f"[kafka] formatted KRaft storage in {self.data_dir} (cluster {cluster_id})", flush=True)
        out = open(log_file, "ab") if log_file else None
        # A session of its own: Ctrl-C in a terminal reaches the whole foreground process group, and
        # the broker must outlive the workers' last commit (`stop_after_the_workers`).
        self.process = process = subprocess.Popen(
            self._java("kafka.Kafka", str(config), heap="768m"), stdout=out, stderr=subprocess.STDOUT if out else None,
            start_new_session=True,
        )
        started = time.monotonic()
        wait_for_broker(self.bootstrap, timeout=timeout)
        print(f"[kafka] broker ready at {self.bootstrap} in {time.monotonic() - started:.1f}s", flush=True)
        return process

    def stop(self) -> None:
        terminate(self.process, timeout=30)


@contextmanager
def throwaway_broker(data_dir: Path, port: Callable[[], int]) -> Iterator[str]:
    """A broker on two ports from `port()` with its state in `data_dir`, stopped and removed after use;
    yields its bootstrap address (tests and benchmarks)."""
    broker = KafkaBroker(port(), port(), data_dir, load().kafka_cache_dir)
    broker.start(log_file=data_dir.with_suffix(".log"))
    try:
        yield broker.bootstrap
    finally:
        broker.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def broker_from(settings: Settings) -> KafkaBroker:
    return KafkaBroker(
        settings.broker_port, settings.controller_port, settings.broker_data_dir, settings.kafka_cache_dir
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["fetch", "run"])
    args = parser.parse_args()
    settings = load()
    logs.configure(settings, "kafka")
    if args.command == "fetch":
        fetch(settings.kafka_cache_dir)
        return
    if settings.uses_external_broker:
        raise SystemExit(f"KAFKA_BOOTSTRAP_SERVERS={settings.external_bootstrap} is set: using that cluster, "
                         "not starting a broker.")
    broker = broker_from(settings)

    def stop_after_the_workers() -> None:
        # Ctrl-C on `make run` stops every process at once; the workers commit and leave the
        # group within a second or two, which needs the broker.
        print(f"[kafka] stopping in {WORKERS_GRACE_SECONDS:.0f}s, once the workers have committed and left", flush=True)
        time.sleep(WORKERS_GRACE_SECONDS)
        broker.stop()

    serve_in_foreground("kafka", broker.start, stop_after_the_workers)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
