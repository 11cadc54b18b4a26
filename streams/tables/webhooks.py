"""Outbound webhooks: the pure decisions of the dispatch, registry and webhooks agents.

`dispatch(subscriptions, event)`: the deliveries one platform event asks for, one per enabled
endpoint of its tenant subscribed to its type, each with an id fixed by the event and the endpoint.

`subscribe(subscriptions, change)`: the registry of a tenant's endpoints, from the webhooks agent's
announcements.

An endpoint, keyed `<tenant>/<endpoint_id>`, goes through `accept(state, event, now, policy)` ->
`Accepted` (its new state, the events to publish, and the deliveries to attempt now), then, for
each attempt the agent made, `record(state, delivery, outcome, now, policy)`; after a failed one the
agent stops the round and `defer`s the others to the failed one's next attempt (an endpoint that
fails is left alone until then, whatever is waiting behind it).

Retries: a failed delivery is tried again after each wait of `policy.retry_schedule` in turn, then
given up. Deliveries that come while the endpoint is failing wait for its next attempt. An endpoint
whose every attempt failed for `policy.disable_after` is disabled: what waits is given up and what
comes is skipped until an admin enables it again (the replay command sends what it missed). Each
delivery id is handled once (`finished`, bounded); at the HTTP hop delivery is at least once (a
worker killed after the endpoint answered and before the commit delivers again, same ids).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from streams.models import (
    DeleteWebhookEndpoint,
    DeliverWebhookEvent,
    DeliveryOutcome,
    DeliveryRecord,
    EnableWebhookEndpoint,
    Envelope,
    Payload,
    RegisterWebhookEndpoint,
    RetryWebhookDeliveries,
    WebhookDelivery,
    WebhookDeliveryAttempted,
    WebhookEndpoint,
    WebhookEndpointChanged,
    WebhookEndpointStatus,
    WebhookSubscription,
    WebhookSubscriptions,
    uuid5,
)
from streams.tables.decision import UnhandledEvent

ALL_EVENTS = "*"
# Log lines kept per endpoint (newest last), and finished delivery ids remembered.
LOG_LINES = 200
FINISHED_REMEMBERED = 2000
# Deliveries an endpoint may have waiting; beyond, a new one is given up at once (a failing
# endpoint's state is rewritten at each event: it must stay small).
MAX_PENDING = 500
# Deliveries attempted in one round (the rest stay due, and the timer asks again).
ROUND = 20


@dataclass(frozen=True)
class Policy:
    retry_schedule: tuple[timedelta, ...]
    disable_after: timedelta


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to (connectors/webhooks.py's Attempt, without the connector)."""

    delivered: bool
    status_code: int | None = None
    error: str | None = None
    duration_ms: int = 0


@dataclass(frozen=True)
class Accepted:
    state: WebhookEndpoint | None
    events: list[Payload] = field(default_factory=list)
    due: tuple[WebhookDelivery, ...] = ()


def delivery_id(event_id: uuid.UUID, endpoint_id: str) -> uuid.UUID:
    return uuid5(event_id, f"webhook:{endpoint_id}")


def subscribed(events: tuple[str, ...], event_type: str) -> bool:
    return ALL_EVENTS in events or event_type in events


def dispatch(subscriptions: WebhookSubscriptions | None, event: Envelope) -> list[Payload]:
    if subscriptions is None:
        return []
    body = event.to_bytes().decode()
    return [DeliverWebhookEvent(endpoint_id=uuid.UUID(endpoint_id), delivery_id=delivery_id(event.event_id, endpoint_id),
                                source_event_id=event.event_id, event_type=event.type, body=body)
            for endpoint_id, subscription in sorted(subscriptions.endpoints.items())
            if subscription.status == WebhookEndpointStatus.ENABLED and subscribed(subscription.events, event.type)]


def subscribe(subscriptions: WebhookSubscriptions | None, tenant: str, change: WebhookEndpointChanged
              ) -> WebhookSubscriptions | None:
    endpoints = dict(subscriptions.endpoints) if subscriptions is not None else {}
    if change.status == WebhookEndpointStatus.DELETED:
        endpoints.pop(str(change.endpoint_id), None)
    else:
        endpoints[str(change.endpoint_id)] = WebhookSubscription(events=change.events, status=change.status)
    return WebhookSubscriptions(tenant=tenant, endpoints=endpoints) if endpoints else None


