"""A minimal single-machine Apache Druid that ingests from Kafka, fetched from Maven Central.

    python -m devtools.druid fetch   # resolve Druid's jars with Maven into .cache/druid
    python -m devtools.druid run     # fetch, write the config, start, wait until SQL answers, serve until SIGTERM

    python -m devtools.druid_check   # end to end: a throwaway Druid and Kafka, transactions in, SQL out

What was chosen, and what was found running it (2 cores, Java 17, Maven Central only):

- Version: Druid 33.0.0, the newest that can ingest from Kafka with what Maven Central serves us.
  `druid-services` is there at 33.0.0 and 37.0.0 (37 is built for Java 17; 34.0.0 to 36.0.0 answer
  404 although the `druid` parent's metadata lists them), but
  `org.apache.druid.extensions:druid-kafka-indexing-service` only up to 33.0.0, and an extension
  must match its Druid. 33 is built for Java 11 and runs on 17 with the flags below.
- Jars (devtools/druid/pom.xml, two profiles, Druid's parent POM imported as a BOM so every
  transitive version is Druid's): `core` -> .cache/druid/libs (205 jars: druid-services, which
  brings ZooKeeper 3.8.4 with its server, Derby 10.14 with derbynet/derbyclient, log4j2; plus
  log4j-slf4j-impl and log4j-jul, which only the tarball ships); `druid-kafka-indexing-service` ->
  .cache/druid/extensions/druid-kafka-indexing-service (the extension, kafka-clients 3.9.0, lz4,
  snappy, zstd: exactly what Druid's `tools pull-deps` lays out; it works too, but needs the core
  first and prints no progress). Sigar is excluded: it lives on MuleSoft's repository, not on
  Central, and only the optional SysMonitor uses it. 210 jars, 208 MB (200 MiB on disk); a cold
  fetch downloads ~840 artifacts in about 80 s, plus as much again in ~/.m2.
- Extensions: the folder under `druid.extensions.directory`, named in `druid.extensions.loadList`,
  works. So does the other way (extension jars in libs/, an empty loadList: Druid's default
  `druid.extensions.searchCurrentClassloader=true` finds the module); without either, a supervisor
  is refused with "Could not resolve type id 'kafka'". The folder is what a distribution does.
- Layout: ZooKeeper (QuorumPeerMain from the same jars, admin server off), coordinator acting as
  overlord (and serving Derby's network server for the metadata), broker, historical, router, and
  an indexer instead of a middleManager: tasks run as threads of one JVM, no peon JVM per task.
  Ports: ZooKeeper 12181, coordinator/overlord 18081, broker 18082, historical 18083, indexer 18091,
  router (and web console) 18888, Derby 18527. State under .data/druid, config in .data/druid/conf,
  logs in .data/druid/logs/<service>.log.
- Memory: heaps 128 (ZooKeeper) + 256 + 384 + 384 + 1024 + 128 MiB = 2.3 GiB, direct memory 3 x
  256 MiB for processing buffers of 50 MiB (1 thread, 2 merge buffers). Measured resident: ~1.7 GB
  for the six JVMs idle, with a Kafka task running a little more; the ceiling is about 3 GiB.
- Start: 53 s from nothing to every check in `wait_ready` passing on a quiet machine, 66-108 s
  while other test suites loaded it (the six JVMs spend ~85 s of CPU starting: Guice, Jersey,
  Calcite class loading). Stop: ~3 s; `druid.server.http.gracefulShutdownTimeout=PT1S` is what
  makes it so (without it the indexer's Jetty waits 30 s for the overlord's long-poll).
- Kafka: a supervisor (spec in devtools/druid_check.py) over 20 events written in one Kafka
  transaction showed `SUM("count") = 20` in SQL 7-24 s after it was submitted (the task's start
  and the broker's first schema refresh); with the task running, events committed later were in
  SQL 0.12-0.6 s after the commit. Druid's consumer reads committed records only. With
  transactions the supervisor reports a lag of 1 per partition at rest: the commit marker takes
  an offset that holds no record.
- Gotchas: Druid runs in UTC and UTF-8 only (-Duser.timezone=UTC -Dfile.encoding=UTF-8); it
  announces `druid.host`, which must be 127.0.0.1 here, not the machine's hostname; the coordinator's
  defaults wait minutes (startDelay PT300S, segment poll PT1M), lowered to seconds; ZooKeeper 3.8
  takes port 8080 for an admin server unless told not to; `ORDER BY` on a scan may name only
  __time; rolled-up rows mean `SUM("count")`, not `COUNT(*)`, counts events.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.druid import DruidAnalytics
from devtools.maven import MavenFetch, pom_property
from devtools.processes import serve_in_foreground, terminate_all
from streams import analytics
from streams.settings import PROJECT_ROOT, load

POM = PROJECT_ROOT / "devtools" / "druid" / "pom.xml"
CACHE_DIR = Path(os.environ.get("FC_DRUID_CACHE_DIR", PROJECT_ROOT / ".cache" / "druid"))
DATA_DIR = Path(os.environ.get("FC_DRUID_DATA_DIR", PROJECT_ROOT / ".data" / "druid"))

# Each name is a profile of the POM and a folder under `extensions/` named in the loadList.
EXTENSIONS = ("druid-kafka-indexing-service",)

# What Druid's own launcher (bin/run-java) adds on Java 17: DataSketches Memory, NativeIO, Guice
# and the JVM metrics reach into JDK internals, and fail at run time without these.
STRONG_ENCAPSULATION_FLAGS = (
    "--add-exports=java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-exports=java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=jdk.management/com.sun.management.internal=ALL-UNNAMED",
)

# Processing pools kept small: Druid needs sizeBytes * (numThreads + numMergeBuffers + 1) of direct
# memory on each process that queries (broker, historical, indexer) and checks it at startup.
PROCESSING = """\
druid.processing.buffer.sizeBytes=50MiB
druid.processing.numThreads=1
druid.processing.numMergeBuffers=2
"""
DIRECT_MEMORY = "256m"  # 50 MiB * (1 + 2 + 1) = 200 MiB, plus headroom


def druid_version() -> str:
    return pom_property(POM, "druid.version")


def fetch(cache_dir: Path = CACHE_DIR) -> Path:
    """Resolve Druid's jars (libs/) and each extension's (extensions/<name>/) with Maven, once."""
    maven = MavenFetch("druid", POM, cache_dir, druid_version(), retry_hint="`python -m devtools.druid fetch`")
    if not maven.done:
        print(f"[druid] fetching Apache Druid {druid_version()} from Maven Central into {cache_dir} "
              "(a few hundred artifacts the first time) ...", flush=True)
        maven.copy(cache_dir / "libs", profile="core")
        for name in EXTENSIONS:
            maven.copy(cache_dir / "extensions" / name, profile=name)
        maven.finish(cache_dir / "libs", cache_dir / "extensions")
    return cache_dir


@dataclass(frozen=True)
class DruidPorts:
    zookeeper: int = 12181
    coordinator: int = 18081  # the overlord too (druid.coordinator.asOverlord.enabled)
    broker: int = 18082
    historical: int = 18083
    indexer: int = 18091  # its tasks run inside it and answer on this port too
    router: int = 18888
    derby: int = 18527  # Derby's network server, run inside the coordinator


@dataclass(frozen=True)
class Service:
    """One Druid JVM: `org.apache.druid.cli.Main server <name>` with conf/<name>/ on its classpath."""

    name: str
    port: int
    heap: str
    direct_memory: str | None
    properties: str


def _services(ports: DruidPorts, data: Path) -> list[Service]:
    # Heaps: 256 + 384 + 384 + 768 + 128 MiB (+ ZooKeeper's 128) = 2 GiB, and 3 * 256 MiB of
    # direct memory for the processing buffers: about 3 GiB resident with the JVMs' own overhead.
    return [
        Service("coordinator", ports.coordinator, "256m", None, f"""\
