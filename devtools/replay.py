"""Feed fixture events into the topics: `python -m devtools.replay tests/fixtures/catalog.jsonl ...`.

Each line of a JSONL file is one envelope. Events go to the topic the registry names for their
type, keyed as every other producer keys them; existing event ids are kept, so replaying a file
twice yields the same events again (consumers are idempotent on them).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from connectors.kafka import EventWriter, prepare_cluster
from streams.models import Envelope
from streams.settings import Settings, load


def read_fixture(path: Path) -> list[Envelope]:
    events = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                events.append(Envelope.model_validate_json(line))
            except ValueError as exc:
                raise SystemExit(f"{path}:{number}: not a valid event: {exc}") from None
    return events


async def replay(settings: Settings, paths: list[Path], progress: bool = True) -> int:
    writer = EventWriter(settings, client_id="replay")
    await writer.start()
    written = 0
    try:
        for path in paths:
            events = read_fixture(path)
            for event in events:
                await writer.write(event)
                written += 1
            if progress:
                print(f"[replay] {path}: {len(events)} events written", flush=True)
    finally:
        await writer.close()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args()
    settings = load()
    prepare_cluster(settings)
    total = asyncio.run(replay(settings, args.files))
    print(f"[replay] {total} events in all", file=sys.stderr)


if __name__ == "__main__":
    main()
