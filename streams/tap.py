"""Tap the topics: a catalog, committed events as JSON lines, files and DataFrames, fixtures of real traffic.

    fc-tap topics                                      # (or python -m streams.tap topics)
    fc-tap tail orders.events --since 2h --type OrderStatusChanged --tenant acme [--follow]
    fc-tap tail orders.events --offset 3:120           # partition 3 from offset 120
    fc-tap export orders.events --to orders.parquet    # or --to orders.jsonl; a progress bar on stderr
    fc-tap capture orders.events --follow --to session.jsonl   # Ctrl-C ends it: a fixture
    fc-tap replay session.jsonl                        # feeds it (devtools/replay.py)

    from streams.tap import read_topic
    df = read_topic("orders.events", since="1h")       # a polars DataFrame (streams/frames.py)

TOPIC is the registry's name (`streams/topics.py`, a `.dlq` twin too); the namespace comes from
`FC_TOPIC_NAMESPACE` and the cluster from `KAFKA_BOOTSTRAP_SERVERS`, as for every process. Records
are decoded into the envelope and its payload model. Where to start: `--from-beginning`, `--since`
(a duration such as `90s`, `15m`, `2h`, `1d`, `1h30m`, or an ISO 8601 time; it is the records' Kafka
timestamp, the time they were written), or `--offset P:O` (repeatable; only the partitions named).
Without one, reading starts at the beginning, or at the end with `--follow`. Reading stops at the
end of every partition (its last committed record) unless `--follow`.

Read-only by construction. A tap reads committed records only (`isolation.level=read_committed`:
records of open or aborted transactions are never shown), never joins a consumer group and never
commits an offset: it `assign()`s its partitions with explicit start offsets (the watermarks, or
`offsets_for_times` for `--since`), under a group id of its own (`fc-tap-<random>`, never a
worker's), with `enable.auto.commit=false` and no `commit()` call anywhere, so the broker keeps no
group and no offset for it. Only `replay` writes, as `devtools/replay.py` does.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import sys
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import confluent_kafka
import orjson

from streams import models as m
from streams import topics
from streams.settings import Settings, load

if TYPE_CHECKING:
    import polars as pl

log = logging.getLogger("fc-tap")

_DURATION_PART = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class TapError(Exception):
    """Something the user asked that cannot be done (an unknown topic, a partition it does not have)."""


# --- what to read ---------------------------------------------------------------------------------


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """`2h`, `15m`, `1h30m`, `1d`, `1w` ago (from `now`), or an ISO 8601 time (UTC when it names no zone)."""
    text = text.strip()
    if text and _DURATION_PART.sub("", text) == "":
        seconds = sum(int(n) * _UNITS[unit] for n, unit in _DURATION_PART.findall(text))
        return (now or datetime.now(UTC)) - timedelta(seconds=seconds)
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is neither a duration (90s, 15m, 2h, 1d, 1h30m) nor an ISO 8601 time") from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def parse_offset(text: str) -> tuple[int, int]:
    """`P:O` -> (partition, offset), both whole numbers from 0."""
    match = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", text)
    if match is None:
        raise ValueError(f"{text!r} is not PARTITION:OFFSET (such as 3:120)")
    return int(match[1]), int(match[2])


@dataclass(frozen=True)
class Start:
    """Where reading starts: the beginning, the end, a time, or explicit offsets of some partitions."""

    at: str = "beginning"  # "beginning", "end", "since" or "offsets"
    since: datetime | None = None
    offsets: dict[int, int] = field(default_factory=dict)

    @classmethod
    def of(cls, since: str | datetime | None = None, offsets: Iterable[str | tuple[int, int]] = (),
           from_beginning: bool = False, follow: bool = False) -> Start:
        offsets = [parse_offset(o) if isinstance(o, str) else o for o in offsets]
        if sum(bool(x) for x in (since, offsets, from_beginning)) > 1:
            raise ValueError("give at most one of --from-beginning, --since and --offset")
        if since is not None:
            return cls("since", since=since if isinstance(since, datetime) else parse_since(since))
        if offsets:
            return cls("offsets", offsets=dict(offsets))
        return cls("end" if follow and not from_beginning else "beginning")


def topic_spec(name: str) -> topics.TopicSpec:
    """The registry's topic, or a `.dlq` twin (its messages are DeadLetter envelopes)."""
    for spec in topics.ALL:
        if spec.name == name:
            return spec
        if spec.consumed and spec.dead_letter_name == name:
            return topics.TopicSpec(name=name, key=spec.key, payloads=(m.DeadLetter,), writers=f"{spec.readers}",
                                    readers="operators", key_of=spec.key_of, consumed=False)
    known = ", ".join(s.name for s in topics.ALL)
    raise TapError(f"no topic {name!r} in the registry (streams/topics.py); known: {known}, and their .dlq twins")


