"""Which events tell whom what: the pure decisions of the notifications agent.

`plan(state, event, directory)` gives the key's new state (what it learned: an order's customer, a
campaign's pledgers) and the messages the event asks for that were not sent yet; `attempted(state,
key, mail, outcome, ...)` keeps what became of one attempt at one. A message's id is fixed by its
event's id, its kind and its recipient (`message_id`), so an event processed again after a crash
plans the same messages, and finds them in `state.sent` (or `state.waiting`) once their sending was
committed.

Retries: an attempt the server failed for now (`deferred`: a 4xx answer, no connection, no answer in
time) keeps the message in `state.waiting` with its attempt count and its next time, after the
schedule's next wait (FC_MAIL_RETRY_SCHEDULE); `next_attempt(state)` is the table's due time, and the
agent's `RetryNotifications` asks for the messages `due` then. Once the schedule has run out, or at
once for a permanent refusal (5xx), it is recorded `refused`. Each message that reaches its final
outcome (sent or refused) gives one `NotificationSent`, without its address (`detail` has
addresses masked).

For the customer: `order_confirmed`, `payment_failed`, `hold_expired` and `delivered` (orders.events;
`delivered` once per order, when its status says every shipment is delivered), `shipped` with the
tracking link (shipments.events: one per shipment), `campaign_succeeded` and `campaign_failed` to
each pledger (campaigns.events). For the vendor: `vendor_order_to_ship` when an
order is confirmed. Shipment events name no customer: the customer is the order's, learned from
its status events; a shipment read before them (a backlog read out of order across topics) holds
its message until the order's customer is known.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

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
    ShipmentCreated,
    WaitingMail,
    uuid5,
)

MESSAGE_ID_DOMAIN = "notifications.fusioncommerce.example"
# Currencies without minor units (ISO 4217 exponent 0) among those a shop is likely to use.
ZERO_DECIMAL = frozenset({"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND",
                          "VUV", "XAF", "XOF", "XPF"})
_SAFE_LOCAL_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
# An address in an SMTP reply (`550 <alice@...>: no such user`): masked in what analytics reads.
_ADDRESS = re.compile(r"[^\s<>@]+@[^\s<>@]+")
_SHIPMENT_TYPES = ("ShipmentCreated", "ShipmentStatusChanged")


@dataclass(frozen=True)
class Directory:
    """Where messages go: the customer's and the vendor's address from the tenant and the token's
    `sub` (settings FC_MAIL_CUSTOMER_ADDRESS, FC_MAIL_VENDOR_ADDRESS), and the locale."""

    customer_address: str = "{sub}@{tenant}.customers.example"
    vendor_address: str = "orders@{tenant}.vendors.example"
    locale: str = "en"

    def customer(self, tenant: str, sub: str) -> str:
        local = sub if _SAFE_LOCAL_PART.fullmatch(sub) else "u-" + uuid5(uuid.NAMESPACE_URL, sub).hex[:16]
        return self.customer_address.format(sub=local, tenant=_domain_label(tenant))

    def vendor(self, tenant: str) -> str:
        return self.vendor_address.format(tenant=_domain_label(tenant))


def _domain_label(tenant: str) -> str:
    return re.sub(r"[^a-z0-9.-]", "-", tenant.lower())


def message_id(event: Envelope, kind: str, who: str) -> str:
    """`<uuid>@...`, fixed by the event, the kind and the recipient's role (`customer`, `vendor`,
    `pledger:<sub>`): the same across every processing of the event, whatever the directory says."""
    return f"<{uuid5(event.event_id, f'{kind}:{who}')}@{MESSAGE_ID_DOMAIN}>"


def money(value: Money | None) -> str:
    if value is None:
        return ""
    if value.currency in ZERO_DECIMAL:
        return f"{value.amount} {value.currency}"
    return f"{value.amount // 100}.{value.amount % 100:02d} {value.currency}"


def plan(state: Notifications | None, event: Envelope, directory: Directory
         ) -> tuple[Notifications | None, list[Mail]]:
    """The key's state after `event` and the messages still to send for it (not in `state.sent`)."""
    payload = event.payload
    if isinstance(payload, OrderStatusChanged):
        state, mails = _order(state, event, payload, directory)
    elif event.type in _SHIPMENT_TYPES:
        state, mails = _shipment(state, event, directory)
    else:
        state, mails = _campaign(state, event, directory)
    if state is None:
        return None, []
    waiting = {w.mail.message_id for w in state.waiting}
    unsent = [mail for mail in mails if mail.message_id not in state.sent and mail.message_id not in waiting]
    held = [mail for mail in unsent if mail.to is None and mail not in state.held]
    if held:
        state = state.model_copy(update={"held": (*state.held, *held)})
    return state, [mail for mail in unsent if mail.to is not None]