def due_at(state: WebhookEndpoint) -> datetime | None:
    if state.status != WebhookEndpointStatus.ENABLED or not state.pending:
        return None
    return min(d.next_attempt_at for d in state.pending)


def accept(state: WebhookEndpoint | None, event: Envelope, now: datetime, policy: Policy) -> Accepted:
    payload = event.payload
    if isinstance(payload, RegisterWebhookEndpoint):
        if state is not None:
            return Accepted(state)  # the same registration again (ids are derived from the request)
        created = WebhookEndpoint(endpoint_id=payload.endpoint_id, tenant=event.tenant, url=payload.url,
                                  events=payload.events, secret=payload.secret, description=payload.description,
                                  created_at=now, created_by=payload.requested_by, request_hash=payload.request_hash)
        return Accepted(created, [_announce(created)])
    if state is None:
        raise UnhandledEvent(f"no webhook endpoint {payload.endpoint_id} of tenant {event.tenant}")  # type: ignore[attr-defined]
    if isinstance(payload, DeleteWebhookEndpoint):
        if state.status == WebhookEndpointStatus.DELETED:
            return Accepted(state)
        state, events = _give_up_all(state, now, "the endpoint was deleted")
        state = state.model_copy(update={"status": WebhookEndpointStatus.DELETED})
        return Accepted(state, [*events, _announce(state)])
    if isinstance(payload, EnableWebhookEndpoint):
        if state.status != WebhookEndpointStatus.DISABLED:
            return Accepted(state)
        state = state.model_copy(update={"status": WebhookEndpointStatus.ENABLED, "failing_since": None,
                                         "disabled_reason": None})
        return Accepted(state, [_announce(state)])
    if isinstance(payload, RetryWebhookDeliveries):
        return Accepted(state, due=_due(state, now))
    if isinstance(payload, DeliverWebhookEvent):
        return _deliver(state, payload, now)
    raise UnhandledEvent(f"the webhooks agent does not handle {event.type}")


def _deliver(state: WebhookEndpoint, payload: DeliverWebhookEvent, now: datetime) -> Accepted:
    wanted = str(payload.delivery_id)
    if wanted in state.finished or any(str(d.delivery_id) == wanted for d in state.pending):
        return Accepted(state)
    if not subscribed(state.events, payload.event_type):
        return Accepted(state)  # the subscription changed since (or a replay sends every type)
    skipped = None
    if state.status != WebhookEndpointStatus.ENABLED:
        skipped = f"the endpoint is {state.status}"
    elif len(state.pending) >= MAX_PENDING:
        skipped = f"{MAX_PENDING} deliveries are already waiting for this endpoint"
    if skipped is not None:
        outcome = DeliveryOutcome.SKIPPED if state.status != WebhookEndpointStatus.ENABLED else DeliveryOutcome.GAVE_UP
        line = DeliveryRecord(delivery_id=payload.delivery_id, event_id=payload.source_event_id, event_type=payload.event_type,
                              attempt=0, at=now, outcome=outcome, error=skipped, replay=payload.replay)
        return Accepted(_logged(_finished(state, wanted), line), [_attempted(state, line)])
    # A failing endpoint is left alone until its next attempt: the new delivery goes with it.
    waiting = due_at(state) if state.failing_since is not None else None
    delivery = WebhookDelivery(delivery_id=payload.delivery_id, event_id=payload.source_event_id,
                               event_type=payload.event_type, body=payload.body, replay=payload.replay,
                               next_attempt_at=max(waiting, now) if waiting is not None else now)
    state = state.model_copy(update={"pending": (*state.pending, delivery)})
    return Accepted(state, due=_due(state, now))


def _due(state: WebhookEndpoint, now: datetime) -> tuple[WebhookDelivery, ...]:
    if state.status != WebhookEndpointStatus.ENABLED:
        return ()
    ready = sorted((d for d in state.pending if d.next_attempt_at <= now), key=lambda d: d.next_attempt_at)
    return tuple(ready[:ROUND])


