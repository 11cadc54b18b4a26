"""Stripe payments behind a small interface: one manual-capture PaymentIntent per order.

    payments = StripePayments.from_settings(settings)          # or StripePayments(api_key, api_base, ...)
    intent = await payments.create_intent(order_id, tenant, amount=2598, currency="EUR")
    intent = await payments.capture(order_id, intent.id)       # take the authorised money
    intent = await payments.cancel(order_id, intent.id)        # release the authorisation
    refund = await payments.refund(order_id, intent.id)        # give a captured payment back, in full
    intent = await payments.retrieve(intent.id)

`Intent` and `Refund` are frozen snapshots of what Stripe answered; `Intent.order_id` is read from
the intent's metadata (None where it has none: stripe-mock never echoes metadata).

Idempotency: every write sends the key `order-<order_id>-<action>`, so a retry, a redelivered
event or a second worker makes no second intent, capture or refund for an order. Stripe keeps keys
for at least 24 hours; past that a replayed create would make a new intent, so callers store the
intent id and create only for an order that has none. The same key with other parameters is a
bug and comes back as `PaymentRejected` (Stripe's `idempotency_error`).

Errors: `PaymentRejected(message)` when Stripe refuses (card declined, invalid request, bad key);
`message` is Stripe's user-facing text and the same call will never succeed. Transient failures
(connection errors, 429 and lock timeouts, 409 while a request with the same key is in flight,
5xx, or Stripe's `Stripe-Should-Retry: true`) are retried with capped, jittered exponential backoff
(`RetryPolicy`); once the attempts are spent, `StripeUnavailable` says that a later retry with the
same key is safe.

The SDK blocks, so each attempt runs in a thread (`asyncio.to_thread`); its async methods would
need httpx or a per-loop aiohttp session. The SDK's own retries are off: the policy here is the
only one, so the call log counts real HTTP attempts.

Call log: with `call_log` set (FC_STRIPE_CALL_LOG), every attempt appends one JSON line
`{"action", "order_id", "idempotency_key", "at"}`. Each line is one `write` on an O_APPEND file
descriptor, so lines of several processes interleave whole.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import stripe

from streams.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")


class PaymentRejected(Exception):
    """Stripe refused the request; `message` is its user-facing reason, `code` its error code."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class StripeUnavailable(Exception):
    """Stripe could not be reached or kept failing transiently; retrying later with the same key is safe."""


@dataclass(frozen=True)
class Intent:
    id: str
    status: str
    amount: int
    currency: str
    client_secret: str | None
    order_id: uuid.UUID | None


@dataclass(frozen=True)
class Refund:
    id: str
    status: str | None
    amount: int
    currency: str
    intent_id: str | None


