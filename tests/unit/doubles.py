"""Test doubles shared by the gateway's unit tests."""

from __future__ import annotations

from streams import topics
from streams.models import Envelope


class RecordingWriter:
    """Stands in for the gateway's `EventWriter`: keeps what it is asked to write and answers the
    topic the registry routes it to, as the real one does; with `fail` set, the broker is gone."""

    def __init__(self) -> None:
        self.written: list[Envelope] = []
        self.fail = False

    async def write(self, event: Envelope) -> tuple[str, int]:
        if self.fail:
            raise RuntimeError("the broker is gone")
        self.written.append(event)
        return topics.route(event)[0].name, 0
