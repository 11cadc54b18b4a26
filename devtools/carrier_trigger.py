"""Send the gateway a signed carrier tracking update, as EasyPost would (`tracker.updated`).

    python -m devtools.carrier_trigger EZ1000000001 in_transit
    python -m devtools.carrier_trigger EZ1000000001 delivered --carrier USPS --message "Left at front door"
    python -m devtools.carrier_trigger EZ1000000001 in_transit --event-id evt_same   # resend: a duplicate
    python -m devtools.carrier_trigger EZ1000000001 in_transit --at 2026-12-01T09:00:00Z  # an older update
    python -m devtools.carrier_trigger EZ1000000001 delivered --dry-run             # print, send nothing

STATUS is EasyPost's: pre_transit, in_transit, out_for_delivery, available_for_pickup, delivered,
return_to_sender, failure, error, unknown. The event is signed with CARRIER_WEBHOOK_SECRET (its
development value with FC_DEVELOPMENT=1, as `make carrier` sets) in EasyPost's `X-Hmac-Signature`
and POSTed to `<gateway>/v1/shipping/webhook`. The carrier's time of the update is now unless `--at`.
"""

from __future__ import annotations

import argparse
import json
import secrets
from datetime import UTC, datetime

from connectors.carrier_webhooks import build_event, sign
from devtools import signed_post
from gateway.views.shipping import WEBHOOK_PATH
from streams.settings import load

STATUSES = ("pre_transit", "in_transit", "out_for_delivery", "available_for_pickup", "delivered", "return_to_sender",
            "failure", "error", "unknown")


def main() -> None:
    settings = load()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tracking_code")
    parser.add_argument("status", choices=STATUSES)
    parser.add_argument("--carrier", default="USPS")
    parser.add_argument("--message", help="the tracking detail's message")
    parser.add_argument("--event-id", help="reuse an event id to send a duplicate")
    parser.add_argument("--at", type=lambda v: datetime.fromisoformat(v.replace("Z", "+00:00")),
                        help="the carrier's time of the update (ISO 8601 with a zone); now by default")
    parser.add_argument("--gateway", default=f"http://{settings.gateway_host}:{settings.gateway_port}")
    parser.add_argument("--dry-run", action="store_true", help="print the signed event, send nothing")
    args = parser.parse_args()
    if not settings.carrier_webhook_secret:
        raise SystemExit("[carrier] CARRIER_WEBHOOK_SECRET is not set: set it to the gateway's carrier webhook secret, "
                         "or FC_DEVELOPMENT=1 for the development one (what `make run` uses)")
    event = build_event(args.tracking_code, args.status, carrier=args.carrier,
                        event_id=args.event_id or f"evt_{secrets.token_hex(12)}", at=args.at or datetime.now(UTC),
                        message=args.message)
    body = json.dumps(event, indent=2).encode()
    signature = sign(body, settings.carrier_webhook_secret)
    signed_post.send("carrier", args.gateway.rstrip("/") + WEBHOOK_PATH, body, "X-Hmac-Signature", signature,
                     args.dry_run, f"{event['description']} {event['id']} {args.tracking_code} {args.status}")

if __name__ == "__main__":
    main()
