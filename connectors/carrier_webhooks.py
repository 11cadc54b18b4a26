"""Carrier tracking webhooks in EasyPost's format: verify what EasyPost sends, sign what devtools send.

    update = verify(request_body, request.headers.get("X-Hmac-Signature"), settings.carrier_webhook_secret)
    update.tracking_code, update.event_id, update.status, update.carrier_time, ...
    header = sign(body, secret)          # "hmac-sha256-hex=<hex HMAC-SHA256 of the raw body>"

EasyPost's scheme (docs.easypost.com, "Webhooks": HMAC validation; its client libraries'
`validate_webhook`): the `X-Hmac-Signature` header is `hmac-sha256-hex=` followed by the hex
HMAC-SHA256 of the raw body, keyed by the webhook's secret in Unicode NFKD, UTF-8. It carries no
timestamp: a captured request replayed is the same event id again, which the shipment decision
applies once (streams/tables/shipping.py).

Only then is the body parsed: an EasyPost Event (`{"object": "Event", "id": "evt_...",
"description": "tracker.updated", "result": {"object": "Tracker", "tracking_code", "status",
"carrier", "public_url", "tracking_details": [{"datetime", "message", "status"}, ...],
"updated_at"}}`). The carrier's time of the update is the latest `tracking_details[].datetime`
(else the tracker's `updated_at`): it orders updates that arrive out of order.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

PREFIX = "hmac-sha256-hex="
TRACKER_EVENTS = ("tracker.created", "tracker.updated")


class InvalidCarrierWebhook(Exception):
    """Not a genuine EasyPost tracker event: answer 400 and write nothing."""


@dataclass(frozen=True)
class TrackerEvent:
    event_id: str
    tracking_code: str
    status: str  # EasyPost's
    carrier: str
    carrier_time: datetime
    public_url: str | None
    detail: str | None


def _digest(body: bytes, secret: str) -> str:
    key = unicodedata.normalize("NFKD", secret).encode("utf-8")
    return PREFIX + hmac.new(key, body, hashlib.sha256).hexdigest()


def sign(body: bytes, secret: str) -> str:
    return _digest(body, secret)


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo is not None else None


def verify(body: bytes, header: str | None, secret: str) -> TrackerEvent:
    if not secret:
        raise InvalidCarrierWebhook("no carrier webhook secret is configured (CARRIER_WEBHOOK_SECRET)")
    if not header:
        raise InvalidCarrierWebhook("missing X-Hmac-Signature header")
    if not hmac.compare_digest(_digest(body, secret).encode(), header.strip().encode()):
        raise InvalidCarrierWebhook("X-Hmac-Signature does not match the body under the carrier webhook secret")
    try:
        event = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidCarrierWebhook("the body is not JSON") from None
    if not isinstance(event, dict) or event.get("object") != "Event" or not isinstance(event.get("id"), str) \
            or not event["id"]:
        raise InvalidCarrierWebhook("the body is not an EasyPost Event with an id")
    if event.get("description") not in TRACKER_EVENTS:
        raise InvalidCarrierWebhook(f"the event is {event.get('description')!r}, not one of {', '.join(TRACKER_EVENTS)}")
    tracker = event.get("result")
    if not isinstance(tracker, dict) or tracker.get("object") != "Tracker":
        raise InvalidCarrierWebhook("the event's result is not a Tracker")
    code, status = tracker.get("tracking_code"), tracker.get("status")
    if not isinstance(code, str) or not code or not isinstance(status, str) or not status:
        raise InvalidCarrierWebhook("the Tracker has no tracking_code or status")
    details = [d for d in tracker.get("tracking_details") or [] if isinstance(d, dict)]
    timed = [(t, d) for d in details if (t := _time(d.get("datetime"))) is not None]
    latest = max(timed, key=lambda pair: pair[0]) if timed else None
    carrier_time = latest[0] if latest else _time(tracker.get("updated_at"))
    if carrier_time is None:
        raise InvalidCarrierWebhook("the Tracker gives no time (tracking_details[].datetime or updated_at)")
    message = latest[1].get("message") if latest else None
    carrier = tracker.get("carrier")
    url = tracker.get("public_url")
    return TrackerEvent(
        event_id=event["id"], tracking_code=code, status=status,
        carrier=carrier if isinstance(carrier, str) and carrier else "unknown",
        carrier_time=carrier_time, public_url=url if isinstance(url, str) and url else None,
        detail=message[:500] if isinstance(message, str) and message else None,
    )


def build_event(tracking_code: str, status: str, *, carrier: str = "USPS", event_id: str,
                at: datetime, message: str | None = None) -> dict[str, Any]:
    """An EasyPost `tracker.updated` event as EasyPost sends it (for the dev command and tests)."""
    stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "object": "Event", "id": event_id, "description": "tracker.updated", "mode": "test",
        "created_at": stamp, "updated_at": stamp, "status": "pending",
        "result": {
            "object": "Tracker", "id": f"trk_{event_id.removeprefix('evt_')}", "mode": "test",
            "tracking_code": tracking_code, "status": status, "carrier": carrier,
            "public_url": f"https://track.easypost.com/{tracking_code}", "updated_at": stamp,
            "tracking_details": [{"object": "TrackingDetail", "datetime": stamp, "status": status,
                                  "message": message or status.replace("_", " ")}],
        },
    }
