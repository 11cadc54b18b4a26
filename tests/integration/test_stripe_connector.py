"""The Stripe adapter against a real stripe-mock process (no Kafka).

stripe-mock answers from fixtures: it echoes amount, currency and path ids, never metadata, and does
not honour idempotency keys, so these tests check what the adapter sends and how it reacts, not
Stripe's state machine.
"""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import stripe

from connectors.stripe import PaymentRejected, RetryPolicy, StripePayments, StripeUnavailable
from streams.settings import DEVELOPMENT_STRIPE_API_KEY
from tests.harness import free_port

FAST = RetryPolicy(attempts=3, backoff_seconds=0.001, max_backoff_seconds=0.002)


class RecordingClient(stripe.RequestsClient):
    """The SDK's own transport, recording each request; the first `fail_first` raise a connection error."""

    def __init__(self, fail_first: int = 0) -> None:
        super().__init__()
        self.fail_first = fail_first
        self.sent: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def request(self, method: str, url: str, headers: Any, post_data: Any = None) -> Any:  # type: ignore[override]
        with self._lock:
            self.sent.append({"method": method, "url": url, "headers": dict(headers or {}),
                              "form": parse_qs(post_data or "")})
            failing = len(self.sent) <= self.fail_first
        if failing:
            raise stripe.APIConnectionError("simulated network drop", should_retry=True)
        return super().request(method, url, headers, post_data)


def calls(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture
def call_log(tmp_path: Path) -> Path:
    return tmp_path / "stripe-calls.jsonl"


@pytest.fixture
def transport() -> RecordingClient:
    return RecordingClient()


@pytest.fixture
def payments(stripe_mock: str, call_log: Path, transport: RecordingClient) -> StripePayments:
    return StripePayments(DEVELOPMENT_STRIPE_API_KEY, stripe_mock, retry=FAST, call_log=call_log, http_client=transport)


async def test_create_sends_a_manual_capture_intent_keyed_by_the_order(
    payments: StripePayments, call_log: Path, transport: RecordingClient
) -> None:
    # Given an order
    order_id = uuid.uuid4()
    # When its intent is created
    intent = await payments.create_intent(order_id, "acme", 2598, "EUR")
    # Then Stripe answered with an intent the storefront can confirm
    assert intent.id.startswith("pi_") and intent.client_secret
    assert (intent.amount, intent.currency) == (2598, "eur")
    # And the request was a manual-capture intent in lower-case currency, tagged with the order
    [sent] = transport.sent
    assert sent["method"] == "post" and sent["url"].endswith("/v1/payment_intents")
    assert sent["form"] == {
        "amount": ["2598"], "currency": ["eur"], "capture_method": ["manual"],
        "metadata[order_id]": [str(order_id)], "metadata[tenant]": ["acme"],
    }
    # And it carried the key derived from the order, which the call log records
    key = f"order-{order_id}-create"
    assert sent["headers"]["Idempotency-Key"] == key
    assert [(c["action"], c["order_id"], c["idempotency_key"]) for c in calls(call_log)] == [
        ("create", str(order_id), key)
    ]


async def test_creating_again_for_the_same_order_reuses_its_key(
    payments: StripePayments, transport: RecordingClient
) -> None:
    order_id = uuid.uuid4()
    await payments.create_intent(order_id, "acme", 500, "eur")
    await payments.create_intent(order_id, "acme", 500, "eur")
    keys = {sent["headers"]["Idempotency-Key"] for sent in transport.sent}
    assert keys == {f"order-{order_id}-create"}


@pytest.mark.parametrize("action", ["capture", "cancel"])
async def test_capture_and_cancel_act_on_the_intent_with_their_own_key(
    payments: StripePayments, call_log: Path, transport: RecordingClient, action: str
) -> None:
    order_id = uuid.uuid4()
    intent = await getattr(payments, action)(order_id, "pi_fc_test")
    assert intent.id == "pi_fc_test"
    [sent] = transport.sent
    assert sent["url"].endswith(f"/v1/payment_intents/pi_fc_test/{action}")
    assert sent["headers"]["Idempotency-Key"] == f"order-{order_id}-{action}"
    assert [c["action"] for c in calls(call_log)] == [action]


async def test_refund_gives_back_the_intents_payment(payments: StripePayments, transport: RecordingClient) -> None:
    order_id = uuid.uuid4()
    refund = await payments.refund(order_id, "pi_fc_test")
    assert refund.id.startswith("re_") and refund.intent_id == "pi_fc_test"
    [sent] = transport.sent
    assert sent["form"] == {"payment_intent": ["pi_fc_test"]}
    assert sent["headers"]["Idempotency-Key"] == f"order-{order_id}-refund"


async def test_retrieve_reads_the_intent_without_a_key(
    payments: StripePayments, call_log: Path, transport: RecordingClient
) -> None:
    intent = await payments.retrieve("pi_fc_test")
    assert intent.id == "pi_fc_test" and intent.status
    assert "Idempotency-Key" not in transport.sent[0]["headers"]
    assert [(c["action"], c["idempotency_key"]) for c in calls(call_log)] == [("retrieve", None)]


async def test_a_request_stripe_refuses_is_rejected_with_its_message_and_not_retried(
    payments: StripePayments, call_log: Path
) -> None:
    # Given an amount beyond Stripe's integer range
    # When the intent is created
    with pytest.raises(PaymentRejected) as rejected:
        await payments.create_intent(uuid.uuid4(), "acme", 10**20, "eur")
    # Then Stripe's own message comes back, after one attempt only
    assert "amount" in rejected.value.message and "numeric" in rejected.value.message
    assert len(calls(call_log)) == 1


async def test_a_bad_api_key_is_rejected_not_retried(stripe_mock: str, call_log: Path) -> None:
    payments = StripePayments("not-a-key", stripe_mock, retry=FAST, call_log=call_log)
    with pytest.raises(PaymentRejected, match="authenticate"):
        await payments.retrieve("pi_fc_test")
    assert len(calls(call_log)) == 1


async def test_an_unreachable_stripe_is_retried_then_reported_unavailable(call_log: Path) -> None:
    # Given a port nothing listens on
    payments = StripePayments(DEVELOPMENT_STRIPE_API_KEY, f"http://127.0.0.1:{free_port()}", retry=FAST,
                              call_log=call_log)
    order_id = uuid.uuid4()
    # When an intent is created
    with pytest.raises(StripeUnavailable) as unavailable:
        await payments.create_intent(order_id, "acme", 500, "eur")
    # Then every configured attempt was made, each with the same key, and the cause is kept
    assert [c["idempotency_key"] for c in calls(call_log)] == [f"order-{order_id}-create"] * FAST.attempts
    assert isinstance(unavailable.value.__cause__, stripe.APIConnectionError)


async def test_a_transient_failure_that_clears_is_retried_with_the_same_key(
    stripe_mock: str, call_log: Path
) -> None:
    # Given a network that drops the first two requests
    transport = RecordingClient(fail_first=2)
    payments = StripePayments(DEVELOPMENT_STRIPE_API_KEY, stripe_mock, retry=FAST, call_log=call_log,
                              http_client=transport)
    order_id = uuid.uuid4()
    # When an intent is created
    intent = await payments.create_intent(order_id, "acme", 500, "eur")
    # Then the third attempt succeeded and all three carried the order's key
    assert intent.id.startswith("pi_")
    assert [sent["headers"]["Idempotency-Key"] for sent in transport.sent] == [f"order-{order_id}-create"] * 3
    assert len(calls(call_log)) == 3