class PaymentProvider(Protocol):
    async def create_intent(self, order_id: uuid.UUID, tenant: str, amount: int, currency: str) -> Intent: ...
    async def capture(self, order_id: uuid.UUID, intent_id: str) -> Intent: ...
    async def cancel(self, order_id: uuid.UUID, intent_id: str) -> Intent: ...
    async def refund(self, order_id: uuid.UUID, intent_id: str) -> Refund: ...
    async def retrieve(self, intent_id: str) -> Intent: ...


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    backoff_seconds: float = 0.25
    max_backoff_seconds: float = 5.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts must be at least 1, not {self.attempts}")

    def delay(self, attempt: int) -> float:
        """Pause after failed attempt `attempt` (1-based); jittered so that workers do not retry in step."""
        return min(self.max_backoff_seconds, self.backoff_seconds * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


def idempotency_key(order_id: uuid.UUID, action: str) -> str:
    return f"order-{order_id}-{action}"


def is_transient(error: stripe.StripeError) -> bool:
    """Whether the same request may succeed later; Stripe's own `Stripe-Should-Retry` advice wins."""
    headers = {name.lower(): value for name, value in (error.headers or {}).items()}
    advice = headers.get("stripe-should-retry")
    if advice in ("true", "false"):
        return advice == "true"
    if isinstance(error, stripe.APIConnectionError):
        return bool(error.should_retry)
    if isinstance(error, stripe.RateLimitError) or error.code == "lock_timeout":
        return True
    status = error.http_status
    return status is not None and (status == 409 or status >= 500)


def append_call(path: Path, action: str, order_id: uuid.UUID | None, key: str | None) -> None:
    """One JSON line in one `write` on an O_APPEND descriptor: whole lines even with several writers."""
    line = json.dumps({
        "action": action, "order_id": str(order_id) if order_id else None,
        "idempotency_key": key, "at": datetime.now(UTC).isoformat(),
    }) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _order_id_of(metadata: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(metadata["order_id"])
    except (KeyError, TypeError, ValueError):
        return None


def _intent(pi: stripe.PaymentIntent) -> Intent:
    return Intent(
        id=pi.id, status=pi.status, amount=pi.amount, currency=pi.currency,
        client_secret=pi.client_secret, order_id=_order_id_of(pi.metadata),
    )


def _refund(refund: stripe.Refund) -> Refund:
    intent = refund.payment_intent
    intent_id = intent if isinstance(intent, str) or intent is None else intent.id
    return Refund(id=refund.id, status=refund.status, amount=refund.amount, currency=refund.currency,
                  intent_id=intent_id)


class StripePayments:
    """`PaymentProvider` over the stripe SDK. `http_client` replaces the SDK's (requests) transport."""

    def __init__(self, api_key: str, api_base: str, *, retry: RetryPolicy = RetryPolicy(),
                 call_log: Path | None = None, http_client: stripe.HTTPClient | None = None) -> None:
        self._client = stripe.StripeClient(
            api_key, base_addresses={"api": api_base}, max_network_retries=0, http_client=http_client
        )
        self.retry = retry
        self.call_log = call_log

    @classmethod
    def from_settings(cls, settings: Settings) -> StripePayments:
        retry = RetryPolicy(attempts=settings.stripe_attempts, backoff_seconds=settings.stripe_backoff_seconds)
        return cls(settings.stripe_api_key, settings.stripe_api_base, retry=retry, call_log=settings.stripe_call_log)

    async def create_intent(self, order_id: uuid.UUID, tenant: str, amount: int, currency: str) -> Intent:
        params = {
            "amount": amount, "currency": currency.lower(), "capture_method": "manual",
            "metadata": {"order_id": str(order_id), "tenant": tenant},
        }
        return _intent(await self._write(
            "create", order_id, lambda options: self._client.v1.payment_intents.create(params, options)
        ))

    async def capture(self, order_id: uuid.UUID, intent_id: str) -> Intent:
        return _intent(await self._write(
            "capture", order_id, lambda options: self._client.v1.payment_intents.capture(intent_id, options=options)
        ))

    async def cancel(self, order_id: uuid.UUID, intent_id: str) -> Intent:
        return _intent(await self._write(
            "cancel", order_id, lambda options: self._client.v1.payment_intents.cancel(intent_id, options=options)
        ))

    async def refund(self, order_id: uuid.UUID, intent_id: str) -> Refund:
        return _refund(await self._write(
            "refund", order_id, lambda options: self._client.v1.refunds.create({"payment_intent": intent_id}, options)
        ))

    async def retrieve(self, intent_id: str) -> Intent:
        # A read changes nothing, so it needs no idempotency key.
        return _intent(await self._call(
            "retrieve", None, None, lambda: self._client.v1.payment_intents.retrieve(intent_id)
        ))

    async def _write(self, action: str, order_id: uuid.UUID, request: Callable[[Any], T]) -> T:
        """`request(options)` with the order's idempotency key for `action` in its request options."""
        key = idempotency_key(order_id, action)
        return await self._call(action, order_id, key, lambda: request({"idempotency_key": key}))

    async def _call(self, action: str, order_id: uuid.UUID | None, key: str | None, request: Callable[[], T]) -> T:
        def attempt() -> T:
            if self.call_log is not None:
                append_call(self.call_log, action, order_id, key)
            return request()

        number = 0
        while True:
            number += 1
            try:
                return await asyncio.to_thread(attempt)
            except stripe.StripeError as error:
                if not is_transient(error):
                    raise PaymentRejected(error.user_message or str(error), code=error.code) from error
                if number == self.retry.attempts:
                    raise StripeUnavailable(
                        f"Stripe {action} (order {order_id}) still failing after {number} attempts: "
                        f"{error.user_message or error}"
                    ) from error
                pause = self.retry.delay(number)
                log.warning("Stripe %s (order %s) failed transiently (%s); attempt %d of %d in %.2fs",
                            action, order_id, type(error).__name__, number + 1, self.retry.attempts, pause)
                await asyncio.sleep(pause)