druid.service=druid/coordinator
druid.plaintextPort={ports.coordinator}
# One JVM for coordinator and overlord; clients find the overlord under druid/overlord.
druid.coordinator.asOverlord.enabled=true
druid.coordinator.asOverlord.overlordService=druid/overlord
# Defaults are minutes (startDelay PT300S, segment poll PT1M): a dev cluster should react in seconds.
druid.coordinator.startDelay=PT5S
druid.coordinator.period=PT5S
druid.manager.segments.pollDuration=PT5S
druid.indexer.queue.startDelay=PT5S
druid.indexer.storage.type=metadata
druid.indexer.runner.type=httpRemote
"""),
        Service("broker", ports.broker, "384m", DIRECT_MEMORY, f"""\
druid.service=druid/broker
druid.plaintextPort={ports.broker}
druid.broker.http.numConnections=5
druid.broker.cache.useCache=false
druid.broker.cache.populateCache=false
{PROCESSING}druid.processing.tmpDir={data / "tmp" / "broker"}
"""),
        Service("historical", ports.historical, "384m", DIRECT_MEMORY, f"""\
druid.service=druid/historical
druid.plaintextPort={ports.historical}
druid.segmentCache.locations=[{{"path":"{data / "segment-cache"}","maxSize":"2GiB"}}]
druid.historical.cache.useCache=false
druid.historical.cache.populateCache=false
druid.cache.type=caffeine
druid.cache.sizeInBytes=16MiB
{PROCESSING}druid.processing.tmpDir={data / "tmp" / "historical"}
"""),
        # The indexer rather than a middleManager: tasks run as threads of this one JVM instead of
        # a forked JVM (a "peon") each, which saves a JVM start per task and its memory.
        Service("indexer", ports.indexer, "1024m", DIRECT_MEMORY, f"""\
