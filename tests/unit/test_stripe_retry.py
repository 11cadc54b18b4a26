"""Which Stripe failures the adapter retries, how long it waits, and the call log's whole lines."""

from __future__ import annotations

import json
import multiprocessing
import uuid
from pathlib import Path

import pytest
import stripe

from connectors.stripe import RetryPolicy, append_call, is_transient

SHOULD_RETRY = {"Stripe-Should-Retry": "true"}
SHOULD_NOT_RETRY = {"Stripe-Should-Retry": "false"}


@pytest.mark.parametrize(("error", "transient"), [
    (stripe.APIConnectionError("connection refused", should_retry=True), True),
    (stripe.APIConnectionError("bad TLS certificate", should_retry=False), False),
    (stripe.RateLimitError("too many requests", http_status=429), True),
    (stripe.RateLimitError("lock timeout", http_status=429, code="lock_timeout"), True),
    (stripe.APIError("idempotent request in progress", http_status=409), True),
    (stripe.APIError("internal error", http_status=500), True),
    (stripe.APIError("service unavailable", http_status=503), True),
    (stripe.APIError("replayed internal error", http_status=500, headers=SHOULD_NOT_RETRY), False),
    (stripe.InvalidRequestError("object locked", None, http_status=400, headers=SHOULD_RETRY), True),
    (stripe.InvalidRequestError("amount is invalid", "amount", http_status=400), False),
    (stripe.InvalidRequestError("no such payment_intent", "intent", http_status=404), False),
    (stripe.CardError("Your card was declined.", None, "card_declined", http_status=402), False),
    (stripe.AuthenticationError("invalid API key", http_status=401), False),
    (stripe.PermissionError("restricted key", http_status=403), False),
    (stripe.IdempotencyError("key reused with other parameters", http_status=400), False),
], ids=lambda value: type(value).__name__ if isinstance(value, stripe.StripeError) else str(value))
def test_transient_failures_are_told_from_permanent_ones(error: stripe.StripeError, transient: bool) -> None:
    assert is_transient(error) is transient


def test_backoff_doubles_from_its_base_and_stops_at_the_cap() -> None:
    policy = RetryPolicy(attempts=8, backoff_seconds=0.1, max_backoff_seconds=1.0)
    for attempt, ceiling in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (7, 1.0)]:
        # jitter takes up to half off, never adds
        assert ceiling / 2 <= policy.delay(attempt) <= ceiling


def test_a_policy_without_attempts_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RetryPolicy(attempts=0)


def _append_many(path: Path, writer: int, lines: int) -> None:
    order_id = uuid.UUID(int=writer)
    for _ in range(lines):
        append_call(path, "create", order_id, f"order-{order_id}-create-{'x' * 200}")


def test_the_call_log_keeps_whole_lines_when_processes_append_at_once(tmp_path: Path) -> None:
    # Given four processes appending to one call log at the same time
    path = tmp_path / "calls.jsonl"
    spawn = multiprocessing.get_context("spawn")
    writers = [spawn.Process(target=_append_many, args=(path, writer, 250)) for writer in range(4)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(60)
        assert process.exitcode == 0
    # Then every line is one whole record
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(records) == 1000
    assert {r["order_id"] for r in records} == {str(uuid.UUID(int=w)) for w in range(4)}
    assert all(r["action"] == "create" and r["at"] for r in records)
