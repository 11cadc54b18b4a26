"""Notifications agent: tells customers and vendors what happened, by email through SMTP.

Inputs: `orders.events` (OrderStatusChanged; key order id), `shipments.events` (ShipmentCreated,
ShipmentStatusChanged; key order id; read once the topic is in the registry) and `campaigns.events`
(the funnel; key `<tenant>/<campaign_id>`). It runs in a group of its own (`python -m streams
--agents notifications`, `make run`'s `notifications` process), never in the default worker, so a
slow SMTP server slows notifications only.
State: table `notifications` (Notifications), keyed as its sources: an order's customer, a
campaign's pledgers and terms, and the Message-ID of every message sent.
Outputs: email (connectors/mail.py); no topic.

Which events give which messages is decided in `streams/tables/notifications.py`. Sending is an
outside call, parked per key (streams/runtime/task.py): other keys go on, and the partition's
committed offset stays at the first event whose messages are not sent and recorded. A message is
sent once per event: its Message-ID is fixed by the event, and its record commits with the state;
an event processed again finds it and sends nothing. At the SMTP hop it is at least once: a worker
killed after the server accepted a message and before the record committed sends it again, with
the same Message-ID.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime

from connectors.mail import Mailer, SmtpMailer, SmtpServer
from connectors.mail_templates import render
from streams import topics
from streams.models import Envelope, Mail, MailRecord, Notifications, utc_now
from streams.runtime.agent import Agent, Table, Tables
from streams.settings import Settings
from streams.tables import notifications
from streams.tables.decision import Decision

TABLE = Table("notifications", Notifications)
# shipments.events joins once the shipping context registers it.
SOURCES = (topics.ORDERS_EVENTS, topics.CAMPAIGNS_EVENTS,
           *(spec for spec in topics.ALL if spec.name == "shipments.events"))


def directory(settings: Settings) -> notifications.Directory:
    return notifications.Directory(customer_address=settings.mail_customer_address,
                                   vendor_address=settings.mail_vendor_address, locale=settings.mail_locale)


def mailer(settings: Settings) -> SmtpMailer:
    if not settings.smtp_url:
        raise SystemExit("the notifications agent needs SMTP_URL outside development mode: "
                         "smtp://user:password@host:port, smtp+starttls://... or smtps://...")
    try:
        server = SmtpServer.parse(settings.smtp_url)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    return SmtpMailer(server, settings.smtp_timeout_seconds)


async def send_all(sender: Mailer, mail_from: str, state: Notifications, mails: list[Mail]
                   ) -> Decision[Notifications]:
    for mail in mails:
        assert mail.to is not None
        sent = await sender.send(render(mail, mail_from, utc_now()))
        state = notifications.record(state, mail, MailRecord(kind=mail.kind, to=mail.to, outcome=sent.outcome,
                                                              detail=sent.detail))
    return Decision(state)


def agent(settings: Settings, sender: Mailer | None = None) -> Agent:
    found = directory(settings)
    chosen = sender if sender is not None else mailer(settings)

    def decide(state: Notifications | None, event: Envelope, now: datetime, tables: Tables
               ) -> Decision[Notifications | None] | Awaitable[Decision[Notifications]]:
        updated, mails = notifications.plan(state, event, found)
        if not mails or updated is None:
            return Decision(updated)
        return send_all(chosen, settings.mail_from, updated, mails)

    return Agent(name="notifications", sources=SOURCES, table=TABLE, decide=decide, calls_outside=True)
