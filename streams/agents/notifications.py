"""Notifications agent: tells customers and vendors what happened, by email through SMTP.

Inputs: `orders.events` (OrderStatusChanged; key order id), `shipments.events` (ShipmentCreated,
ShipmentStatusChanged; key order id), `campaigns.events` (the funnel; key `<tenant>/<campaign_id>`)
and its own `notifications.commands` (RetryNotifications, from its retry timer; keyed as the
table). It runs in a group of its own (`python -m streams --agents notifications`, `make run`'s
`notifications` process), never in the default worker, so a slow SMTP server slows notifications
only.
State: table `notifications` (Notifications), keyed as its sources: an order's customer, a
campaign's pledgers and terms, the record of every message by Message-ID, and the messages waiting
for another attempt (their earliest next time is the table's deadline).
Outputs: email (connectors/mail.py); `notifications.events` (NotificationSent: one per message that
reached its final outcome, sent or refused; keyed as the table), which Druid ingests.

Which events give which messages is decided in `streams/tables/notifications.py`, and so is what
becomes of an attempt: a temporary failure (4xx, no connection, no answer in time) waits for the
next wait of FC_MAIL_RETRY_SCHEDULE, when the timer asks with `RetryNotifications`; a permanent one
(5xx), or the schedule run out, is recorded `refused`. Sending is an outside call, parked per key
(streams/runtime/task.py): other keys go on, and the partition's committed offset stays at the
first event whose messages are not sent and recorded. A message is sent once per event: its
Message-ID is fixed by the event, and its record (or its place among the waiting) commits with the
state before any later attempt; an event processed again finds it and sends nothing. At the SMTP hop
it is at least once: a worker killed after the server accepted a message and before the record
committed sends it again, with the same Message-ID.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from datetime import datetime, timedelta

from connectors.mail import Mailer, SmtpMailer, SmtpServer
from connectors.mail_templates import render
from streams import topics
from streams.models import Envelope, Mail, Notifications, RetryNotifications, utc_now
from streams.runtime.agent import Agent, Deadline, Table, Tables
from streams.settings import Settings
from streams.tables import notifications
from streams.tables.decision import Decision

TABLE = Table("notifications", Notifications)
SOURCES = (topics.ORDERS_EVENTS, topics.CAMPAIGNS_EVENTS, topics.SHIPMENTS_EVENTS, topics.NOTIFICATIONS_COMMANDS)


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


def retry(key: bytes, state: Notifications) -> Envelope:
    return Envelope.new(state.tenant, RetryNotifications(key=key.decode()))


async def send_all(sender: Mailer, mail_from: str, key: str, state: Notifications, mails: list[Mail],
                   schedule: Sequence[timedelta]) -> Decision[Notifications]:
    told = []
    for mail in mails:
        assert mail.to is not None
        sent = await sender.send(render(mail, mail_from, utc_now()))
        state, events = notifications.attempted(state, key, mail, sent.outcome, sent.detail, utc_now(), schedule)
        told += events
    return Decision(state, told)


def agent(settings: Settings, sender: Mailer | None = None) -> Agent:
    found = directory(settings)
    chosen = sender if sender is not None else mailer(settings)
    schedule = settings.mail_retry_schedule

    def decide(state: Notifications | None, event: Envelope, now: datetime, tables: Tables
               ) -> Decision[Notifications | None] | Awaitable[Decision[Notifications]]:
        if isinstance(event.payload, RetryNotifications):
            updated, mails = state, notifications.due(state, now)
        else:
            updated, mails = notifications.plan(state, event, found)
        if not mails or updated is None:
            return Decision(updated)
        key = topics.route(event)[1].decode()
        return send_all(chosen, settings.mail_from, key, updated, mails, schedule)

    return Agent(name="notifications", sources=SOURCES, table=TABLE, decide=decide, calls_outside=True,
                 deadline=Deadline(due_at=notifications.next_attempt, ask=retry))
