"""Which events give which messages to whom (streams/tables/notifications.py), and their rendering."""

from __future__ import annotations

import socket
import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest

from connectors.mail import Sent, SmtpMailer, SmtpServer, classify
from connectors.mail_templates import TEMPLATES, render
from streams.models import (
    CampaignFailed,
    CampaignOpened,
    CampaignSucceeded,
    Envelope,
    Mail,
    MailRecord,
    Money,
    Notifications,
    NotificationSent,
    OrderStatusChanged,
    PledgeAccepted,
    PledgeWithdrawn,
    RetryNotifications,
    ShipmentCreated,
    ShipmentLine,
    ShipmentStatusChanged,
    WaitingMail,
)
from streams.agents import notifications as notifications_agent
from streams.settings import Settings
from streams.tables.decision import Decision
from streams.tables.notifications import Directory, attempted, due, message_id, money, next_attempt, plan, record

ORDER = uuid.UUID("11111111-2222-4333-8444-555555555555")
SHIPMENT = uuid.UUID("99999999-2222-4333-8444-555555555555")
AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DIRECTORY = Directory()


def event(payload, n: int = 1) -> Envelope:  # type: ignore[no-untyped-def]
    return Envelope.new("acme", payload, event_id=uuid.UUID(int=n), occurred_at=AT)


def status(value: str, reason: str | None = None) -> OrderStatusChanged:
    return OrderStatusChanged(order_id=ORDER, customer="alice", status=value, previous_status=None, reason=reason,
                              total=Money(amount=2598, currency="EUR"), item_count=2)


def shipped(n: int = 7) -> Envelope:
    return event(ShipmentCreated(order_id=ORDER, shipment_id=SHIPMENT, lines=(ShipmentLine(sku="MUG-1", quantity=2),),
                                 carrier="ups", tracking_number="1Z999", tracking_url="https://track.example/1Z999"), n)


def delivered(n: int = 8, value: str = "delivered") -> Envelope:
    return event(ShipmentStatusChanged(order_id=ORDER, shipment_id=SHIPMENT, status=value, carrier="ups",
                                       tracking_number="1Z999", occurred_at=AT), n)


@pytest.mark.parametrize(("value", "reason", "expected"), [
    ("confirmed", None, [("order_confirmed", "alice@acme.customers.example"),
                         ("vendor_order_to_ship", "orders@acme.vendors.example")]),
    ("payment_failed", "payment_failed: Your card was declined.", [("payment_failed", "alice@acme.customers.example")]),
    ("expired", "hold_expired: the order was not paid in time", [("hold_expired", "alice@acme.customers.example")]),
    ("delivered", None, [("delivered", "alice@acme.customers.example")]),
    ("partially_shipped", None, []),
    ("shipped", None, []),
    ("pending", None, []),
    ("reserved", None, []),
    ("payment_pending", None, []),
    ("paid", None, []),
    ("cancelled", "payment_failed: Your card was declined.", []),
    ("rejected", "out of stock", []),
])
def test_order_statuses_give_their_messages(value: str, reason: str | None, expected: list[tuple[str, str]]) -> None:
    state, mails = plan(None, event(status(value, reason)), DIRECTORY)
    assert [(mail.kind, mail.to) for mail in mails] == expected
    assert (state is None) == (not expected)


def test_a_confirmed_order_tells_total_and_items_and_the_vendor_who_ordered() -> None:
    _, (customer, vendor) = plan(None, event(status("confirmed")), DIRECTORY)
    assert customer.values == {"order_id": str(ORDER), "total": "25.98 EUR", "item_count": "2"}
    assert vendor.values == {"order_id": str(ORDER), "total": "25.98 EUR", "item_count": "2", "customer": "alice"}


def test_a_failed_payment_tells_stripes_reason() -> None:
    _, (mail,) = plan(None, event(status("payment_failed", "payment_failed: Your card was declined.")), DIRECTORY)
    assert mail.values["reason"] == "Your card was declined."


