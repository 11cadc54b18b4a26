"""Send a tenant's past events to one webhook endpoint again: after it was down, disabled, or lost
what it received.

    python -m streams.webhook_replay --tenant acme --endpoint <id> --since 6h [--type OrderStatusChanged]
    make webhook-replay TENANT=acme ENDPOINT=<id> SINCE=6h

It reads the committed events of the topics endpoints subscribe to (streams/topics.py
WEBHOOK_SOURCES) since the given time, keeps the tenant's (and the types asked), and writes one
DeliverWebhookEvent each to `webhooks.deliveries`, marked `replay`. The webhooks agent delivers
those the endpoint subscribes to, signed and retried like any other, and logs them as replays.
Each run is a new delivery of each event (its delivery ids are the run's); the event ids are the
events' own, so a receiver that already has one can tell.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections.abc import Sequence

from connectors.kafka import EventWriter, prepare_cluster
from streams import logs, topics
from streams.models import DeliverWebhookEvent, Envelope, uuid5
from streams.settings import Settings, load
from streams.tap import Reader, Start, TapError


def deliveries(settings: Settings, tenant: str, endpoint_id: uuid.UUID, since: str, types: Sequence[str] = ()
               ) -> list[Envelope]:
    """The replay's delivery requests, one per committed event of the tenant since `since`."""
    run = uuid.uuid4()
    asked = []
    for spec in topics.WEBHOOK_SOURCES:
        wanted = [t for t in types if t in {p.__name__ for p in spec.payloads}]
        if types and not wanted:
            continue
        with Reader(spec.name, Start.of(since=since), types=wanted, tenant=tenant, settings=settings) as reader:
            for record in reader:
                event = record.event
                asked.append(Envelope.new(tenant, DeliverWebhookEvent(
                    endpoint_id=endpoint_id, delivery_id=uuid5(run, f"{endpoint_id}:{event.event_id}"),
                    source_event_id=event.event_id, event_type=event.type, body=event.to_bytes().decode(),
                    replay=True)))
    return asked


async def write(settings: Settings, events: list[Envelope]) -> None:
    writer = EventWriter(settings, client_id="webhook-replay")
    await writer.start()
    try:
        for event in events:
            await writer.write(event)
    finally:
        await writer.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--endpoint", required=True, type=uuid.UUID, help="the endpoint's id (GET /v1/webhooks)")
    parser.add_argument("--since", required=True, help='how far back: "30m", "6h", "2d", or an ISO time')
    parser.add_argument("--type", action="append", default=[], dest="types",
                        help=f"only these event types (repeat); any of {', '.join(topics.WEBHOOK_EVENT_TYPES)}")
    args = parser.parse_args(argv)
    if unknown := set(args.types) - set(topics.WEBHOOK_EVENT_TYPES):
        parser.error(f"no webhook event type {', '.join(sorted(unknown))}; choose from {', '.join(topics.WEBHOOK_EVENT_TYPES)}")
    settings = load()
    logs.configure(settings, "webhook-replay")
    prepare_cluster(settings)
    try:
        events = deliveries(settings, args.tenant, args.endpoint, args.since, args.types)
    except (TapError, ValueError) as exc:
        raise SystemExit(f"webhook-replay: {exc}") from None
    asyncio.run(write(settings, events))
    print(f"[webhook-replay] asked for {len(events)} deliveries of {args.tenant}'s events since {args.since} "
          f"to endpoint {args.endpoint}; the endpoint's delivery log shows them as replays "
          f"(GET /v1/webhooks/{args.endpoint}/deliveries)", file=sys.stderr)


if __name__ == "__main__":
    main()