druid.service=druid/indexer
druid.plaintextPort={ports.indexer}
# One Kafka task per analytical topic (streams/analytics.py) and two slots for tasks publishing at
# the end of their taskDuration beside their successors: with fewer, a datasource's task waits for
# a slot and nothing of it is ingested. Each task keeps at most maxBytesInMemory (druid_specs/) of
# rows before it persists.
druid.worker.capacity={len(analytics.analysed_topics()) + 2}
druid.indexer.task.baseTaskDir={data / "task"}
druid.indexer.task.restoreTasksOnRestart=true
{PROCESSING}druid.processing.tmpDir={data / "tmp" / "indexer"}
"""),
        Service("router", ports.router, "128m", None, f"""\
druid.service=druid/router
druid.plaintextPort={ports.router}
druid.router.defaultBrokerServiceName=druid/broker
druid.router.coordinatorServiceName=druid/coordinator
# Proxies the coordinator's and overlord's APIs too, so the web console on this port works.
druid.router.managementProxy.enabled=true
druid.router.http.numConnections=10
druid.router.http.numMaxThreads=20
druid.server.http.numThreads=20
"""),
    ]


def common_properties(ports: DruidPorts, data: Path, cache: Path) -> str:
    # Derby's network URL takes the database path after "port/"; an absolute path gives "port//abs".
    return f"""\
# Extensions are folders under druid.extensions.directory, loaded by the names listed here.
druid.extensions.directory={cache / "extensions"}
druid.extensions.loadList={json.dumps(list(EXTENSIONS))}
druid.extensions.hadoopDependenciesDir={cache / "hadoop-dependencies"}
# Without this Druid announces the machine's hostname, which need not resolve to loopback.
druid.host=127.0.0.1
druid.startup.logging.logProperties=false

druid.zk.service.host=127.0.0.1:{ports.zookeeper}
druid.zk.paths.base=/druid

# Derby, served by the coordinator (Druid starts its network server there); fine for one machine.
druid.metadata.storage.type=derby
druid.metadata.storage.connector.connectURI=jdbc:derby://127.0.0.1:{ports.derby}/{data / "metadata" / "druid.db"};create=true
druid.metadata.storage.connector.host=127.0.0.1
druid.metadata.storage.connector.port={ports.derby}

druid.storage.type=local
druid.storage.storageDirectory={data / "deep-storage"}
druid.indexer.logs.type=file
druid.indexer.logs.directory={data / "indexing-logs"}