def test_message_ids_are_fixed_by_the_event_kind_and_recipient() -> None:
    confirmed = event(status("confirmed"), n=5)
    _, first = plan(None, confirmed, DIRECTORY)
    _, again = plan(None, confirmed, Directory(customer_address="{sub}@elsewhere.example"))
    assert [m.message_id for m in first] == [m.message_id for m in again]
    assert first[0].message_id == message_id(confirmed, "order_confirmed", "customer")
    assert first[0].message_id != first[1].message_id
    assert first[0].message_id.startswith("<") and first[0].message_id.endswith("@notifications.fusioncommerce.example>")
    _, other = plan(None, event(status("confirmed"), n=6), DIRECTORY)
    assert other[0].message_id != first[0].message_id


def test_an_event_whose_messages_were_recorded_sends_nothing_again() -> None:
    confirmed = event(status("confirmed"))
    state, mails = plan(None, confirmed, DIRECTORY)
    assert state is not None
    for mail in mails:
        assert mail.to is not None
        state = record(state, mail, MailRecord(kind=mail.kind, to=mail.to, outcome="sent"))
    again, none = plan(state, confirmed, DIRECTORY)
    assert none == [] and again == state
    assert set(state.sent) == {mail.message_id for mail in mails}


def test_shipped_goes_to_the_orders_customer_with_the_tracking_link() -> None:
    state, _ = plan(None, event(status("confirmed")), DIRECTORY)
    _, (ship,) = plan(state, shipped(), DIRECTORY)
    assert (ship.kind, ship.to) == ("shipped", "alice@acme.customers.example")
    assert ship.values == {"order_id": str(ORDER), "shipment_id": str(SHIPMENT), "carrier": "ups",
                           "tracking_number": "1Z999", "tracking_url": "https://track.example/1Z999",
                           "items": "2 x MUG-1"}


def test_an_order_shipped_in_two_parts_is_shipped_twice_and_delivered_once() -> None:
    second = uuid.UUID("88888888-2222-4333-8444-555555555555")
    # Given a confirmed order shipped in two parcels
    state, _ = plan(None, event(status("confirmed"), 1), DIRECTORY)
    state, first_parcel = plan(state, shipped(2), DIRECTORY)
    state, second_parcel = plan(state, event(ShipmentCreated(
        order_id=ORDER, shipment_id=second, lines=(ShipmentLine(sku="TEA-1", quantity=1),), carrier="dhl",
        tracking_number="JD01", tracking_url="https://track.example/JD01"), 3), DIRECTORY)
    # Then each parcel is told once, with its own tracking link
    assert [(m.kind, m.to, m.values["tracking_url"], m.values["items"]) for m in (*first_parcel, *second_parcel)] == [
        ("shipped", "alice@acme.customers.example", "https://track.example/1Z999", "2 x MUG-1"),
        ("shipped", "alice@acme.customers.example", "https://track.example/JD01", "1 x TEA-1")]
    # When the first parcel is delivered (the order is still `shipped`), nobody is told
    assert plan(state, delivered(4), DIRECTORY) == (state, [])
    assert plan(state, event(status("shipped"), 5), DIRECTORY) == (state, [])
    # When the second is delivered, its shipment's status tells nobody either ...
    assert plan(state, event(ShipmentStatusChanged(order_id=ORDER, shipment_id=second, status="delivered",
                                                   carrier="dhl", tracking_number="JD01", occurred_at=AT), 6),
                DIRECTORY) == (state, [])
    # ... and the order's `delivered` status tells the customer once, for the whole order
    state, mails = plan(state, event(status("delivered"), 7), DIRECTORY)
    assert [(m.kind, m.to, m.values) for m in mails] == [
        ("delivered", "alice@acme.customers.example", {"order_id": str(ORDER), "total": "25.98 EUR", "item_count": "2"})]
    assert mails[0].message_id == message_id(event(status("delivered"), 7), "delivered", "customer")
    assert state is not None
    state = record(state, mails[0], MailRecord(kind="delivered", to="alice@acme.customers.example", outcome="sent"))
    assert plan(state, event(status("delivered"), 7), DIRECTORY) == (state, [])


