"""The Stripe adapter against a real stripe-mock process (no Kafka), and against a Stripe that hangs.

stripe-mock answers from fixtures: it echoes amount, currency and path ids, never metadata, and does
not honour idempotency keys, so these tests check what the adapter sends and how it reacts, not
Stripe's state machine.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import stripe

from connectors.stripe import AiohttpTransport, PaymentRejected, StripePayments, StripeUnavailable
from streams.settings import DEVELOPMENT_STRIPE_API_KEY, Settings
from tests.harness import free_port


class RecordingClient(AiohttpTransport):
    """The adapter's own transport, recording each attempt; the first `fail_first` raise a connection
    error. The SDK's backoff sleeps are recorded, not slept."""

    def __init__(self, fail_first: int = 0) -> None:
        super().__init__()
        self.fail_first = fail_first
        self.sent: list[dict[str, Any]] = []
        self.sleeps: list[float] = []

    async def request_async(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any = None
    ) -> tuple[bytes, int, Mapping[str, str]]:
        self.sent.append({"method": method, "url": url, "headers": dict(headers), "form": parse_qs(post_data or "")})
        if len(self.sent) <= self.fail_first:
            raise stripe.APIConnectionError("simulated network drop", should_retry=True)
        return await super().request_async(method, url, headers, post_data)

    async def sleep_async(self, secs: float) -> None:  # type: ignore[override]
        self.sleeps.append(secs)


@dataclass
class HangingStripe:
    """A Stripe that accepts connections and reads requests but never finishes an answer."""

    url: str
    accepted: int = 0  # connections, all told
    open: int = 0
    most_open: int = 0
    handlers: set[asyncio.Task[None]] = field(default_factory=set)

    async def hung_up_on(self) -> None:
        """Returns once no connection is open: every client gave its connection up."""
        while self.open:
            await asyncio.sleep(0.01)


