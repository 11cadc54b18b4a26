"""`make run`'s SMTP server (aiosmtpd): takes every message and keeps it as an .eml file.

    python -m devtools.smtp     # 127.0.0.1:FC_SMTP_PORT (8025), files in FC_MAIL_DIR (.data/mail)

Each message accepted is written whole (the bytes received, with a `Received`-free copy of the
envelope in `X-Envelope-From` / `X-Envelope-To` headers first) to `<dir>/<time>-<n>.eml`, through a
temporary file and a rename, so a reader never sees half of one. The integration tests run the
same handler on a free port (`MailDrop`, `serve`). Not a mail relay: nothing is delivered anywhere.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import itertools
import logging
import os
import signal
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

log = logging.getLogger("smtp")


class MailDrop:
    """An aiosmtpd handler keeping each message as an .eml file in `directory`; with `delay`, the
    answer comes that many seconds after the message is kept (tests: a slow server, and a client
    that dies after the server kept a message and before it heard so). `deferrals` maps a text to
    how many more messages containing it to answer `451` without keeping them (tests: a temporary
    refusal, tried again by the notifications agent)."""

    def __init__(self, directory: Path, delay: float = 0.0) -> None:
        self.directory = directory
        self.delay = delay
        self.deferrals: dict[str, int] = {}
        self.directory.mkdir(parents=True, exist_ok=True)
        self.counter = itertools.count()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        content = envelope.original_content or envelope.content
        for text, left in self.deferrals.items():
            if left > 0 and text.encode() in content:
                self.deferrals[text] = left - 1
                log.info("deferred a message containing %r (%d more to defer)", text, left - 1)
                return "451 4.3.0 Try again later"
        head = (f"X-Envelope-From: {envelope.mail_from}\r\n"
                f"X-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n").encode()
        name = f"{time.time_ns()}-{os.getpid()}-{next(self.counter)}.eml"
        partial = self.directory / f".{name}.tmp"
        partial.write_bytes(head + content)
        partial.rename(self.directory / name)
        log.info("kept a message for %s as %s", ", ".join(envelope.rcpt_tos), self.directory / name)
        if self.delay:
            await asyncio.sleep(self.delay)
        return "250 Message accepted for delivery"


def read_messages(directory: Path) -> list[EmailMessage]:
    """Every message kept in `directory`, oldest first."""
    found = sorted(directory.glob("*.eml"), key=lambda path: tuple(int(n) for n in path.stem.split("-")))
    return [email.message_from_bytes(path.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
            for path in found]


def serve(directory: Path, port: int, host: str = "127.0.0.1", delay: float = 0.0) -> Controller:
    """Start the server in a thread of its own; `.stop()` ends it."""
    controller = Controller(MailDrop(directory, delay), hostname=host, port=port)
    controller.start()
    return controller


def main() -> None:
    from streams import logs
    from streams.settings import load

    settings = load()
    logs.configure(settings, "smtp")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's line per SMTP command
    controller = serve(settings.mail_dir, settings.smtp_port)
    log.info("SMTP server on smtp://127.0.0.1:%d, keeping messages in %s", settings.smtp_port, settings.mail_dir)

    async def until_stopped() -> None:
        stopped = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(signum, stopped.set)
        await stopped.wait()

    try:
        asyncio.run(until_stopped())
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