@pytest.mark.parametrize("value", ["label_created", "in_transit", "out_for_delivery", "exception", "returned",
                                   "delivered"])
def test_shipment_statuses_tell_nobody(value: str) -> None:
    state, _ = plan(None, event(status("confirmed")), DIRECTORY)
    assert plan(state, delivered(value=value), DIRECTORY) == (state, [])


@pytest.mark.parametrize("value", ["partially_shipped", "shipped"])
def test_an_order_not_wholly_delivered_tells_nobody(value: str) -> None:
    state, _ = plan(None, event(status("confirmed")), DIRECTORY)
    assert plan(state, event(status(value), 2), DIRECTORY) == (state, [])


def test_the_delivered_message_speaks_of_the_whole_order() -> None:
    _, (mail,) = plan(None, event(status("delivered")), DIRECTORY)
    message = render(mail, "shop@example.com", AT)
    assert message["Subject"] == f"Your order {ORDER} was delivered"
    text, _ = message.iter_parts()  # type: ignore[misc]
    assert text.get_content() == (f"Every parcel of your order {ORDER} was delivered: 2 items, 25.98 EUR. Enjoy!\n"
                                  "-- \nFusionCommerce\n")


def test_a_shipment_read_before_its_order_waits_for_the_customer() -> None:
    # Given a shipment event read before any status event of its order
    state, mails = plan(None, shipped(), DIRECTORY)
    assert mails == [] and state is not None and [h.kind for h in state.held] == ["shipped"]
    # (read again, it is held once)
    state, mails = plan(state, shipped(), DIRECTORY)
    assert mails == [] and len(state.held) == 1  # type: ignore[union-attr]
    # When the order's confirmation arrives, the held message goes with the confirmation's
    state, mails = plan(state, event(status("confirmed")), DIRECTORY)
    assert [(m.kind, m.to) for m in mails] == [("shipped", "alice@acme.customers.example"),
                                               ("order_confirmed", "alice@acme.customers.example"),
                                               ("vendor_order_to_ship", "orders@acme.vendors.example")]
    assert state is not None
    for mail in mails:
        state = record(state, mail, MailRecord(kind=mail.kind, to=mail.to or "", outcome="sent"))
    assert state.held == ()


def campaign_events() -> list[Envelope]:
    return [
        event(CampaignOpened(campaign_id="mug-club", sku="MUG-1", group_price=Money(amount=999, currency="EUR"),
                             target_quantity=2, max_quantity=3, ends_at=AT), 1),
        event(PledgeAccepted(campaign_id="mug-club", sku="MUG-1", customer="alice", quantity=1, delta=1,
                             replaced=False), 2),
        event(PledgeAccepted(campaign_id="mug-club", sku="MUG-1", customer="bob", quantity=2, delta=2,
                             replaced=False), 3),
        event(PledgeAccepted(campaign_id="mug-club", sku="MUG-1", customer="carol", quantity=1, delta=1,
                             replaced=False), 4),
        event(PledgeWithdrawn(campaign_id="mug-club", sku="MUG-1", customer="carol", delta=-1), 5),
    ]


def test_a_failed_campaign_tells_each_remaining_pledger() -> None:
    state = None
    for funnel in campaign_events():
        state, mails = plan(state, funnel, DIRECTORY)
        assert mails == []
    _, mails = plan(state, event(CampaignFailed(campaign_id="mug-club", sku="MUG-1", pledged_quantity=3,
                                                reason="target not reached"), 6), DIRECTORY)
    assert [(m.kind, m.to, m.values["quantity"]) for m in mails] == [
        ("campaign_failed", "alice@acme.customers.example", "1"), ("campaign_failed", "bob@acme.customers.example", "2")]
    assert mails[0].values["reason"] == "target not reached"