@pytest.fixture(params=["before the status line", "in the body"])
async def hanging_stripe(request: pytest.FixtureRequest) -> AsyncIterator[HangingStripe]:
    """An asyncio server on a free 127.0.0.1 port that stalls every answer: before its status line, or
    after the headers and the first byte of the body."""
    answer = b"" if request.param == "before the status line" else (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
    )

    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stub.handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        stub.accepted += 1
        stub.open += 1
        stub.most_open = max(stub.most_open, stub.open)
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer)
            await reader.read()  # until the client hangs up
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            stub.open -= 1
            writer.close()

    server = await asyncio.start_server(stall, "127.0.0.1", 0)
    stub = HangingStripe(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
    try:
        yield stub
    finally:
        server.close()
        await server.wait_closed()
        # every client has hung up by now (the test closed its payments), so the handlers end
        await asyncio.wait_for(asyncio.gather(*stub.handlers), 5)


def calls(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture
def call_log(tmp_path: Path) -> Path:
    return tmp_path / "stripe-calls.jsonl"


@pytest.fixture
def transport() -> RecordingClient:
    return RecordingClient()


@pytest.fixture
async def payments(stripe_mock: str, call_log: Path, transport: RecordingClient) -> AsyncIterator[StripePayments]:
    payments = StripePayments(DEVELOPMENT_STRIPE_API_KEY, stripe_mock, call_log=call_log, http_client=transport)
    yield payments
    await payments.close()


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
    payments = StripePayments("not-a-key", stripe_mock, call_log=call_log)
    try:
        with pytest.raises(PaymentRejected, match="authenticate"):
            await payments.retrieve("pi_fc_test")
    finally:
        await payments.close()
    assert len(calls(call_log)) == 1


async def test_the_settings_make_a_working_adapter(stripe_mock: str, call_log: Path) -> None:
    settings = Settings(stripe_api_key=DEVELOPMENT_STRIPE_API_KEY, stripe_api_base=stripe_mock,
                        stripe_call_log=call_log)
    payments = StripePayments.from_settings(settings)
    try:
        intent = await payments.retrieve("pi_fc_test")
    finally:
        await payments.close()
    assert intent.id == "pi_fc_test"
    assert [c["action"] for c in calls(call_log)] == ["retrieve"]


async def test_an_unreachable_stripe_is_retried_then_reported_unavailable(call_log: Path) -> None:
    # Given a port nothing listens on
    payments = StripePayments(DEVELOPMENT_STRIPE_API_KEY, f"http://127.0.0.1:{free_port()}", attempts=3,
                              call_log=call_log)
    order_id = uuid.uuid4()
    # When an intent is created
    try:
        with pytest.raises(StripeUnavailable) as unavailable:
            await payments.create_intent(order_id, "acme", 500, "eur")
    finally:
        await payments.close()
    # Then every configured attempt was made, each with the same key, and the cause is kept
    assert [c["idempotency_key"] for c in calls(call_log)] == [f"order-{order_id}-create"] * 3
    assert isinstance(unavailable.value.__cause__, stripe.APIConnectionError)


async def test_a_transient_failure_that_clears_is_retried_with_the_same_key(
    stripe_mock: str, call_log: Path
) -> None:
    # Given a network that drops the first two requests
    transport = RecordingClient(fail_first=2)
    payments = StripePayments(DEVELOPMENT_STRIPE_API_KEY, stripe_mock, attempts=3, call_log=call_log,
                              http_client=transport)
    order_id = uuid.uuid4()
    # When an intent is created
    try:
        intent = await payments.create_intent(order_id, "acme", 500, "eur")
    finally:
        await payments.close()
    # Then the SDK backed off twice and the third attempt succeeded; all three carried the order's key
    assert intent.id.startswith("pi_")
    assert [sent["headers"]["Idempotency-Key"] for sent in transport.sent] == [f"order-{order_id}-create"] * 3
    assert len(transport.sleeps) == 2
    assert len(calls(call_log)) == 3


async def test_a_stripe_that_never_answers_fails_each_call_at_the_deadline_without_holding_the_loop(
    hanging_stripe: HangingStripe, call_log: Path
) -> None:
    # Given a Stripe that never finishes an answer, and attempts that would wait far beyond the deadline
    payments = StripePayments(DEVELOPMENT_STRIPE_API_KEY, hanging_stripe.url, timeout=600, attempts=3,
                              deadline=0.5, call_log=call_log)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    # When three orders' intents are created at once while another coroutine runs
    orders = [uuid.uuid4() for _ in range(3)]
    ticker = asyncio.create_task(tick())
    try:
        outcomes = await asyncio.gather(
            *(payments.create_intent(order_id, "acme", 500, "eur") for order_id in orders), return_exceptions=True
        )
        ticked_meanwhile = ticks
        # (the abandoned attempts gave their connections up, before the adapter is closed)
        await asyncio.wait_for(hanging_stripe.hung_up_on(), 5)
    finally:
        ticker.cancel()
        await payments.close()
    # Then each call failed as unavailable at its deadline, after its one attempt
    assert [type(outcome) for outcome in outcomes] == [StripeUnavailable] * 3
    assert all("no answer within 0.5s" in str(outcome) for outcome in outcomes)
    assert sorted(c["order_id"] for c in calls(call_log)) == sorted(str(order_id) for order_id in orders)
    # And the three waited side by side, not one after another
    assert hanging_stripe.most_open == 3
    # And the event loop went on meanwhile: the other coroutine ran again and again
    assert ticked_meanwhile >= 5


async def test_an_attempt_stripe_does_not_answer_in_time_is_retried_until_the_attempts_are_spent(
    hanging_stripe: HangingStripe, call_log: Path
) -> None:
    # Given a Stripe that never finishes an answer, short attempts and a deadline beyond them all
    payments = StripePayments(DEVELOPMENT_STRIPE_API_KEY, hanging_stripe.url, timeout=0.2, attempts=2,
                              deadline=30, call_log=call_log)
    order_id = uuid.uuid4()
    # When an intent is created
    try:
        with pytest.raises(StripeUnavailable) as unavailable:
            await payments.create_intent(order_id, "acme", 500, "eur")
        # (and every attempt gave its connection up, before the adapter is closed)
        await asyncio.wait_for(hanging_stripe.hung_up_on(), 5)
    finally:
        await payments.close()
    # Then each attempt timed out and the SDK retried it with the same key, on a new connection
    assert [c["idempotency_key"] for c in calls(call_log)] == [f"order-{order_id}-create"] * 2
    assert hanging_stripe.accepted == 2
    assert isinstance(unavailable.value.__cause__, stripe.APIConnectionError)