druid.selectors.indexing.serviceName=druid/overlord
druid.selectors.coordinator.serviceName=druid/coordinator
druid.emitter=noop
# Jetty otherwise waits 30 s on stop for the overlord's long-polls to the indexer to end.
druid.server.http.gracefulShutdownTimeout=PT1S
druid.sql.enable=true
druid.lookup.enableLookupSyncOnStartup=false
"""


LOG4J2_XML = """\
<?xml version="1.0" encoding="UTF-8" ?>
<!-- Every Druid JVM and ZooKeeper log here to stdout, which DruidCluster sends to <log_dir>/<name>.log. -->
<Configuration status="WARN">
  <Appenders>
    <Console name="Console" target="SYSTEM_OUT">
      <PatternLayout pattern="%d{ISO8601} %p [%t] %c - %m%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Root level="info"><AppenderRef ref="Console"/></Root>
    <!-- Chatty at info: every ZooKeeper session event, every Kafka consumer config dump. -->
    <Logger name="org.apache.zookeeper" level="warn" additivity="false"><AppenderRef ref="Console"/></Logger>
    <Logger name="org.apache.curator" level="warn" additivity="false"><AppenderRef ref="Console"/></Logger>
    <Logger name="org.apache.kafka" level="warn" additivity="false"><AppenderRef ref="Console"/></Logger>
  </Loggers>
</Configuration>
"""


def zookeeper_config(ports: DruidPorts, data: Path) -> str:
    return f"""\