def test_a_succeeded_campaign_tells_each_pledger_the_group_price() -> None:
    state = None
    for funnel in campaign_events():
        state, _ = plan(state, funnel, DIRECTORY)
    _, mails = plan(state, event(CampaignSucceeded(campaign_id="mug-club", sku="MUG-1", pledged_quantity=3,
                                                   participants=2, orders=2), 6), DIRECTORY)
    assert [(m.kind, m.to, m.values["group_price"]) for m in mails] == [
        ("campaign_succeeded", "alice@acme.customers.example", "9.99 EUR"),
        ("campaign_succeeded", "bob@acme.customers.example", "9.99 EUR")]
    assert len({m.message_id for m in mails}) == 2


@pytest.mark.parametrize(("sub", "tenant", "address"), [
    ("alice", "acme", "alice@acme.customers.example"),
    ("Bob.Smith+x", "Shop_1", "Bob.Smith+x@shop-1.customers.example"),
    ("auth0|1234", "acme", "u-"),  # not a safe local part: a stable hash of it
])
def test_the_directory_derives_addresses(sub: str, tenant: str, address: str) -> None:
    assert DIRECTORY.customer(tenant, sub).startswith(address)
    assert DIRECTORY.customer(tenant, sub) == DIRECTORY.customer(tenant, sub)


@pytest.mark.parametrize(("amount", "currency", "text"), [
    (2598, "EUR", "25.98 EUR"), (5, "USD", "0.05 USD"), (1500, "JPY", "1500 JPY")])
def test_money_in_minor_units_reads_in_major_units(amount: int, currency: str, text: str) -> None:
    assert money(Money(amount=amount, currency=currency)) == text


def test_every_kind_has_a_template_in_english() -> None:
    kinds = {"order_confirmed", "payment_failed", "hold_expired", "shipped", "delivered", "campaign_succeeded",
             "campaign_failed", "vendor_order_to_ship"}
    assert set(TEMPLATES["en"]) == kinds


def test_rendering_gives_text_and_html_alternatives_with_the_message_id() -> None:
    _, (mail, _) = plan(None, event(status("confirmed")), DIRECTORY)
    mail = mail.model_copy(update={"values": {**mail.values, "order_id": "<b>&"}})
    message = render(mail, "Shop <shop@example.com>", AT)
    assert message["Message-ID"] == mail.message_id
    assert message["To"] == "alice@acme.customers.example" and message["From"] == "Shop <shop@example.com>"
    assert message["Subject"] == "Your order <b>& is confirmed"
    assert message.get_content_type() == "multipart/alternative"
    text, page = message.iter_parts()  # type: ignore[misc]
    assert text.get_content_type() == "text/plain" and "25.98 EUR" in text.get_content()
    assert page.get_content_type() == "text/html" and "&lt;b&gt;&amp;" in page.get_content()


def test_a_locale_without_the_kind_falls_back_to_english() -> None:
    _, (mail,) = plan(None, event(status("expired")), Directory(locale="fr"))
    assert render(mail, "shop@example.com", AT)["Subject"] == f"Your order {ORDER} expired"


@pytest.mark.parametrize(("url", "expected"), [
    ("smtp://127.0.0.1:8025", SmtpServer("127.0.0.1", 8025)),
    ("smtp+starttls://me%40x:p%3Ass@mail.example", SmtpServer("mail.example", 587, "me@x", "p:ss", start_tls=True)),
    ("smtps://u:p@mail.example:2465", SmtpServer("mail.example", 2465, "u", "p", use_tls=True)),
])
def test_smtp_urls(url: str, expected: SmtpServer) -> None:
    assert SmtpServer.parse(url) == expected


def test_a_bad_smtp_url_is_refused() -> None:
    with pytest.raises(ValueError, match="SMTP_URL"):
        SmtpServer.parse("http://mail.example")


# -- retries (attempted, due, next_attempt) -----------------------------------------------------------

SCHEDULE = (timedelta(seconds=30), timedelta(minutes=2), timedelta(minutes=10), timedelta(hours=1),
            timedelta(hours=6))
