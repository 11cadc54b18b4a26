"""The broker's ceiling on this machine, from Kafka's own performance tools in the broker's jars.

`org.apache.kafka.tools.ProducerPerformance` writes N records of the envelopes' average size to an
8-partition topic (acks=all, linger 5 ms, as the project's producers), once plainly and once in
transactions committed every 100 ms (the workers' commit interval); then
`org.apache.kafka.tools.ConsumerPerformance` reads them back. Records/s and MB/s of each; the
consumer's figures are its fetch rates (without the group join).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from typing import Any

from bench.common import create_topics, progress
from devtools.kafka import LOG_CONFIG, fetch
from streams.settings import load

PRODUCED = re.compile(r"([\d.]+) records/sec \(([\d.]+) MB/sec\)")


def _tool(main_class: str, *args: str) -> str:
    java = shutil.which("java")
    if java is None:
        raise SystemExit("java is not on PATH; install a JDK 17+ and retry.")
    classpath = str(fetch(load().kafka_cache_dir) / "*")
    done = subprocess.run([java, "-Xmx512m", f"-Dlog4j2.configurationFile={LOG_CONFIG}", "-cp", classpath,
                           main_class, *args], capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"{main_class} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return done.stdout


def _produce(bootstrap: str, topic: str, records: int, size: int, *extra: str) -> dict[str, float]:
    out = _tool("org.apache.kafka.tools.ProducerPerformance", "--topic", topic, "--num-records", str(records),
                "--record-size", str(size), "--throughput", "-1", *extra,
                "--producer-props", f"bootstrap.servers={bootstrap}", "acks=all", "linger.ms=5")
    matches = PRODUCED.findall(out)
    if not matches:
        raise RuntimeError(f"no summary in ProducerPerformance's output:\n{out[-2000:]}")
    rate, mb = matches[-1]
    return {"records_per_second": float(rate), "mb_per_second": float(mb)}


def _consume(bootstrap: str, topic: str, records: int) -> dict[str, float]:
    out = _tool("org.apache.kafka.tools.ConsumerPerformance", "--bootstrap-server", bootstrap, "--topic", topic,
                "--messages", str(records), "--group", f"bench-perf-{uuid.uuid4().hex[:8]}")
    lines = [line for line in out.splitlines() if line.strip()]
    header = [h.strip() for h in lines[-2].split(",")]
    values = dict(zip(header, (v.strip() for v in lines[-1].split(",")), strict=False))
    return {"records_per_second": float(values["fetch.nMsg.sec"]), "mb_per_second": float(values["fetch.MB.sec"])}


def measure(bootstrap: str, records: int, record_size: int) -> dict[str, Any]:
    plain, transactional = (f"bench-perf-{kind}-{uuid.uuid4().hex[:8]}" for kind in ("plain", "tx"))
    create_topics(bootstrap, [plain, transactional], 8)
    progress(f"  broker: ProducerPerformance, {records} records of {record_size} bytes")
    produced = _produce(bootstrap, plain, records, record_size)
    progress("  broker: ProducerPerformance in transactions of 100 ms")
    produced_tx = _produce(bootstrap, transactional, records, record_size, "--transaction-duration-ms", "100")
    progress("  broker: ConsumerPerformance")
    consumed = _consume(bootstrap, plain, records)
    return {"record_size": record_size, "records": records, "producer": produced,
            "producer_transactional": produced_tx, "consumer": consumed}
