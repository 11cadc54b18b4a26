"""The two peers of the reservation benchmark as processes over the worker's input topic.

Each peer reads `<namespace>inventory.commands` of the stack under test from its beginning under
its own consumer group (the setup's AdjustStock first, then the backlog of ReserveStock), writes
its own output topics `<namespace>bench-<peer>.*`, and is timed and verified exactly as the worker
is (bench/common.py `time_drain`, bench/reservations.py `verify`):

- `confluent`: bench/peer_confluent.py, the project's decision in a plain transactional loop;
- `kstreams`: bench/kafka-streams, a Kafka Streams Processor API app (exactly_once_v2, RocksDB),
  built with Maven against the broker's Kafka version.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.common import BENCH_DIR, create_topics, progress, time_drain
from bench.reservations import OursRun, verify
from devtools.kafka import kafka_version
from devtools.stack import Process

KSTREAMS_DIR = BENCH_DIR / "kafka-streams"
KSTREAMS_JAR = KSTREAMS_DIR / "target" / "reservations-kstreams.jar"
PEERS = ("confluent", "kstreams")


def build_kstreams() -> Path:
    """`mvn -q package` unless the jar is newer than the pom and every source file."""
    sources = [KSTREAMS_DIR / "pom.xml", *KSTREAMS_DIR.glob("src/**/*.java")]
    if KSTREAMS_JAR.exists() and all(s.stat().st_mtime < KSTREAMS_JAR.stat().st_mtime for s in sources):
        return KSTREAMS_JAR
    if shutil.which("mvn") is None:
        raise SystemExit("Maven (mvn) is not on PATH; it builds the Kafka Streams peer (apt-get install maven).")
    progress(f"building the Kafka Streams peer (Kafka {kafka_version()}) with Maven ...")
    done = subprocess.run(["mvn", "-B", "-q", "-f", str(KSTREAMS_DIR / "pom.xml"), "package",
                           f"-Dkafka.version={kafka_version()}"], capture_output=True, text=True)
    if done.returncode != 0:
        sys.stdout.write(done.stdout[-4000:] + done.stderr[-2000:])
        raise SystemExit("[bench] Maven could not build bench/kafka-streams (output above)")
    return KSTREAMS_JAR


def _command(peer: str, ours: OursRun, group: str, output_prefix: str, state_dir: Path) -> list[str]:
    common = ["--bootstrap", ours.bootstrap, "--namespace", ours.namespace, "--output-prefix", output_prefix]
    if peer == "confluent":
        return [sys.executable, "-m", "bench.peer_confluent", *common, "--group", group, "--data-dir", str(state_dir)]
    java = shutil.which("java")
    if java is None:
        raise SystemExit("java is not on PATH; install a JDK 17+ and retry.")
    return [java, "-Xmx512m", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-jar", str(build_kstreams()),
            *common, "--application-id", group, "--state-dir", str(state_dir)]


def run_peer(peer: str, ours: OursRun) -> dict[str, Any]:
    """Start the peer over the stack's input, time it to the end of the backlog, stop and verify it."""
    group = f"{ours.stack.app_id}-peer-{peer}"
    prefix = f"{ours.namespace}bench-{peer}."
    outputs = [f"{prefix}inventory.reservations", f"{prefix}inventory.stock-changes"]
    if peer == "confluent":
        outputs += [f"{prefix}inventory-changelog", f"{prefix}dead-letters"]
    create_topics(ours.bootstrap, outputs, ours.stack.partitions)
    base = ours.stack.base_dir
    process = Process(name=f"peer-{peer}", command=_command(peer, ours, group, prefix, base / f"peer-{peer}"),
                      env=ours.stack.env(), log_path=base / f"peer-{peer}.log", port=0).start()
    progress(f"  {peer}: started; timing it over the same {ours.workload.events} reservations")
    try:
        drain = time_drain(ours.bootstrap, group, ours.stack.topic("inventory.commands"),
                           ours.workload.setup_commands, process.pid, lambda: process.running,
                           timeout=max(300.0, ours.workload.events / 50), label=peer)
    except RuntimeError:
        print(process.log_tail())
        raise
    finally:
        process.stop()
    checked = verify(ours.bootstrap, outputs[0], ours.workload, peer)
    return {**drain.as_dict(), "verified": checked}