def record(state: Notifications, mail: Mail, outcome: MailRecord) -> Notifications:
    """Keep what became of `mail`; it is no longer held."""
    return state.model_copy(update={
        "sent": {**state.sent, mail.message_id: outcome},
        "held": tuple(h for h in state.held if h.message_id != mail.message_id),
    })


# -- attempts and retries -------------------------------------------------------------------------


def attempted(state: Notifications, key: str, mail: Mail, outcome: str, detail: str | None, now: datetime,
              schedule: Sequence[timedelta]) -> tuple[Notifications, list[NotificationSent]]:
    """Keep what became of one attempt at `mail` (`sent`, `refused` for good, or `deferred`): a
    deferred message waits for the schedule's next wait while one is left; otherwise the message is
    recorded, and told on notifications.events."""
    before = next((w for w in state.waiting if w.mail.message_id == mail.message_id), None)
    attempts = 1 if before is None else before.attempts + 1
    others = tuple(w for w in state.waiting if w.mail.message_id != mail.message_id)
    if outcome == "deferred" and attempts <= len(schedule):
        later = WaitingMail(mail=mail, attempts=attempts, next_attempt_at=now + schedule[attempts - 1], detail=detail)
        return state.model_copy(update={
            "waiting": (*others, later), "held": tuple(h for h in state.held if h.message_id != mail.message_id),
        }), []
    final: Literal["sent", "refused"] = "sent" if outcome == "sent" else "refused"
    if outcome == "deferred":
        detail = f"given up after {attempts} attempts: {detail}"
    assert mail.to is not None
    state = record(state.model_copy(update={"waiting": others}), mail,
                   MailRecord(kind=mail.kind, to=mail.to, outcome=final, detail=detail, attempts=attempts))
    told = NotificationSent(key=key, message_id=mail.message_id, kind=mail.kind, locale=mail.locale, outcome=final,
                            attempts=attempts, detail=None if detail is None else _ADDRESS.sub("<address>", detail))
    return state, [told]


def due(state: Notifications | None, now: datetime) -> list[Mail]:
    """The waiting messages whose next attempt is due by `now`."""
    return [] if state is None else [w.mail for w in state.waiting if w.next_attempt_at <= now]


def next_attempt(state: Notifications) -> datetime | None:
    """When the earliest waiting message is due (the table's deadline); None when none waits."""
    return min((w.next_attempt_at for w in state.waiting), default=None)


# -- orders ---------------------------------------------------------------------------------------


