"""Email through SMTP (aiosmtplib): the notifications agent's one outside call.

`SMTP_URL` names the server: `smtp://[user:password@]host[:port]` (plain, port 25),
`smtp+starttls://...` (STARTTLS required, port 587) or `smtps://...` (TLS from the first byte, port
465); user and password are percent-decoded. A send makes attempts until it is accepted, refused
for good (a 5xx answer) or `deadline` seconds have passed (connection failures, timeouts and 4xx
answers are tried again after a short pause); it never raises for the server's sake, it says what
became of the message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Literal, Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib

log = logging.getLogger(__name__)

PAUSES = (0.2, 0.5, 1.0)
DEFAULT_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}


@dataclass(frozen=True)
class Sent:
    outcome: Literal["sent", "refused"]
    detail: str | None = None


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> Sent: ...


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    use_tls: bool = False
    start_tls: bool = False

    @classmethod
    def parse(cls, url: str) -> SmtpServer:
        parts = urlsplit(url)
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise ValueError("SMTP_URL is smtp://[user:password@]host[:port], smtp+starttls://... or smtps://...")
        return cls(host=parts.hostname, port=parts.port or DEFAULT_PORTS[parts.scheme],
                   username=unquote(parts.username) if parts.username else None,
                   password=unquote(parts.password) if parts.password else None,
                   use_tls=parts.scheme == "smtps", start_tls=parts.scheme == "smtp+starttls")


class SmtpMailer:
    def __init__(self, server: SmtpServer, deadline: float) -> None:
        self.server = server
        self.deadline = deadline

    async def send(self, message: EmailMessage) -> Sent:
        ends = time.monotonic() + self.deadline
        last = "no attempt"
        for attempt in range(len(PAUSES) + 1):
            left = ends - time.monotonic()
            if left <= 0:
                break
            try:
                await asyncio.wait_for(self._send_once(message, left), left)
                return Sent("sent")
            except aiosmtplib.SMTPResponseException as exc:
                last = f"{exc.code} {exc.message}"
                if exc.code >= 500:
                    return Sent("refused", f"the SMTP server refused it: {last}")
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                last = repr(exc)
            if attempt < len(PAUSES):
                await asyncio.sleep(min(PAUSES[attempt], max(ends - time.monotonic(), 0)))
        log.warning("mail %s not sent within %.1fs: %s", message["Message-ID"], self.deadline, last)
        return Sent("refused", f"the SMTP server did not take it within {self.deadline:g}s: {last}")

    async def _send_once(self, message: EmailMessage, timeout: float) -> None:
        server = self.server
        await aiosmtplib.send(message, hostname=server.host, port=server.port, username=server.username,
                              password=server.password, use_tls=server.use_tls, start_tls=server.start_tls,
                              timeout=timeout)