KEY = str(ORDER)


def confirmed_and_planned() -> tuple[Notifications, Mail]:
    state, (mail, _) = plan(None, event(status("confirmed")), DIRECTORY)
    assert state is not None
    return state, mail


def test_a_deferred_message_waits_for_the_schedules_first_wait() -> None:
    state, mail = confirmed_and_planned()
    # When the server answers 451
    state, told = attempted(state, KEY, mail, "deferred", "the SMTP server deferred it: 451 try later", AT, SCHEDULE)
    # Then the message waits 30 s, is told nowhere yet, and is not planned again by its event
    assert told == []
    assert state.waiting == (WaitingMail(mail=mail, attempts=1, next_attempt_at=datetime(2026, 12, 1, 12, 0, 30, tzinfo=UTC),
                                         detail="the SMTP server deferred it: 451 try later"),)
    assert mail.message_id not in state.sent
    assert next_attempt(state) == datetime(2026, 12, 1, 12, 0, 30, tzinfo=UTC)
    again, mails = plan(state, event(status("confirmed")), DIRECTORY)
    assert [m.kind for m in mails] == ["vendor_order_to_ship"] and again == state
    # And it is due at its time, not before
    assert due(state, datetime(2026, 12, 1, 12, 0, 29, tzinfo=UTC)) == []
    assert due(state, datetime(2026, 12, 1, 12, 0, 30, tzinfo=UTC)) == [mail]


def test_a_message_sent_on_its_second_attempt_is_recorded_and_told_once() -> None:
    state, mail = confirmed_and_planned()
    state, _ = attempted(state, KEY, mail, "deferred", "451 later", AT, SCHEDULE)
    state, told = attempted(state, KEY, mail, "sent", None, AT + timedelta(seconds=31), SCHEDULE)
    assert state.waiting == () and next_attempt(state) is None
    assert state.sent[mail.message_id] == MailRecord(kind="order_confirmed", to="alice@acme.customers.example",
                                                     outcome="sent", attempts=2)
    assert told == [NotificationSent(key=KEY, message_id=mail.message_id, kind="order_confirmed", channel="email",
                                     locale="en", outcome="sent", attempts=2, detail=None)]


def test_each_deferral_waits_the_next_wait_then_the_message_is_given_up() -> None:
    state, mail = confirmed_and_planned()
    at, waits = AT, []
    for _ in SCHEDULE:
        state, told = attempted(state, KEY, mail, "deferred", "451 4.7.1 <alice@acme.customers.example> greylisted",
                                at, SCHEDULE)
        assert told == []
        (waiting,) = state.waiting
        waits.append(waiting.next_attempt_at - at)
        at = waiting.next_attempt_at
    assert waits == [timedelta(seconds=30), timedelta(minutes=2), timedelta(minutes=10), timedelta(hours=1),
                     timedelta(hours=6)]
    # The sixth attempt fails too: recorded refused with the reason, told without the address
    state, told = attempted(state, KEY, mail, "deferred", "451 4.7.1 <alice@acme.customers.example> greylisted", at,
                            SCHEDULE)
    assert state.waiting == ()
    assert state.sent[mail.message_id] == MailRecord(
        kind="order_confirmed", to="alice@acme.customers.example", outcome="refused", attempts=6,
        detail="given up after 6 attempts: 451 4.7.1 <alice@acme.customers.example> greylisted")
    assert told == [NotificationSent(key=KEY, message_id=mail.message_id, kind="order_confirmed", locale="en",
                                     outcome="refused", attempts=6,
                                     detail="given up after 6 attempts: 451 4.7.1 <<address>> greylisted")]


def test_a_permanent_refusal_is_recorded_at_once() -> None:
    state, mail = confirmed_and_planned()
    state, told = attempted(state, KEY, mail, "refused", "the SMTP server refused it: 550 no such user", AT, SCHEDULE)
    assert state.waiting == ()
    assert state.sent[mail.message_id].outcome == "refused" and state.sent[mail.message_id].attempts == 1
    assert [(t.outcome, t.attempts, t.detail) for t in told] == [
        ("refused", 1, "the SMTP server refused it: 550 no such user")]


