"""Email through SMTP (aiosmtplib): the notifications agent's one outside call.

`SMTP_URL` names the server: `smtp://[user:password@]host[:port]` (plain, port 25),
`smtp+starttls://...` (STARTTLS required, port 587) or `smtps://...` (TLS from the first byte, port
465); user and password are percent-decoded. A send is one attempt, bounded by `deadline` seconds;
it never raises for the server's sake, it says what became of the message: `sent` (accepted),
`refused` (a permanent refusal: a 5xx answer) or `deferred` (a temporary failure: a 4xx answer, no
connection, no answer in time), which the notifications agent tries again later on its retry
schedule (streams/tables/notifications.py).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Literal, Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}


@dataclass(frozen=True)
class Sent:
    outcome: Literal["sent", "refused", "deferred"]
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


def classify(code: int, reply: str) -> Sent:
    """An SMTP server's refusal: 5xx for good, anything else (4xx) for now."""
    if code >= 500:
        return Sent("refused", f"the SMTP server refused it: {reply}")
    return Sent("deferred", f"the SMTP server deferred it: {reply}")


class SmtpMailer:
    def __init__(self, server: SmtpServer, deadline: float) -> None:
        self.server = server
        self.deadline = deadline

    async def send(self, message: EmailMessage) -> Sent:
        try:
            await asyncio.wait_for(self._send_once(message, self.deadline), self.deadline)
            return Sent("sent")
        except aiosmtplib.SMTPResponseException as exc:
            found = classify(exc.code, f"{exc.code} {exc.message}")
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [refused.code for refused in exc.recipients]
            reply = "; ".join(f"{refused.code} {refused.message}" for refused in exc.recipients)
            found = classify(min(codes, default=400), reply)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            found = Sent("deferred", f"the SMTP server was not reached or did not answer within "
                                     f"{self.deadline:g}s: {exc!r}")
        log.warning("mail %s %s: %s", message["Message-ID"], found.outcome, found.detail)
        return found

    async def _send_once(self, message: EmailMessage, timeout: float) -> None:
        server = self.server
        await aiosmtplib.send(message, hostname=server.host, port=server.port, username=server.username,
                              password=server.password, use_tls=server.use_tls, start_tls=server.start_tls,
                              timeout=timeout)