def _order(state: Notifications | None, event: Envelope, change: OrderStatusChanged, directory: Directory
           ) -> tuple[Notifications | None, list[Mail]]:
    order = {"order_id": str(change.order_id), "total": money(change.total), "item_count": str(change.item_count)}
    customer = directory.customer(event.tenant, change.customer)
    mails: list[Mail] = []
    if change.status == "confirmed":
        mails.append(_mail(event, "order_confirmed", "customer", customer, directory, order))
        mails.append(_mail(event, "vendor_order_to_ship", "vendor", directory.vendor(event.tenant), directory,
                           {**order, "customer": change.customer}))
    elif change.status == "payment_failed":
        reason = (change.reason or "").removeprefix("payment_failed: ")
        mails.append(_mail(event, "payment_failed", "customer", customer, directory, {**order, "reason": reason}))
    elif change.status == "expired":
        mails.append(_mail(event, "hold_expired", "customer", customer, directory, order))
    elif change.status == "delivered":
        # The order's status, not a shipment's: the orders agent says `delivered` once, when the
        # last of its shipments is delivered (streams/tables/shipping.py, status_from_shipments).
        mails.append(_mail(event, "delivered", "customer", customer, directory, order))
    if state is None and not mails:
        return None, []
    if state is None:
        state = Notifications(tenant=event.tenant, customer=change.customer)
    elif state.customer is None:
        state = state.model_copy(update={"customer": change.customer})
    # Messages held for the customer (a shipment read before the order) can go now.
    released = [held.model_copy(update={"to": customer}) for held in state.held]
    return state, [*released, *mails]


# -- shipments ------------------------------------------------------------------------------------


def _shipment(state: Notifications | None, event: Envelope, directory: Directory
              ) -> tuple[Notifications | None, list[Mail]]:
    """`shipped` per shipment created. A shipment's delivery tells nobody: the order's `delivered`
    status does, once for all its shipments (`_order`)."""
    shipment = event.payload
    if not isinstance(shipment, ShipmentCreated):
        return state, []
    values = {
        "order_id": str(shipment.order_id), "shipment_id": str(shipment.shipment_id), "carrier": shipment.carrier,
        "tracking_number": shipment.tracking_number, "tracking_url": shipment.tracking_url or "",
        "items": ", ".join(f"{line.quantity} x {line.sku}" for line in shipment.lines),
    }
    if state is None:
        state = Notifications(tenant=event.tenant)
    to = None if state.customer is None else directory.customer(event.tenant, state.customer)
    return state, [Mail(message_id=message_id(event, "shipped", "customer"), kind="shipped", locale=directory.locale,
                        to=to, values=values)]


# -- campaigns ------------------------------------------------------------------------------------


def _campaign(state: Notifications | None, event: Envelope, directory: Directory
              ) -> tuple[Notifications | None, list[Mail]]:
    payload = event.payload
    current = state if state is not None else Notifications(tenant=event.tenant)
    if isinstance(payload, CampaignOpened):
        return current.model_copy(update={"sku": payload.sku, "group_price": payload.group_price}), []
    if isinstance(payload, PledgeAccepted):
        return current.model_copy(update={"pledges": {**current.pledges, payload.customer: payload.quantity}}), []
    if isinstance(payload, PledgeWithdrawn):
        pledges = {c: q for c, q in current.pledges.items() if c != payload.customer}
        return current.model_copy(update={"pledges": pledges}), []
    if isinstance(payload, (CampaignSucceeded, CampaignFailed)):
        kind = "campaign_succeeded" if isinstance(payload, CampaignSucceeded) else "campaign_failed"
        reason = payload.reason if isinstance(payload, CampaignFailed) else ""
        mails = []
        for customer, quantity in sorted(current.pledges.items()):
            to = directory.customer(event.tenant, customer)
            values = {"campaign_id": payload.campaign_id, "sku": payload.sku, "quantity": str(quantity),
                      "group_price": money(current.group_price), "reason": reason}
            mails.append(_mail(event, kind, f"pledger:{customer}", to, directory, values))
        return current, mails
    return state, []  # the rest of the funnel tells nobody


def _mail(event: Envelope, kind: str, who: str, to: str, directory: Directory, values: dict[str, str]) -> Mail:
    return Mail(message_id=message_id(event, kind, who), kind=kind, locale=directory.locale, to=to, values=values)
