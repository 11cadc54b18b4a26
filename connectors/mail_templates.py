"""The notifications' templates: per locale, per kind, a subject, a plain text and an HTML body
(`string.Template`, `$name` for a value of the `Mail`). Another locale is another entry of
`TEMPLATES` with the same kinds; a kind missing in a locale falls back to `DEFAULT_LOCALE`.

`render(mail, sender)` builds the email: multipart/alternative, text then HTML, with the mail's
Message-ID. Values are escaped for the HTML part.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from string import Template

from streams.models import Mail

DEFAULT_LOCALE = "en"


@dataclass(frozen=True)
class Templates:
    subject: Template
    text: Template
    html: Template


def _t(subject: str, text: str, body: str) -> Templates:
    page = ("<!DOCTYPE html><html><body style=\"font-family: sans-serif\">" + body
            + "<p style=\"color:#777\">FusionCommerce</p></body></html>")
    return Templates(Template(subject), Template(text + "\n-- \nFusionCommerce\n"), Template(page))


TEMPLATES: dict[str, dict[str, Templates]] = {
    "en": {
        "order_confirmed": _t(
            "Your order $order_id is confirmed",
            "Thank you! Your order $order_id is paid and confirmed: $item_count items, $total.\n"
            "We will write again when it ships.",
            "<p>Thank you! Your order <b>$order_id</b> is paid and confirmed: $item_count items, $total.</p>"
            "<p>We will write again when it ships.</p>"),
        "payment_failed": _t(
            "The payment for your order $order_id failed",
            "The payment of $total for your order $order_id did not go through: $reason\n"
            "The order is cancelled and nothing was charged. You are welcome to order again.",
            "<p>The payment of $total for your order <b>$order_id</b> did not go through: $reason</p>"
            "<p>The order is cancelled and nothing was charged. You are welcome to order again.</p>"),
        "hold_expired": _t(
            "Your order $order_id expired",
            "Your order $order_id was not paid in time, so the items we held for it are free again.\n"
            "Nothing was charged.",
            "<p>Your order <b>$order_id</b> was not paid in time, so the items we held for it are free again.</p>"
            "<p>Nothing was charged.</p>"),
        "shipped": _t(
            "Your order $order_id has shipped",
            "Part or all of your order $order_id is on its way ($items) with $carrier, "
            "tracking number $tracking_number.\nTrack it: $tracking_url",
            "<p>Part or all of your order <b>$order_id</b> is on its way ($items) with $carrier, tracking number "
            "$tracking_number.</p><p><a href=\"$tracking_url\">Track your parcel</a></p>"),
        "delivered": _t(
            "Your order $order_id was delivered",
            "Every parcel of your order $order_id was delivered: $item_count items, $total. Enjoy!",
            "<p>Every parcel of your order <b>$order_id</b> was delivered: $item_count items, $total. Enjoy!</p>"),
        "campaign_succeeded": _t(
            "Group buy $campaign_id succeeded",
            "The group buy $campaign_id reached its target: your $quantity x $sku at $group_price each "
            "is now an order, which we charge as usual.",
            "<p>The group buy <b>$campaign_id</b> reached its target: your $quantity x $sku at $group_price each "
            "is now an order, which we charge as usual.</p>"),
        "campaign_failed": _t(
            "Group buy $campaign_id did not succeed",
            "The group buy $campaign_id ended without reaching its target ($reason). "
            "Your pledge of $quantity x $sku is void and nothing was charged.",
            "<p>The group buy <b>$campaign_id</b> ended without reaching its target ($reason).</p>"
            "<p>Your pledge of $quantity x $sku is void and nothing was charged.</p>"),
        "vendor_order_to_ship": _t(
            "New order to ship: $order_id",
            "Order $order_id of customer $customer is paid: $item_count items, $total. Please ship it.",
            "<p>Order <b>$order_id</b> of customer $customer is paid: $item_count items, $total.</p>"
            "<p>Please ship it.</p>"),
    },
}


def templates_for(kind: str, locale: str) -> Templates:
    found = TEMPLATES.get(locale, {}).get(kind) or TEMPLATES[DEFAULT_LOCALE].get(kind)
    if found is None:
        raise KeyError(f"no template for {kind!r}")
    return found


def render(mail: Mail, sender: str, date: datetime) -> EmailMessage:
    """The email of `mail`: From, To, Subject, Date, Message-ID, then text and HTML alternatives."""
    assert mail.to is not None, "a held mail has no recipient yet"
    chosen = templates_for(mail.kind, mail.locale)
    values = dict(mail.values)
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.to
    message["Subject"] = chosen.subject.safe_substitute(values)
    message["Date"] = format_datetime(date)
    message["Message-ID"] = mail.message_id
    message["X-FC-Kind"] = mail.kind
    message.set_content(chosen.text.safe_substitute(values))
    message.add_alternative(chosen.html.safe_substitute({k: html.escape(v) for k, v in values.items()}),
                            subtype="html")
    return message