def record(state: WebhookEndpoint, delivery: WebhookDelivery, outcome: Outcome, now: datetime, policy: Policy
           ) -> tuple[WebhookEndpoint, list[Payload]]:
    """Apply one attempt's outcome: delivered, failed with a next attempt, or given up (the schedule
    is spent); an endpoint failing for `policy.disable_after` is disabled."""
    attempt = delivery.attempts + 1
    rest = tuple(d for d in state.pending if d.delivery_id != delivery.delivery_id)
    if outcome.delivered:
        line = _line(delivery, attempt, now, DeliveryOutcome.DELIVERED, outcome)
        state = _finished(state.model_copy(update={"pending": rest, "failing_since": None}), str(delivery.delivery_id))
        return _logged(state, line), [_attempted(state, line)]
    failing_since = state.failing_since or now
    if attempt > len(policy.retry_schedule):
        line = _line(delivery, attempt, now, DeliveryOutcome.GAVE_UP, outcome)
        state = _finished(state.model_copy(update={"pending": rest}), str(delivery.delivery_id))
    else:
        later = now + policy.retry_schedule[attempt - 1]
        line = _line(delivery, attempt, now, DeliveryOutcome.FAILED, outcome, later)
        again = delivery.model_copy(update={"attempts": attempt, "next_attempt_at": later})
        state = state.model_copy(update={"pending": (*rest, again)})
    state = _logged(state.model_copy(update={"failing_since": failing_since}), line)
    events: list[Payload] = [_attempted(state, line)]
    if now - failing_since >= policy.disable_after:
        reason = f"every attempt failed since {failing_since.isoformat()} (latest: {outcome.error})"
        state, given_up = _give_up_all(state, now, "the endpoint was disabled")
        state = state.model_copy(update={"status": WebhookEndpointStatus.DISABLED, "disabled_reason": reason})
        events += [*given_up, _announce(state)]
    return state, events


def defer(state: WebhookEndpoint, deliveries: tuple[WebhookDelivery, ...]) -> WebhookEndpoint:
    """Move deliveries of a round stopped by a failure to the endpoint's next attempt (no attempt counted)."""
    moved = {d.delivery_id for d in deliveries}
    others = [d.next_attempt_at for d in state.pending if d.delivery_id not in moved]
    if not others:
        return state
    until = min(others)
    return state.model_copy(update={"pending": tuple(
        d.model_copy(update={"next_attempt_at": until}) if d.delivery_id in moved and d.next_attempt_at < until else d
        for d in state.pending)})


def _give_up_all(state: WebhookEndpoint, now: datetime, why: str) -> tuple[WebhookEndpoint, list[Payload]]:
    events: list[Payload] = []
    for delivery in state.pending:
        line = _line(delivery, delivery.attempts, now, DeliveryOutcome.GAVE_UP, Outcome(delivered=False, error=why))
        state = _logged(_finished(state, str(delivery.delivery_id)), line)
        events.append(_attempted(state, line))
    return state.model_copy(update={"pending": ()}), events


def _line(delivery: WebhookDelivery, attempt: int, now: datetime, outcome_name: str, outcome: Outcome,
          next_attempt_at: datetime | None = None) -> DeliveryRecord:
    return DeliveryRecord(delivery_id=delivery.delivery_id, event_id=delivery.event_id,
                          event_type=delivery.event_type, attempt=attempt, at=now, outcome=outcome_name,
                          status_code=outcome.status_code, error=outcome.error, duration_ms=outcome.duration_ms,
                          next_attempt_at=next_attempt_at, replay=delivery.replay)


def _logged(state: WebhookEndpoint, line: DeliveryRecord) -> WebhookEndpoint:
    return state.model_copy(update={"log": (*state.log, line)[-LOG_LINES:]})


def _finished(state: WebhookEndpoint, delivery: str) -> WebhookEndpoint:
    return state.model_copy(update={"finished": (*state.finished, delivery)[-FINISHED_REMEMBERED:]})


def _attempted(state: WebhookEndpoint, line: DeliveryRecord) -> WebhookDeliveryAttempted:
    return WebhookDeliveryAttempted(endpoint_id=state.endpoint_id, delivery_id=line.delivery_id,
                                    source_event_id=line.event_id, event_type=line.event_type, attempt=line.attempt,
                                    outcome=line.outcome, status_code=line.status_code, error=line.error,
                                    duration_ms=line.duration_ms, replay=line.replay)


def _announce(state: WebhookEndpoint) -> WebhookEndpointChanged:
    return WebhookEndpointChanged(endpoint_id=state.endpoint_id, events=state.events, status=state.status)
