"""Which events give which messages to whom (streams/tables/notifications.py), and their rendering."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from connectors.mail import SmtpServer
from connectors.mail_templates import TEMPLATES, render
from streams.models import (
    CampaignFailed,
    CampaignOpened,
    CampaignSucceeded,
    Envelope,
    MailRecord,
    Money,
    OrderStatusChanged,
    PledgeAccepted,
    PledgeWithdrawn,
    ShipmentCreated,
    ShipmentLine,
    ShipmentStatusChanged,
)
from streams.tables.notifications import Directory, message_id, money, plan, record

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


def test_shipped_and_delivered_go_to_the_orders_customer_with_the_tracking_link() -> None:
    state, _ = plan(None, event(status("confirmed")), DIRECTORY)
    state, (ship,) = plan(state, shipped(), DIRECTORY)
    assert (ship.kind, ship.to) == ("shipped", "alice@acme.customers.example")
    assert ship.values["tracking_url"] == "https://track.example/1Z999"
    assert ship.values["items"] == "2 x MUG-1"
    state, (done,) = plan(state, delivered(), DIRECTORY)
    assert (done.kind, done.to) == ("delivered", "alice@acme.customers.example")


@pytest.mark.parametrize("value", ["label_created", "in_transit", "out_for_delivery", "exception", "returned"])
def test_other_shipment_statuses_tell_nobody(value: str) -> None:
    state, _ = plan(None, event(status("confirmed")), DIRECTORY)
    assert plan(state, delivered(value=value), DIRECTORY) == (state, [])


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
