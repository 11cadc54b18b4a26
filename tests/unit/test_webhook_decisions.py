"""The pure decisions of outbound webhooks (streams/tables/webhooks.py): dispatch, retries on the
schedule, giving up, disabling after persistent failure, and each delivery handled once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from streams.models import (
    DeleteWebhookEndpoint,
    DeliverWebhookEvent,
    EnableWebhookEndpoint,
    Envelope,
    Money,
    OrderStatusChanged,
    RegisterWebhookEndpoint,
    RetryWebhookDeliveries,
    WebhookDeliveryAttempted,
    WebhookEndpoint,
    WebhookEndpointChanged,
    WebhookSubscription,
    WebhookSubscriptions,
)
from streams.tables import webhooks
from streams.tables.decision import UnhandledEvent
from streams.tables.webhooks import Outcome, Policy

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ENDPOINT = uuid.UUID("00000000-0000-4000-8000-0000000000e1")
OTHER = uuid.UUID("00000000-0000-4000-8000-0000000000e2")
POLICY = Policy(retry_schedule=(timedelta(minutes=1), timedelta(minutes=5)), disable_after=timedelta(hours=1))
SECRET = "whsec_" + "s" * 40
OK = Outcome(delivered=True, status_code=200, duration_ms=12)
DOWN = Outcome(delivered=False, status_code=503, error="HTTP 503", duration_ms=7)


def command(payload, tenant: str = "acme") -> Envelope:  # type: ignore[no-untyped-def]
    return Envelope.new(tenant, payload, occurred_at=T0)


def registered(events: tuple[str, ...] = ("OrderStatusChanged",)) -> WebhookEndpoint:
    accepted = webhooks.accept(None, command(RegisterWebhookEndpoint(
        endpoint_id=ENDPOINT, url="https://hooks.acme.example/in", events=events, secret=SECRET,
        requested_by="ada")), T0, POLICY)
    assert accepted.state is not None
    return accepted.state


def delivery(n: int, event_type: str = "OrderStatusChanged") -> DeliverWebhookEvent:
    return DeliverWebhookEvent(endpoint_id=ENDPOINT, delivery_id=uuid.UUID(int=n), source_event_id=uuid.UUID(int=1000 + n),
                               event_type=event_type, body=f'{{"n": {n}}}')


def order_event(tenant: str = "acme") -> Envelope:
    return Envelope.new(tenant, OrderStatusChanged(order_id=uuid.UUID(int=7), customer="cy", status="confirmed",
                                                   previous_status="paid", total=Money(amount=1200, currency="EUR")), occurred_at=T0)


# -- dispatch and registry ------------------------------------------------------------------------


def test_an_event_goes_to_each_enabled_endpoint_of_its_tenant_subscribed_to_its_type() -> None:
    subscriptions = WebhookSubscriptions(tenant="acme", endpoints={
        str(ENDPOINT): WebhookSubscription(events=("OrderStatusChanged",), status="enabled"),
        str(OTHER): WebhookSubscription(events=("*",), status="enabled"),
        "00000000-0000-4000-8000-0000000000e3": WebhookSubscription(events=("ShipmentCreated",), status="enabled"),
        "00000000-0000-4000-8000-0000000000e4": WebhookSubscription(events=("*",), status="disabled"),
    })
    event = order_event()
    asked = webhooks.dispatch(subscriptions, event)
    assert [d.endpoint_id for d in asked] == [ENDPOINT, OTHER]  # type: ignore[attr-defined]
    assert {d.delivery_id for d in asked} == {webhooks.delivery_id(event.event_id, str(ENDPOINT)),  # type: ignore[attr-defined]
                                              webhooks.delivery_id(event.event_id, str(OTHER))}
    assert Envelope.from_bytes(asked[0].body.encode()) == event  # type: ignore[attr-defined]
    assert webhooks.dispatch(None, event) == []


def test_the_registry_keeps_a_tenants_endpoints_until_deleted() -> None:
    first = webhooks.subscribe(None, "acme", WebhookEndpointChanged(endpoint_id=ENDPOINT, events=("*",), status="enabled"))
    both = webhooks.subscribe(first, "acme", WebhookEndpointChanged(endpoint_id=OTHER, events=("A",), status="disabled"))
    assert both == WebhookSubscriptions(tenant="acme", endpoints={
        str(ENDPOINT): WebhookSubscription(events=("*",), status="enabled"),
        str(OTHER): WebhookSubscription(events=("A",), status="disabled")})
    one = webhooks.subscribe(both, "acme", WebhookEndpointChanged(endpoint_id=OTHER, events=("A",), status="deleted"))
    assert one == first
    assert webhooks.subscribe(one, "acme", WebhookEndpointChanged(endpoint_id=ENDPOINT, events=(), status="deleted")) is None


# -- an endpoint's deliveries ---------------------------------------------------------------------


def test_registering_announces_the_subscription_and_registering_again_changes_nothing() -> None:
    state = registered()
    assert (state.status, state.url, state.secret, state.created_by) == ("enabled", "https://hooks.acme.example/in",
                                                                         SECRET, "ada")
    again = webhooks.accept(state, command(RegisterWebhookEndpoint(
        endpoint_id=ENDPOINT, url="https://else.example", events=("*",), secret=SECRET, requested_by="ada")), T0, POLICY)
    assert again.state == state and again.events == []


def test_a_delivery_to_a_healthy_endpoint_is_due_at_once_and_logged_delivered() -> None:
    accepted = webhooks.accept(registered(), command(delivery(1)), T0, POLICY)
    assert [d.delivery_id for d in accepted.due] == [uuid.UUID(int=1)]
    state, events = webhooks.record(accepted.state, accepted.due[0], OK, T0, POLICY)  # type: ignore[arg-type]
    assert state.pending == () and state.failing_since is None
    assert [(line.outcome, line.attempt, line.status_code) for line in state.log] == [("delivered", 1, 200)]
    assert events == [WebhookDeliveryAttempted(endpoint_id=ENDPOINT, delivery_id=uuid.UUID(int=1),
                                               source_event_id=uuid.UUID(int=1001), event_type="OrderStatusChanged",
                                               attempt=1, outcome="delivered", status_code=200, duration_ms=12)]
    # asked again (a crash before the commit of the next event), it goes nowhere
    assert webhooks.accept(state, command(delivery(1)), T0, POLICY).due == ()


def test_a_failing_delivery_follows_the_schedule_then_is_given_up() -> None:
    accepted = webhooks.accept(registered(), command(delivery(1)), T0, POLICY)
    state, _ = webhooks.record(accepted.state, accepted.due[0], DOWN, T0, POLICY)  # type: ignore[arg-type]
    assert webhooks.due_at(state) == T0 + timedelta(minutes=1)
    assert webhooks.accept(state, command(RetryWebhookDeliveries(endpoint_id=ENDPOINT)), T0, POLICY).due == ()
    at = T0 + timedelta(minutes=1)
    due = webhooks.accept(state, command(RetryWebhookDeliveries(endpoint_id=ENDPOINT)), at, POLICY).due
    state, _ = webhooks.record(state, due[0], DOWN, at, POLICY)
    assert webhooks.due_at(state) == at + timedelta(minutes=5)
    at = at + timedelta(minutes=5)
    due = webhooks.accept(state, command(RetryWebhookDeliveries(endpoint_id=ENDPOINT)), at, POLICY).due
    state, events = webhooks.record(state, due[0], DOWN, at, POLICY)
    assert state.pending == () and webhooks.due_at(state) is None
    assert [(line.outcome, line.attempt) for line in state.log] == [("failed", 1), ("failed", 2), ("gave_up", 3)]
    assert [e.outcome for e in events] == ["gave_up"]  # type: ignore[attr-defined]
    assert state.status == "enabled"  # failing for 6 minutes, not the hour that disables


def test_deliveries_that_come_while_the_endpoint_fails_wait_for_its_next_attempt() -> None:
    accepted = webhooks.accept(registered(), command(delivery(1)), T0, POLICY)
    state, _ = webhooks.record(accepted.state, accepted.due[0], DOWN, T0, POLICY)  # type: ignore[arg-type]
    later = webhooks.accept(state, command(delivery(2)), T0 + timedelta(seconds=10), POLICY)
    assert later.due == ()
    assert [d.next_attempt_at for d in later.state.pending] == [T0 + timedelta(minutes=1)] * 2  # type: ignore[union-attr]


def test_a_round_stopped_by_a_failure_defers_the_rest_without_counting_an_attempt() -> None:
    state = registered()
    for n in (1, 2, 3):
        state = state.model_copy(update={"pending": (*state.pending, webhooks.WebhookDelivery(
            delivery_id=uuid.UUID(int=n), event_id=uuid.UUID(int=1000 + n), event_type="OrderStatusChanged",
            body="{}", next_attempt_at=T0))})
    due = webhooks.accept(state, command(RetryWebhookDeliveries(endpoint_id=ENDPOINT)), T0, POLICY).due
    state, _ = webhooks.record(state, due[0], DOWN, T0, POLICY)
    state = webhooks.defer(state, due[1:])
    assert {(d.delivery_id.int, d.attempts, d.next_attempt_at) for d in state.pending} == {
        (1, 1, T0 + timedelta(minutes=1)), (2, 0, T0 + timedelta(minutes=1)), (3, 0, T0 + timedelta(minutes=1))}


def test_an_endpoint_failing_for_the_disable_period_is_disabled_and_skips_what_comes() -> None:
    accepted = webhooks.accept(registered(), command(delivery(1)), T0, POLICY)
    state, _ = webhooks.record(accepted.state, accepted.due[0], DOWN, T0, POLICY)  # type: ignore[arg-type]
    state = webhooks.accept(state, command(delivery(2)), T0, POLICY).state  # type: ignore[assignment]
    an_hour = T0 + timedelta(hours=1)
    state, events = webhooks.record(state, state.pending[0], DOWN, an_hour, POLICY)
    assert state.status == "disabled" and state.pending == () and "HTTP 503" in (state.disabled_reason or "")
    assert [getattr(e, "outcome", None) for e in events] == ["failed", "gave_up", "gave_up", None]
    assert events[-1] == WebhookEndpointChanged(endpoint_id=ENDPOINT, events=("OrderStatusChanged",), status="disabled")
    skipped = webhooks.accept(state, command(delivery(3)), an_hour, POLICY)
    assert skipped.due == () and skipped.state.log[-1].outcome == "skipped"  # type: ignore[union-attr]
    # enabled again by an admin: announced, and the next delivery goes at once
    enabled = webhooks.accept(skipped.state, command(EnableWebhookEndpoint(endpoint_id=ENDPOINT, requested_by="ada")),
                              an_hour, POLICY)
    assert enabled.state.status == "enabled" and enabled.state.failing_since is None  # type: ignore[union-attr]
    assert enabled.events == [WebhookEndpointChanged(endpoint_id=ENDPOINT, events=("OrderStatusChanged",),
                                                     status="enabled")]
    assert len(webhooks.accept(enabled.state, command(delivery(4)), an_hour, POLICY).due) == 1


def test_a_success_between_failures_restarts_the_disable_clock() -> None:
    accepted = webhooks.accept(registered(), command(delivery(1)), T0, POLICY)
    state, _ = webhooks.record(accepted.state, accepted.due[0], DOWN, T0, POLICY)  # type: ignore[arg-type]
    half = T0 + timedelta(minutes=30)
    state, _ = webhooks.record(state, state.pending[0], OK, half, POLICY)
    assert state.failing_since is None
    accepted = webhooks.accept(state, command(delivery(2)), half, POLICY)
    state, _ = webhooks.record(accepted.state, accepted.due[0], DOWN, T0 + timedelta(hours=1), POLICY)  # type: ignore[arg-type]
    assert state.status == "enabled"


def test_types_the_endpoint_does_not_subscribe_to_are_left_out() -> None:
    accepted = webhooks.accept(registered(), command(delivery(1, "ShipmentCreated")), T0, POLICY)
    assert accepted.due == () and accepted.state == registered() and accepted.events == []


def test_deleting_gives_up_what_waits_and_leaves_the_registry() -> None:
    accepted = webhooks.accept(registered(), command(delivery(1)), T0, POLICY)
    state, _ = webhooks.record(accepted.state, accepted.due[0], DOWN, T0, POLICY)  # type: ignore[arg-type]
    deleted = webhooks.accept(state, command(DeleteWebhookEndpoint(endpoint_id=ENDPOINT, requested_by="ada")), T0, POLICY)
    assert deleted.state.status == "deleted" and deleted.state.pending == ()  # type: ignore[union-attr]
    assert [getattr(e, "outcome", None) for e in deleted.events] == ["gave_up", None]
    assert deleted.events[-1].status == "deleted"  # type: ignore[attr-defined]


def test_commands_for_an_unknown_endpoint_are_dead_lettered() -> None:
    with pytest.raises(UnhandledEvent):
        webhooks.accept(None, command(delivery(1)), T0, POLICY)