def test_with_no_retry_schedule_a_deferral_is_final() -> None:
    state, mail = confirmed_and_planned()
    state, told = attempted(state, KEY, mail, "deferred", "421 closing", AT, ())
    assert [(t.outcome, t.detail) for t in told] == [("refused", "given up after 1 attempts: 421 closing")]


def test_the_earliest_waiting_message_is_the_deadline() -> None:
    state, (first, second) = plan(None, event(status("confirmed")), DIRECTORY)
    assert state is not None
    state, _ = attempted(state, KEY, first, "deferred", "451", AT, SCHEDULE)
    state, _ = attempted(state, KEY, second, "deferred", "451", AT - timedelta(seconds=20), SCHEDULE)
    assert next_attempt(state) == AT + timedelta(seconds=10)
    assert due(state, AT + timedelta(seconds=10)) == [second]
    assert due(None, AT) == []


@pytest.mark.parametrize(("code", "outcome"), [(421, "deferred"), (450, "deferred"), (451, "deferred"),
                                                (452, "deferred"), (500, "refused"), (550, "refused"),
                                                (554, "refused")])
def test_smtp_replies_are_temporary_below_500(code: int, outcome: str) -> None:
    assert classify(code, f"{code} text").outcome == outcome


async def test_an_unreachable_server_defers_the_message() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _, (mail, _) = plan(None, event(status("confirmed")), DIRECTORY)
    sent = await SmtpMailer(SmtpServer("127.0.0.1", port), 2.0).send(render(mail, "shop@example.com", AT))
    assert sent.outcome == "deferred" and "not reached" in (sent.detail or "")


class Scripted:
    """A Mailer answering each send with the next outcome of its script."""

    def __init__(self, *outcomes: Sent) -> None:
        self.outcomes = list(outcomes)
        self.sent: list[str] = []

    async def send(self, message: EmailMessage) -> Sent:
        self.sent.append(str(message["X-FC-Kind"]))
        return self.outcomes.pop(0)


async def test_the_agent_retries_a_deferred_message_when_its_timer_asks() -> None:
    settings = Settings(smtp_url="smtp://127.0.0.1:2525", mail_retry_schedule=SCHEDULE)
    sender = Scripted(Sent("deferred", "451 later"), Sent("sent"), Sent("sent"))
    built = notifications_agent.agent(settings, sender)
    assert built.deadline is not None
    confirmed = event(status("confirmed"))
    # Given a confirmation whose first message is deferred and the vendor's is sent
    first = await built.decide(None, confirmed, AT, None)  # type: ignore[misc]
    assert sender.sent == ["order_confirmed", "vendor_order_to_ship"]
    assert [(e.kind, e.outcome) for e in first.events] == [("vendor_order_to_ship", "sent")]
    (waiting,) = first.state.waiting
    assert (waiting.mail.kind, waiting.attempts) == ("order_confirmed", 1)
    assert built.deadline.due_at(first.state) == waiting.next_attempt_at
    # When the timer asks (keyed as the state) and the message is due
    ask = built.deadline.ask(str(ORDER).encode(), first.state)
    assert ask.payload == RetryNotifications(key=str(ORDER)) and ask.tenant == "acme"
    assert built.decide(first.state, ask, waiting.next_attempt_at - timedelta(seconds=1), None) == \
        Decision(first.state)
    second = await built.decide(first.state, ask, waiting.next_attempt_at, None)  # type: ignore[misc]
    # Then it is sent and told on notifications.events, keyed as the state
    assert sender.sent == ["order_confirmed", "vendor_order_to_ship", "order_confirmed"]
    assert [(e.key, e.kind, e.outcome, e.attempts) for e in second.events] == [
        (str(ORDER), "order_confirmed", "sent", 2)]
    assert second.state.waiting == () and built.deadline.due_at(second.state) is None
