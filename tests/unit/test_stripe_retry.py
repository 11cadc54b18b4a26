"""Which Stripe failures are retried (by the SDK, through the adapter) and what the caller gets, and
the call log's whole lines. The transport is scripted: no network, and the SDK's backoff sleeps
return at once."""

from __future__ import annotations

import json
import multiprocessing
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import stripe
from multidict import CIMultiDict

from connectors.stripe import PaymentRejected, StripePayments, StripeUnavailable, append_call, is_transient

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


INTENT = {"id": "pi_1", "object": "payment_intent", "status": "requires_payment_method", "amount": 500,
          "currency": "eur", "client_secret": "pi_1_secret_x", "metadata": {}}
DECLINED = {"error": {"type": "card_error", "code": "card_declined", "message": "Your card was declined."}}
INTERNAL = {"error": {"type": "api_error", "message": "Something went wrong on Stripe's end."}}
RATE_LIMITED = {"error": {"type": "invalid_request_error", "code": "rate_limit", "message": "Too many requests."}}

Answer = tuple[int, dict[str, Any], dict[str, str]] | Exception
OK: Answer = (200, INTENT, {})
DROPPED: Answer = stripe.APIConnectionError("connection reset", should_retry=True)


class ScriptedClient(stripe.HTTPClient):
    """Answers each attempt with the next of `answers`; the SDK's backoff sleeps are recorded, not slept."""

    name = "scripted"

    def __init__(self, answers: list[Answer]) -> None:
        super().__init__()
        self.answers = answers
        self.attempts = 0
        self.sleeps: list[float] = []

    async def request_async(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any = None
    ) -> tuple[bytes, int, Mapping[str, str]]:
        answer = self.answers[self.attempts]
        self.attempts += 1
        if isinstance(answer, Exception):
            raise answer
        status, body, headers_back = answer
        return json.dumps(body).encode(), status, CIMultiDict(headers_back)

    async def sleep_async(self, secs: float) -> None:  # type: ignore[override]
        self.sleeps.append(secs)

    async def close_async(self) -> None:
        pass


def calls(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture
async def scripted(tmp_path: Path) -> AsyncIterator[tuple[ScriptedClient, StripePayments]]:
    transport = ScriptedClient([])
    payments = StripePayments("sk_test_123", "http://stripe.invalid", attempts=3, call_log=tmp_path / "calls.jsonl",
                              http_client=transport)
    yield transport, payments
    await payments.close()


@pytest.mark.parametrize(("answers", "outcome", "attempts"), [
    ([OK], None, 1),
    ([DROPPED, OK], None, 2),
    ([DROPPED, DROPPED, OK], None, 3),
    ([(409, INTERNAL, {}), OK], None, 2),
    ([(503, INTERNAL, {}), (500, INTERNAL, {}), OK], None, 3),
    ([(500, INTERNAL, {})] * 3, StripeUnavailable, 3),
    ([DROPPED] * 3, StripeUnavailable, 3),
    ([(400, INTERNAL, {"Stripe-Should-Retry": "true"}), OK], None, 2),
    ([(500, INTERNAL, {"Stripe-Should-Retry": "false"})], PaymentRejected, 1),
    ([(429, RATE_LIMITED, {})], StripeUnavailable, 1),
    ([(402, DECLINED, {})], PaymentRejected, 1),
], ids=[
    "answered", "dropped-once", "dropped-twice", "conflict", "5xx-twice", "5xx-throughout",
    "dropped-throughout", "stripe-says-retry", "stripe-says-do-not-retry",
    "rate-limited", "declined",
])
async def test_the_sdk_retries_transient_failures_up_to_the_attempts_and_the_caller_learns_whether_to_retry(
    scripted: tuple[ScriptedClient, StripePayments], tmp_path: Path,
    answers: list[Answer], outcome: type[Exception] | None, attempts: int,
) -> None:
    # Given a Stripe that answers each attempt in turn as scripted
    transport, payments = scripted
    transport.answers = answers
    order_id = uuid.uuid4()
    # When an intent is created
    if outcome is None:
        intent = await payments.create_intent(order_id, "acme", 500, "eur")
        assert intent.id == "pi_1"
    else:
        with pytest.raises(outcome):
            await payments.create_intent(order_id, "acme", 500, "eur")
    # Then the attempts were made, each logged with the order's key, with a backoff before every retry
    assert transport.attempts == attempts
    assert [(c["action"], c["order_id"], c["idempotency_key"]) for c in calls(tmp_path / "calls.jsonl")] == [
        ("create", str(order_id), f"order-{order_id}-create")
    ] * attempts
    assert len(transport.sleeps) == attempts - 1


async def test_a_declined_card_comes_back_with_stripes_message_and_code(
    scripted: tuple[ScriptedClient, StripePayments],
) -> None:
    transport, payments = scripted
    transport.answers = [(402, DECLINED, {})]
    with pytest.raises(PaymentRejected) as rejected:
        await payments.capture(uuid.uuid4(), "pi_1")
    assert (rejected.value.message, rejected.value.code) == ("Your card was declined.", "card_declined")


def test_payments_without_an_attempt_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1 attempt"):
        StripePayments("sk_test_123", "http://stripe.invalid", attempts=0)


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
