"""Outbound webhooks: three agents in a group of their own (`python -m streams --agents webhooks`,
`make run`'s `webhooks` process), so that a slow or dead endpoint slows its own deliveries only.

- **webhook_registry**: reads `webhooks.registry` (WebhookEndpointChanged, keyed by tenant and
  broadcast: every partition holds every tenant's) into table `webhook_registry` (a tenant's
  endpoints and what each subscribes to), so every task holds all of it.
- **webhook_dispatch**: reads the platform's events (streams/topics.py WEBHOOK_SOURCES), looks the
  event's tenant up in `webhook_registry` (same task) and writes one DeliverWebhookEvent per
  subscribed, enabled endpoint to `webhooks.deliveries` (keyed `<tenant>/<endpoint_id>`). No state of
  its own; exactly once like any other output (one transaction with its input's offset).
- **webhooks**: reads `webhooks.commands` (register, delete, enable, and its own timer's
  RetryWebhookDeliveries) and `webhooks.deliveries`, co-partitioned by `<tenant>/<endpoint_id>`, into
  table `webhook_endpoints`: each endpoint with its secret, waiting deliveries and log. Delivering
  is an outside call (connectors/webhooks.py), parked per endpoint (streams/runtime/task.py):
  another endpoint's deliveries go on, and the orders and payments agents, in other groups, never
  wait for it. It writes `webhooks.registry` (an endpoint's subscription changed) and
  `webhooks.attempts` (every attempt, for Druid's failure rate). The decisions:
  streams/tables/webhooks.py.

A registration reaches the dispatcher a moment after it is committed: events of that moment may or
may not be delivered to it (the replay command sends them). The dispatcher sees the registry as its
task finds it, so an event processed again after a crash may meet a newer registry, as a Kafka
Streams global table would.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from datetime import datetime
from typing import Any, Protocol

from connectors.webhooks import Attempt, WebhookSender
from streams import topics
from streams.models import Envelope, Payload, WebhookDelivery, RetryWebhookDeliveries, WebhookEndpoint, WebhookSubscriptions, utc_now
from streams.runtime.agent import Agent, Deadline, Table, Tables
from streams.settings import Settings
from streams.tables import webhooks
from streams.tables.decision import Decision
from streams.tables.webhooks import Outcome, Policy

REGISTRY = Table("webhook_registry", WebhookSubscriptions)
ENDPOINTS = Table("webhook_endpoints", WebhookEndpoint)


class Sender(Protocol):
    async def deliver(self, url: str, secret: str, body: str, *, delivery_id: str, event_id: str, event_type: str,
                      now: int) -> Attempt: ...


def registry() -> Agent:
    def decide(state: WebhookSubscriptions | None, event: Envelope, now: datetime, tables: Tables
               ) -> Decision[WebhookSubscriptions | None]:
        return Decision(webhooks.subscribe(state, event.tenant, event.payload))  # type: ignore[arg-type]

    return Agent(name="webhook_registry", sources=(topics.WEBHOOKS_REGISTRY,), table=REGISTRY, decide=decide)


def dispatch() -> Agent:
    def decide(state: None, event: Envelope, now: datetime, tables: Tables) -> Decision[None]:
        return Decision(None, webhooks.dispatch(tables.get(REGISTRY, event.tenant.encode()), event))

    return Agent(name="webhook_dispatch", sources=topics.WEBHOOK_SOURCES, table=None, decide=decide,
                 reads=(REGISTRY,))


def retry(key: bytes, state: WebhookEndpoint) -> Envelope:
    return Envelope.new(state.tenant, RetryWebhookDeliveries(endpoint_id=state.endpoint_id))


def render(state: WebhookEndpoint) -> dict[str, Any]:
    """What readers see of an endpoint: never its secret, nor the bodies waiting to go."""
    shown = state.model_dump(mode="json", exclude={"secret", "finished"})
    for delivery in shown["pending"]:
        del delivery["body"]
    return shown


async def attempt_round(sender: Sender, policy: Policy, state: WebhookEndpoint, due: tuple[WebhookDelivery, ...],
                        events: list[Payload]) -> Decision[WebhookEndpoint]:
    """Attempt the due deliveries in turn; the first failure ends the round and the rest wait for
    the endpoint's next attempt."""
    for index, delivery in enumerate(due):
        answer = await sender.deliver(state.url, state.secret, delivery.body, delivery_id=str(delivery.delivery_id),
                                      event_id=str(delivery.event_id), event_type=delivery.event_type,
                                      now=int(time.time()))
        outcome = Outcome(delivered=answer.delivered, status_code=answer.status_code, error=answer.error,
                          duration_ms=answer.duration_ms)
        # (the time of the answer, not of the event that started the round)
        state, recorded = webhooks.record(state, delivery, outcome, utc_now(), policy)
        events += recorded
        if not outcome.delivered:
            state = webhooks.defer(state, due[index + 1:])
            break
    return Decision(state, events)


def endpoints(sender: Sender, policy: Policy) -> Agent:
    def decide(state: WebhookEndpoint | None, event: Envelope, now: datetime, tables: Tables
               ) -> Decision[WebhookEndpoint | None] | Awaitable[Decision[WebhookEndpoint]]:
        accepted = webhooks.accept(state, event, now, policy)
        if not accepted.due:
            return Decision(accepted.state, accepted.events)
        assert accepted.state is not None  # only an endpoint has deliveries due
        return attempt_round(sender, policy, accepted.state, accepted.due, accepted.events)

    return Agent(name="webhooks", sources=(topics.WEBHOOKS_COMMANDS, topics.WEBHOOKS_DELIVERIES), table=ENDPOINTS,
                 decide=decide, deadline=Deadline(due_at=webhooks.due_at, ask=retry), render=render,
                 calls_outside=True)


def agents(settings: Settings, sender: Sender | None = None) -> list[Agent]:
    policy = Policy(retry_schedule=settings.webhook_retry_schedule, disable_after=settings.webhook_disable_after)
    chosen = sender if sender is not None else WebhookSender(settings.webhook_timeout_seconds,
                                                             settings.webhook_allow_private_targets)
    return [registry(), dispatch(), endpoints(chosen, policy)]