# --- reading --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    timestamp: datetime | None  # the record's Kafka timestamp
    key: str | None
    event: m.Envelope

    def line(self) -> bytes:
        """What `tail` prints: the position, the key and the event."""
        return orjson.dumps({
            "partition": self.partition, "offset": self.offset,
            "timestamp": self.timestamp.isoformat() if self.timestamp else None, "key": self.key,
            "event": self.event.model_dump(mode="json"),
        })


def consumer_config(settings: Settings, client_id: str = "fc-tap") -> dict[str, Any]:
    """A consumer that reads committed records of assigned partitions and can commit nothing (the
    tap's, and the gateway's catalog view's)."""
    return {
        "bootstrap.servers": settings.bootstrap_servers,
        "client.id": client_id,
        # Never joined (assign() only) and never committed: the broker keeps nothing under this id.
        "group.id": f"{client_id}-{uuid.uuid4().hex[:12]}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "isolation.level": "read_committed",
        "auto.offset.reset": "earliest",  # an --offset below the log start starts at the log start
        "enable.partition.eof": True,
    }


class Reader:
    """Committed records of one topic from `start`, decoded and filtered; `expected` estimates how many."""

    def __init__(self, topic: str, start: Start = Start(), *, types: Sequence[str] = (), tenant: str | None = None,
                 follow: bool = False, settings: Settings | None = None) -> None:
        self.spec = topic_spec(topic)
        self.settings = settings or load()
        self.topic = topics.full_name(self.settings.topic_namespace, self.spec.name)
        known = {p.__name__ for p in self.spec.payloads}
        if unknown := set(types) - known:
            raise TapError(f"{self.spec.name} carries no {', '.join(sorted(unknown))}; its types: {', '.join(sorted(known))}")
        self.types, self.tenant, self.follow, self.start = set(types), tenant, follow, start
        self.skipped = 0  # records that are not events of the topic
        self.expected = 0
        self._consumer = confluent_kafka.Consumer(consumer_config(self.settings))
        try:
            self._partitions = self._assign()
        except BaseException:
            self._consumer.close()
            raise

    def _assign(self) -> list[int]:
        consumer = self._consumer
        metadata = consumer.list_topics(self.topic, timeout=10).topics.get(self.topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            raise TapError(f"topic {self.topic} does not exist on {self.settings.bootstrap_servers}"
                           f" (FC_TOPIC_NAMESPACE={self.settings.topic_namespace!r})")
        partitions = sorted(metadata.partitions)
        if self.start.at == "offsets":
            if missing := set(self.start.offsets) - set(partitions):
                raise TapError(f"{self.topic} has partitions 0-{len(partitions) - 1}, not {sorted(missing)}")
            partitions = sorted(self.start.offsets)
        marks = {p: consumer.get_watermark_offsets(confluent_kafka.TopicPartition(self.topic, p), timeout=10)
                 for p in partitions}
        if self.start.at == "since":
            assert self.start.since is not None
            ms = int(self.start.since.timestamp() * 1000)
            found = consumer.offsets_for_times([confluent_kafka.TopicPartition(self.topic, p, ms) for p in partitions],
                                               timeout=10)
            # -1: nothing at or after that time, so the partition's end.
            offsets = {tp.partition: tp.offset if tp.offset >= 0 else marks[tp.partition][1] for tp in found}
        elif self.start.at == "offsets":
            # within the log: below its start is its start, past its end is its end
            offsets = {p: min(max(o, marks[p][0]), marks[p][1]) for p, o in self.start.offsets.items()}
        else:
            offsets = {p: marks[p][0] if self.start.at == "beginning" else marks[p][1] for p in partitions}
        self.expected = sum(max(marks[p][1] - offsets[p], 0) for p in partitions)
        consumer.assign([confluent_kafka.TopicPartition(self.topic, p, offsets[p]) for p in partitions])
        return partitions

    def __iter__(self) -> Iterator[Record]:
        not_at_end = set(self._partitions)
        while self.follow or not_at_end:
            message = self._consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                if message.error().code() == confluent_kafka.KafkaError._PARTITION_EOF:
                    not_at_end.discard(message.partition())
                    continue
                if message.error().fatal() or message.error().code() in (
                        confluent_kafka.KafkaError.UNKNOWN_TOPIC_OR_PART, confluent_kafka.KafkaError._UNKNOWN_PARTITION):
                    raise TapError(f"{self.topic}: {message.error().str()}")
                log.warning("%s: %s", self.topic, message.error().str())
                continue
            record = self._decode(message)
            if record is not None and (not self.types or record.event.type in self.types) \
                    and (self.tenant is None or record.event.tenant == self.tenant):
                yield record

    def _decode(self, message: confluent_kafka.Message) -> Record | None:
        try:
            event = m.Envelope.from_bytes(message.value() or b"")
        except ValueError as exc:
            self.skipped += 1
            log.warning("%s[%d]@%d is not an event, skipped: %s", self.topic, message.partition(), message.offset(),
                        str(exc).splitlines()[0])
            return None
        kind, ms = message.timestamp()
        key = message.key()
        return Record(message.partition(), message.offset(),
                      datetime.fromtimestamp(ms / 1000, UTC) if kind != confluent_kafka.TIMESTAMP_NOT_AVAILABLE else None,
                      key.decode(errors="replace") if key is not None else None, event)

    def close(self) -> None:
        self._consumer.close()  # nothing to commit: auto commit is off and the tap never commits

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _following(reader: Reader) -> None:
    if reader.follow:
        log.info("following %s (partitions %s) from %s; Ctrl-C stops", reader.topic,
                 ",".join(map(str, reader._partitions)), reader.start.at)


def _progress(reader: Reader, enabled: bool, what: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=reader.expected or None, unit=" events", desc=what, file=sys.stderr,
                disable=not enabled, dynamic_ncols=True)


# --- the library ----------------------------------------------------------------------------------


def read_topic(topic: str, since: str | datetime | None = None, *, offsets: Iterable[str | tuple[int, int]] = (),
               types: Sequence[str] = (), tenant: str | None = None, settings: Settings | None = None,
               progress: bool = False) -> pl.DataFrame:
    """The committed events of a topic as a polars DataFrame, one typed column per payload field
    (`streams/frames.py`), rows by partition and offset. From the beginning unless `since` ("1h",
    or a datetime) or `offsets` ("P:O"); up to the end. No asyncio loop needed."""
    from streams import frames

    with Reader(topic, Start.of(since, offsets), types=types, tenant=tenant, settings=settings) as reader:
        with _progress(reader, progress, reader.spec.name) as bar:
            found = []
            for record in reader:
                found.append((record.partition, record.offset, record.event))
                bar.update()
        return frames.frame(reader.spec, sorted(found, key=lambda r: (r[0], r[1])))


def tail(topic: str, out: IO[bytes], start: Start = Start(), **options: Any) -> int:
    """Write the records as JSON lines (`Record.line`); returns how many."""
    written = 0
    with Reader(topic, start, **options) as reader:
        _following(reader)
        try:
            for record in reader:
                out.write(record.line() + b"\n")
                out.flush()
                written += 1
        except KeyboardInterrupt:
            pass
    return written


def capture(topic: str, path: Path, start: Start = Start(), *, progress: bool = False, **options: Any) -> int:
    """Write the events, one envelope per line: a fixture `replay` (and `devtools.replay`) feeds."""
    written = 0
    with Reader(topic, start, **options) as reader, path.open("wb") as out, \
            _progress(reader, progress, f"{reader.spec.name} -> {path.name}") as bar:
        _following(reader)
        try:
            for record in reader:
                out.write(record.event.to_bytes() + b"\n")
                written += 1
                bar.update()
        except KeyboardInterrupt:
            pass
    return written


def export(topic: str, path: Path, start: Start = Start(), *, progress: bool = True, **options: Any) -> int:
    """A `.parquet` file of `read_topic`'s frame, or a `.jsonl` file of envelopes (as `capture`)."""
    if path.suffix == ".jsonl":
        return capture(topic, path, start, progress=progress, **options)
    if path.suffix != ".parquet":
        raise TapError(f"{path}: export writes .parquet or .jsonl files")
    from streams import frames

    with Reader(topic, start, **options) as reader:
        with _progress(reader, progress, f"{reader.spec.name} -> {path.name}") as bar:
            found = []
            for record in reader:
                found.append((record.partition, record.offset, record.event))
                bar.update()
        df = frames.frame(reader.spec, sorted(found, key=lambda r: (r[0], r[1])))
    df.write_parquet(path)
    return df.height


def replay(paths: Sequence[Path], settings: Settings | None = None, progress: bool = True) -> int:
    """Feed fixture files into their topics with `devtools.replay` (also from inside a notebook's loop)."""
    from connectors.kafka import prepare_cluster
    from devtools import replay as feed

    settings = settings or load()
    prepare_cluster(settings)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(feed.replay(settings, list(paths), progress=progress))
    result: list[int] = []  # a running loop (a notebook): run it in a thread of its own
    thread = threading.Thread(target=lambda: result.append(asyncio.run(feed.replay(settings, list(paths), progress))))
    thread.start()
    thread.join()
    return result[0]


@dataclass(frozen=True)
class TopicInfo:
    name: str  # with the namespace
    key: str
    partitions: int
    retention: str
    event_types: tuple[str, ...]
    schema: str  # the JSON schema's path in the repository (devtools/generate.py)
    datasource: str | None  # the Druid datasource (druid_specs/<datasource>.json)
    dead_letters: str | None


def retention_text(spec: topics.TopicSpec) -> str:
    if spec.retention_ms < 0:
        text = "forever"
    elif spec.retention_ms % topics.DAY_MS == 0:
        text = f"{spec.retention_ms // topics.DAY_MS}d"
    else:
        text = f"{spec.retention_ms / 3_600_000:g}h"
    return f"{text}, compacted" if "compact" in spec.cleanup_policy else text


def catalog(settings: Settings | None = None) -> list[TopicInfo]:
    """Every topic of the registry, as the project creates it (`connectors.kafka.registry_topics`)."""
    settings = settings or load()
    return [
        TopicInfo(
            name=topics.full_name(settings.topic_namespace, spec.name), key=spec.key,
            partitions=settings.topic_partitions, retention=retention_text(spec),
            event_types=tuple(p.__name__ for p in spec.payloads),
            schema=f"schemas/{spec.name}.json", datasource=spec.datasource,
            dead_letters=topics.full_name(settings.topic_namespace, spec.dead_letter_name) if spec.consumed else None,
        )
        for spec in topics.ALL
    ]


# --- the command line -----------------------------------------------------------------------------


def _print_catalog(infos: list[TopicInfo], as_json: bool, out: IO[str]) -> None:
    if as_json:
        for info in infos:
            out.write(orjson.dumps(info.__dict__).decode() + "\n")
        return
    for info in infos:
        out.write(f"{info.name}\n")
        out.write(f"  key {info.key}, {info.partitions} partitions, retention {info.retention}\n")
        out.write(f"  events: {', '.join(info.event_types)}\n")
        out.write(f"  schema: {info.schema}")
        out.write(f"; Druid: {info.datasource} (druid_specs/{info.datasource}.json)" if info.datasource else "")
        out.write(f"; dead letters: {info.dead_letters}\n" if info.dead_letters else "\n")


def _argument(parse: Any) -> Any:
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return convert


def _reading_options(parser: argparse.ArgumentParser, follow: bool = True) -> None:
    parser.add_argument("topic", help="the registry's name, such as orders.events (the namespace is added)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--from-beginning", action="store_true", help="from the first record (the default)")
    where.add_argument("--since", type=_argument(parse_since), metavar="WHEN",
                       help="records written since: 90s, 15m, 2h, 1d, 1h30m, or an ISO 8601 time")
    where.add_argument("--offset", action="append", type=_argument(parse_offset), default=[], metavar="P:O",
                       help="partition P from offset O (repeatable; only the partitions named)")
    parser.add_argument("--type", action="append", default=[], metavar="T", help="only events of this type (repeatable)")
    parser.add_argument("--tenant", help="only events of this tenant")
    if follow:
        parser.add_argument("--follow", "-f", action="store_true",
                            help="keep reading new records until Ctrl-C (from the end unless told where)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fc-tap", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("topics", help="every topic: key, partitions, retention, events, schema, Druid")
    listing.add_argument("--json", action="store_true", help="one JSON object per topic")
    _reading_options(commands.add_parser("tail", help="committed events as JSON lines"))
    exporting = commands.add_parser("export", help="to a .parquet or .jsonl file, with a progress bar")
    _reading_options(exporting, follow=False)
    exporting.add_argument("--to", type=Path, required=True, metavar="FILE")
    capturing = commands.add_parser("capture", help="events to a fixture file that replay feeds")
    _reading_options(capturing)
    capturing.add_argument("--to", type=Path, required=True, metavar="FILE.jsonl")
    replaying = commands.add_parser("replay", help="feed fixture files into their topics (devtools/replay.py)")
    replaying.add_argument("files", nargs="+", type=Path, metavar="FILE.jsonl")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="[fc-tap] %(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    settings = load()
    try:
        if args.command == "topics":
            _print_catalog(catalog(settings), args.json, sys.stdout)
            return
        if args.command == "replay":
            total = replay(args.files, settings)
            print(f"[fc-tap] {total} events replayed", file=sys.stderr)
            return
        follow = getattr(args, "follow", False)
        start = Start.of(args.since, args.offset, args.from_beginning, follow)
        options = {"types": args.type, "tenant": args.tenant, "follow": follow, "settings": settings}
        if args.command == "tail":
            tail(args.topic, sys.stdout.buffer, start, **options)
        elif args.command == "export":
            count = export(args.topic, args.to, start, **options)
            print(f"[fc-tap] {count} events -> {args.to}", file=sys.stderr)
        else:
            count = capture(args.topic, args.to, start, progress=True, **options)
            print(f"[fc-tap] {count} events -> {args.to} (python -m streams.tap replay {args.to})", file=sys.stderr)
    except TapError as exc:
        raise SystemExit(f"fc-tap: {exc}") from None
    except BrokenPipeError:  # `fc-tap tail ... | head`
        sys.stderr.close()


if __name__ == "__main__":
    main()
