"""Stripe payments behind a small interface: one manual-capture PaymentIntent per order.

    payments = StripePayments.from_settings(settings)          # or StripePayments(api_key, api_base, ...)
    intent = await payments.create_intent(order_id, tenant, amount=2598, currency="EUR")
    intent = await payments.capture(order_id, intent.id)       # take the authorised money
    intent = await payments.cancel(order_id, intent.id)        # release the authorisation
    refund = await payments.refund(order_id, intent.id)        # give a captured payment back, in full
    intent = await payments.retrieve(intent.id)
    await payments.close()                                     # on shutdown: closes the HTTP session

`Intent` and `Refund` are frozen snapshots of what Stripe answered; `Intent.order_id` and
`Intent.tenant` are read from the intent's metadata (None where it has none: stripe-mock never
echoes metadata).

Idempotency: every write sends the key `order-<order_id>-<action>`, so a retry, a redelivered
event or a second worker makes no second intent, capture or refund for an order. Stripe keeps keys
for at least 24 hours; past that a replayed create would make a new intent, so callers store the
intent id and create only for an order that has none. The same key with other parameters is a
bug and comes back as `PaymentRejected` (Stripe's `idempotency_error`).

Running a call: the payments agent awaits it before its transaction commits, so a call must not
hold anything else. The SDK's async methods over an aiohttp transport (`AiohttpTransport`, on the
SDK's public HTTPClient interface) run it on the event loop: no thread, and while one order waits
for Stripe the loop serves the other keys and commits, and calls for different orders are in flight
side by side. Each HTTP attempt has `timeout` seconds (FC_STRIPE_TIMEOUT, 5); the SDK retries
transient failures (connection errors and timeouts, 409, 5xx, or Stripe's `Stripe-Should-Retry:
true`) with its own capped, jittered exponential backoff, up to `attempts` in all
(FC_STRIPE_ATTEMPTS, 3). `asyncio.wait_for` bounds the whole call by `deadline`
(FC_STRIPE_CALL_DEADLINE, 20), well below the transaction timeout: a Stripe that accepts
connections and never answers fails the call with `StripeUnavailable` at the deadline, however the
attempts are configured (with the defaults they end first: 3 x 5 s plus at most 1.5 s of backoff).
The aiohttp session is made by the first call, inside the running loop, and belongs to that loop;
`close()` closes it.

Errors: `PaymentRejected(message)` when Stripe refuses (card declined, invalid request, bad key);
`message` is Stripe's user-facing text and the same call will never succeed. `StripeUnavailable`
when the SDK's attempts end on a transient failure (`is_transient`: also a 429 the SDK does not
retry) or the deadline passes; a later retry with the same key is safe.

Metrics (prometheus-client's default registry, served at `/metrics` by the gateway and the
workers): `fc_stripe_calls_total{action, outcome}` (succeeded, rejected, unavailable, deadline, error) with
`fc_stripe_call_duration_seconds{action}` per call, retries included, and
`fc_stripe_attempts_total{action, result}` per HTTP attempt (`2xx`, `4xx`, `5xx`, `connection_error`).

Call log: with `call_log` set (FC_STRIPE_CALL_LOG), every HTTP attempt, the SDK's retries included,
appends one JSON line `{"action", "order_id", "idempotency_key", "at"}` just before it is sent.
Each line is one `write` on an O_APPEND file descriptor, so lines of several processes interleave
whole.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aiohttp
import stripe
from prometheus_client import Counter, Histogram

from streams.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

# Labels: the action (create, capture, cancel, refund, retrieve) and a fixed outcome, never an id.
CALLS = Counter("fc_stripe_calls",
                "Stripe calls by action and outcome (succeeded, rejected, unavailable, deadline, error)",
                ["action", "outcome"])
CALL_SECONDS = Histogram("fc_stripe_call_duration_seconds", "Time of a Stripe call, the SDK's retries included",
                         ["action"], buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30))
ATTEMPTS = Counter("fc_stripe_attempts", "HTTP attempts of Stripe calls (retries included) by answer: 2xx, 4xx, "
                   "5xx or connection_error", ["action", "result"])


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
    tenant: str | None = None


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
    async def close(self) -> None: ...


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


def _tenant_of(metadata: Any) -> str | None:
    try:
        tenant = metadata["tenant"]
    except (KeyError, TypeError):
        return None
    return tenant if isinstance(tenant, str) and tenant else None


def _intent(pi: stripe.PaymentIntent) -> Intent:
    return Intent(
        id=pi.id, status=pi.status, amount=pi.amount, currency=pi.currency,
        client_secret=pi.client_secret, order_id=_order_id_of(pi.metadata), tenant=_tenant_of(pi.metadata),
    )


def _refund(refund: stripe.Refund) -> Refund:
    intent = refund.payment_intent
    intent_id = intent if isinstance(intent, str) or intent is None else intent.id
    return Refund(id=refund.id, status=refund.status, amount=refund.amount, currency=refund.currency,
                  intent_id=intent_id)


class AiohttpTransport(stripe.HTTPClient):
    """The SDK's async HTTP seam over an aiohttp session, which the first request makes in the running loop.

    Each answer is read inside `async with`, so one that stalls or breaks off after its status line
    still gives its connection back. stripe.AIOHTTPClient reads the body after it has let go of the
    response: measured, such a connection stays taken until the session closes, so a Stripe that
    stalls in the body fills the pool and then every call fails, even after Stripe recovers.
    """

    name = "aiohttp"

    def __init__(self, timeout: float = 5.0) -> None:
        super().__init__()
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def request_async(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any = None
    ) -> tuple[bytes, int, Mapping[str, str]]:
        if self._session is None:
            tls = ssl.create_default_context(cafile=stripe.ca_bundle_path)  # the SDK's own CA bundle
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls), timeout=self.timeout)
        try:
            async with self._session.request(method, url, headers=headers, data=post_data) as response:
                return await response.read(), response.status, response.headers
        except (TimeoutError, aiohttp.ClientError) as error:
            # The SDK retries a connection error that says so, as it does its own clients'.
            raise stripe.APIConnectionError(
                f"Network error talking to Stripe ({type(error).__name__}: {error})", should_retry=True
            ) from error

    def sleep_async(self, secs: float) -> Awaitable[None]:
        return asyncio.sleep(secs)

    async def close_async(self) -> None:
        if self._session is not None:
            await self._session.close()


# The call an HTTP attempt belongs to, for the call log: (action, order id). Set by `_call` for the
# task that runs the SDK call, so concurrent calls each see their own.
_CALL: ContextVar[tuple[str, uuid.UUID | None]] = ContextVar("stripe_call")


class _Attempts(stripe.HTTPClient):
    """What the SDK sends through: every attempt, its retries included, reaches `request_async` once,
    which logs it and hands it to the transport (HTTPClient's public `async_fallback_client`, to
    which it also leaves the backoff sleeps and closing)."""

    name = "aiohttp"

    def __init__(self, transport: stripe.HTTPClient, call_log: Path | None) -> None:
        super().__init__(async_fallback_client=transport)
        self.call_log = call_log

    async def request_async(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any = None
    ) -> tuple[bytes, int, Mapping[str, str]]:
        action, order_id = _CALL.get(("unknown", None))
        if self.call_log is not None:
            append_call(self.call_log, action, order_id, headers.get("Idempotency-Key"))
        try:
            answer = await super().request_async(method, url, headers, post_data)
        except stripe.APIConnectionError:
            ATTEMPTS.labels(action, "connection_error").inc()
            raise
        ATTEMPTS.labels(action, f"{min(max(answer[1] // 100, 1), 5)}xx").inc()
        return answer


class StripePayments:
    """`PaymentProvider` over the stripe SDK's async methods (see the module docstring).

    `http_client` replaces the transport, `AiohttpTransport(timeout)` (tests record or script
    attempts with it); it brings its own per-attempt timeout.
    """

    def __init__(self, api_key: str, api_base: str, *, timeout: float = 5.0, attempts: int = 3,
                 deadline: float = 20.0, call_log: Path | None = None,
                 http_client: stripe.HTTPClient | None = None) -> None:
        if attempts < 1:
            raise ValueError(f"StripePayments needs at least 1 attempt, not {attempts}")
        # The SDK logs two INFO lines per request (a twentieth of a worker's CPU per order); what
        # matters, failures and retries, this adapter reports itself.
        logging.getLogger("stripe").setLevel(logging.WARNING)
        self._http = _Attempts(http_client or AiohttpTransport(timeout), call_log)
        self._client = stripe.StripeClient(
            api_key, base_addresses={"api": api_base}, max_network_retries=attempts - 1, http_client=self._http
        )
        self.deadline = deadline

    @classmethod
    def from_settings(cls, settings: Settings) -> StripePayments:
        return cls(settings.stripe_api_key, settings.stripe_api_base, timeout=settings.stripe_timeout_seconds,
                   attempts=settings.stripe_attempts, deadline=settings.stripe_call_deadline_seconds,
                   call_log=settings.stripe_call_log)

    async def close(self) -> None:
        await self._http.close_async()

    async def create_intent(self, order_id: uuid.UUID, tenant: str, amount: int, currency: str) -> Intent:
        params = {
            "amount": amount, "currency": currency.lower(), "capture_method": "manual",
            "metadata": {"order_id": str(order_id), "tenant": tenant},
        }
        return _intent(await self._write(
            "create", order_id, lambda options: self._client.v1.payment_intents.create_async(params, options)
        ))

    async def capture(self, order_id: uuid.UUID, intent_id: str) -> Intent:
        return _intent(await self._write(
            "capture", order_id,
            lambda options: self._client.v1.payment_intents.capture_async(intent_id, options=options),
        ))

    async def cancel(self, order_id: uuid.UUID, intent_id: str) -> Intent:
        return _intent(await self._write(
            "cancel", order_id,
            lambda options: self._client.v1.payment_intents.cancel_async(intent_id, options=options),
        ))

    async def refund(self, order_id: uuid.UUID, intent_id: str) -> Refund:
        return _refund(await self._write(
            "refund", order_id,
            lambda options: self._client.v1.refunds.create_async({"payment_intent": intent_id}, options),
        ))

    async def retrieve(self, intent_id: str) -> Intent:
        # A read changes nothing, so it needs no idempotency key.
        return _intent(await self._call("retrieve", None, self._client.v1.payment_intents.retrieve_async(intent_id)))

    async def _write(
        self, action: str, order_id: uuid.UUID, request: Callable[[stripe.RequestOptions], Awaitable[T]]
    ) -> T:
        """`request(options)` with the order's idempotency key for `action` in its request options."""
        return await self._call(action, order_id, request({"idempotency_key": idempotency_key(order_id, action)}))

    async def _call(self, action: str, order_id: uuid.UUID | None, request: Awaitable[T]) -> T:
        token = _CALL.set((action, order_id))
        started = time.monotonic()
        outcome = ""
        try:
            answer = await asyncio.wait_for(request, self.deadline)
            outcome = "succeeded"
            return answer
        except TimeoutError as error:
            outcome = "deadline"
            log.warning("Stripe %s (order %s) had no answer within %gs", action, order_id, self.deadline)
            raise StripeUnavailable(
                f"Stripe {action} (order {order_id}) had no answer within {self.deadline:g}s"
            ) from error
        except stripe.StripeError as error:
            if not is_transient(error):
                outcome = "rejected"
                raise PaymentRejected(error.user_message or str(error), code=error.code) from error
            outcome = "unavailable"
            log.warning("Stripe %s (order %s) failed transiently: %s", action, order_id, error.user_message or error)
            raise StripeUnavailable(
                f"Stripe {action} (order {order_id}) failed transiently: {error.user_message or error}"
            ) from error
        except Exception:
            outcome = "error"  # not Stripe's answer: a failure of ours, in the log of whoever awaited the call
            raise
        finally:
            _CALL.reset(token)
            if outcome:
                CALLS.labels(action, outcome).inc()
                CALL_SECONDS.labels(action).observe(time.monotonic() - started)