dataDir={data / "zookeeper"}
clientPort={ports.zookeeper}
clientPortAddress=127.0.0.1
tickTime=2000
# ZooKeeper 3.5+ starts an admin HTTP server on 8080 by default: off, it is not ours to take.
admin.enableServer=false
# "ruok" is how DruidCluster sees that ZooKeeper is up.
4lw.commands.whitelist=ruok
autopurge.purgeInterval=1
"""


class DruidCluster:
    """ZooKeeper, coordinator+overlord (with Derby), broker, historical, indexer and router, each a
    JVM on 127.0.0.1, configured under `data_dir/conf` and keeping all state under `data_dir`."""

    def __init__(self, data_dir: Path = DATA_DIR, cache_dir: Path = CACHE_DIR, ports: DruidPorts = DruidPorts()) -> None:
        self.data_dir = data_dir.resolve()
        self.cache_dir = cache_dir.resolve()
        self.ports = ports
        self.services = _services(ports, self.data_dir)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.log_dir = self.data_dir / "logs"

    @property
    def conf_dir(self) -> Path:
        return self.data_dir / "conf"

    @property
    def router(self) -> str:
        """One endpoint for everything (queries, management APIs) and the web console."""
        return f"http://127.0.0.1:{self.ports.router}"

    @property
    def broker_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.broker}"

    @property
    def coordinator_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.coordinator}"

    @property
    def overlord_url(self) -> str:
        return self.coordinator_url  # the coordinator runs the overlord

    @property
    def sql_url(self) -> str:
        return f"{self.broker_url}/druid/v2/sql"

    def write_config(self) -> None:
        """Druid reads common.runtime.properties and runtime.properties from its classpath: the
        classpath of each service is conf/_common, conf/<service> and the jars. jvm.config records
        each service's JVM options (for reading; `start` passes them itself)."""
        common = self.conf_dir / "_common"
        common.mkdir(parents=True, exist_ok=True)
        (common / "common.runtime.properties").write_text(common_properties(self.ports, self.data_dir, self.cache_dir))
        (common / "log4j2.xml").write_text(LOG4J2_XML)
        for service in self.services:
            folder = self.conf_dir / service.name
            folder.mkdir(exist_ok=True)
            (folder / "runtime.properties").write_text(service.properties)
            (folder / "jvm.config").write_text("\n".join(self._jvm_options(service.heap, service.direct_memory)) + "\n")
        zookeeper = self.conf_dir / "zookeeper"
        zookeeper.mkdir(exist_ok=True)
        (zookeeper / "zoo.cfg").write_text(zookeeper_config(self.ports, self.data_dir))
        for folder in ("zookeeper", "metadata", "deep-storage", "segment-cache", "task", "indexing-logs", "tmp"):
            (self.data_dir / folder).mkdir(parents=True, exist_ok=True)
        for service in self.services:
            (self.data_dir / "tmp" / service.name).mkdir(exist_ok=True)

    def _jvm_options(self, heap: str, direct_memory: str | None) -> list[str]:
        options = [
            f"-Xmx{heap}",
            # Small start heap: the JVMs grow to what they use instead of committing their maximum.
            "-Xms64m",
            # Six small heaps on two cores: the serial collector has no GC threads to compete with.
            "-XX:+UseSerialGC",
            "-XX:+ExitOnOutOfMemoryError",
            # Druid requires both (its docs; it does not check): it reads and writes times in the
            # JVM's zone and text in the default charset, and both differ between machines.
            "-Duser.timezone=UTC",
            "-Dfile.encoding=UTF-8",
            f"-Djava.io.tmpdir={self.data_dir / 'tmp'}",
            "-Djava.util.logging.manager=org.apache.logging.log4j.jul.LogManager",
            f"-Dlog4j.configurationFile={self.conf_dir / '_common' / 'log4j2.xml'}",
            # As Druid's jvm.config: Druid's lifecycle, not log4j's own hook, closes logging last,
            # so that what the services log while stopping is not lost.
            "-Dlog4j.shutdownCallbackRegistry=org.apache.druid.common.config.Log4jShutdown",
            "-Dlog4j.shutdownHookEnabled=true",
            *STRONG_ENCAPSULATION_FLAGS,
        ]
        if direct_memory:
            options.insert(2, f"-XX:MaxDirectMemorySize={direct_memory}")
        return options

    def _java(self, name: str, heap: str, direct_memory: str | None, main: list[str]) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise SystemExit("java is not on PATH; install a JDK 17 and retry.")
        classpath = os.pathsep.join([
            str(self.conf_dir / "_common"), str(self.conf_dir / name), str(self.cache_dir / "libs" / "*"),
        ])
        return [java, *self._jvm_options(heap, direct_memory), "-cp", classpath, *main]

    def _spawn(self, name: str, command: list[str]) -> None:
        out = open(self.log_dir / f"{name}.log", "ab")
        # cwd: files a library writes next to itself (Derby's derby.log) land in the data folder.
        self.processes[name] = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=self.data_dir)
        out.close()

    def start(self, log_dir: Path | None = None, zookeeper_timeout: float = 60.0) -> DruidCluster:
        """Fetch, write the config, start ZooKeeper, then every Druid service at once (they wait for
        each other by themselves). Returns at once: `wait_ready` says when it answers."""
        fetch(self.cache_dir)
        busy = [port for port in vars(self.ports).values() if _port_in_use(port)]
        if busy:
            raise SystemExit(f"[druid] ports {busy} are taken: is another Druid running? (see `ps aux | grep druid`)")
        self.log_dir = (log_dir or self.data_dir / "logs").resolve()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.write_config()
        self._spawn("zookeeper", self._java("zookeeper", "128m", None, [
            "org.apache.zookeeper.server.quorum.QuorumPeerMain", str(self.conf_dir / "zookeeper" / "zoo.cfg"),
        ]))
        self._wait(lambda: _zookeeper_ok(self.ports.zookeeper), zookeeper_timeout, "ZooKeeper")
        for service in self.services:
            self._spawn(service.name, self._java(service.name, service.heap, service.direct_memory, [
                "org.apache.druid.cli.Main", "server", service.name,
            ]))
        return self

    def readiness(self) -> dict[str, bool]:
        """What answers yet: SQL on the broker, the coordinator, the overlord's supervisor API, a
        registered indexer (else a supervisor has nowhere to run its tasks), historical and router."""
        return {
            "broker SQL": _ok(lambda: self.sql("SELECT 1") == [{"EXPR$0": 1}]),
            "coordinator": _ok(lambda: _http("GET", f"{self.coordinator_url}/status") is not None),
            "overlord": _ok(lambda: isinstance(_http("GET", f"{self.overlord_url}/druid/indexer/v1/supervisor"), list)),
            "indexer": _ok(lambda: bool(_http("GET", f"{self.overlord_url}/druid/indexer/v1/workers"))),
            "historical": _ok(lambda: _http("GET", f"http://127.0.0.1:{self.ports.historical}/status/health") is True),
            "router": _ok(lambda: _http("GET", f"{self.router}/status/health") is True),
        }

    def wait_ready(self, timeout: float = 600.0) -> float:
        """Block until every readiness check passes; return the seconds it took."""
        started = time.monotonic()
        last_report = started
        while True:
            self._check_alive()
            ready = self.readiness()
            if all(ready.values()):
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"[druid] not ready after {timeout:.0f}s: {ready}; logs in {self.log_dir}")
            if time.monotonic() - last_report >= 15:
                waiting = ", ".join(name for name, ok in ready.items() if not ok)
                print(f"[druid]   waiting for {waiting} ({time.monotonic() - started:.0f}s)", flush=True)
                last_report = time.monotonic()
            time.sleep(1.0)

    def _wait(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            self._check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"[druid] {what} did not start within {timeout:.0f}s; logs in {self.log_dir}")
            time.sleep(0.5)

    def _check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"[druid] {name} exited with code {process.returncode}; "
                                   f"see {self.log_dir / (name + '.log')}")

    def wait(self) -> int:
        """Until one of the JVMs exits by itself; then stop the others (a cluster missing one is no
        cluster) and return a non-zero code, so that a Procfile runner stops its siblings too."""
        while True:
            for name, process in self.processes.items():
                code = process.poll()
                if code is not None:
                    print(f"[druid] {name} exited with code {code}; see {self.log_dir / (name + '.log')}", flush=True)
                    self.stop()
                    return code or 1
            time.sleep(1.0)

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM and wait, SIGKILL after `timeout`, in three waves so that nothing is left
        talking to a dependency that is already gone: the services that use the coordinator, then
        the coordinator (it holds Derby and the overlord's leadership), then ZooKeeper."""
        waves = [[s.name for s in self.services if s.name != "coordinator"], ["coordinator"], ["zookeeper"]]
        for wave in waves:
            terminate_all([self.processes.get(name) for name in wave], timeout)

    # A small client, enough for scripts and checks.

    def sql(self, query: str) -> Any:
        return _http("POST", self.sql_url, {"query": query})

    def submit_supervisor(self, spec: dict[str, Any]) -> Any:
        return _http("POST", f"{self.overlord_url}/druid/indexer/v1/supervisor", spec)

    def supervisor_status(self, supervisor_id: str) -> Any:
        return _http("GET", f"{self.overlord_url}/druid/indexer/v1/supervisor/{supervisor_id}/status")

    def terminate_supervisor(self, supervisor_id: str) -> Any:
        return _http("POST", f"{self.overlord_url}/druid/indexer/v1/supervisor/{supervisor_id}/terminate")


def _http(method: str, url: str, body: Any = None, timeout: float = 10.0) -> Any:
    """JSON in, JSON out; an HTTP error raises with Druid's error body in the message."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = response.read()
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"{method} {url} -> {exc.code}: {exc.read().decode(errors='replace')[:500]}") from None
    return json.loads(payload) if payload else None


def _ok(check: Callable[[], Any]) -> bool:
    try:
        return bool(check())
    except (OSError, RuntimeError, ValueError):
        return False


def _port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _zookeeper_ok(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(b"ruok")
            return sock.recv(4) == b"imok"
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["fetch", "run"])
    parser.add_argument("--submit-supervisors", action="store_true",
                        help="once ready, ingest the project's analytical topics from its Kafka (druid_specs/)")
    args = parser.parse_args()
    if args.command == "fetch":
        fetch()
        return
    cluster = DruidCluster()

    def start() -> DruidCluster:
        started = time.monotonic()
        try:
            cluster.start()
            print(f"[druid] started; logs in {cluster.log_dir}", flush=True)
            cluster.wait_ready()
        except (RuntimeError, TimeoutError) as exc:
            cluster.stop()
            raise SystemExit(str(exc)) from None
        print(f"[druid] ready: SQL at {cluster.sql_url} in {time.monotonic() - started:.0f} s "
              f"(console and API at {cluster.router})", flush=True)
        if args.submit_supervisors:
            settings = load()
            analysis = DruidAnalytics(cluster.broker_url, cluster.overlord_url, settings.topic_namespace)
            submitted = analysis.submit_supervisors(settings.bootstrap_servers)
            print(f"[druid] ingesting from Kafka at {settings.bootstrap_servers}: {', '.join(submitted) or 'unchanged'}",
                  flush=True)
        return cluster

    serve_in_foreground("druid", start, cluster.stop)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
