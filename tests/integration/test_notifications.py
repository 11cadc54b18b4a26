"""Notifications on the real stack: a worker of every agent, a notifications worker in its own group,
and a real SMTP server (aiosmtpd, devtools/smtp.py) that keeps what it receives as .eml files.

The SMTP server receives exactly the expected messages for an order's life and for a failed
campaign, and each expected message of a burst once by Message-ID when the notifications worker is
SIGKILLed while the server holds messages it kept and the worker has not recorded; a message the
server refuses once with a 451 arrives after the agent's retry, once, and is told on
notifications.events with its two attempts."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import confluent_kafka
import pytest
from aiosmtpd.controller import Controller

from devtools.smtp import read_messages, serve
from devtools.stack import free_port
from streams.runtime.stores import DATA, changelog_topic
from tests.conftest import Api
from tests.harness import WEBHOOK_SECRET, Stack, eventually_async
from tests.integration.payments_api import awaiting_payment, send_webhook, settled_past
from tests.integration.test_campaigns import closed, open_campaign, pledge

# Slot 0: every agent (the app group); slot 1: the notifications agent alone (its own group).
STACK_WORKERS = [{}, {"agents": "notifications"}]
VENDOR_ADDRESS = "orders@acme.vendors.example"


@pytest.fixture(scope="module")
def smtp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Controller, Path]]:
    directory = tmp_path_factory.mktemp("mail")
    port = free_port()
    controller = serve(directory, port)
    try:
        yield controller, directory
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def stack_env(stripe_mock: str, smtp: tuple[Controller, Path]) -> dict[str, str]:
    controller, _ = smtp
    return {"STRIPE_API_BASE": stripe_mock, "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "SMTP_URL": f"smtp://127.0.0.1:{controller.port}", "FC_MAIL_RETRY_SCHEDULE": "2s,2s,2s"}


@pytest.fixture
def api(seeded_api: Api) -> Api:
    return seeded_api


def customer(sub: str) -> str:
    return f"{sub}@acme.customers.example"


def about(directory: Path, text: str) -> list[EmailMessage]:
    """The messages received whose subject names `text` (an order id, a campaign id)."""
    return [message for message in read_messages(directory) if text in str(message["Subject"])]


def summary(messages: list[EmailMessage]) -> list[tuple[str, str]]:
    return sorted((str(message["X-FC-Kind"]), str(message["To"])) for message in messages)


async def confirmed_order(api: Api, sub: str, lines: dict[str, int]) -> str:
    order = await awaiting_payment(api, sub, lines)
    assert (await send_webhook(api, "payment_intent.amount_capturable_updated", order)).status == 200
    done = await settled_past(api, order, sub, "payment_pending", "paid")
    assert done["status"] == "confirmed", done
    return str(order["order_id"])


async def drained(stack: Stack) -> None:
    """Until both groups have processed and committed every event: every message is sent and recorded."""
    await asyncio.to_thread(stack.wait_drained)
    await asyncio.to_thread(stack.wait_drained, 90.0, "notifications")


async def test_an_order_life_sends_the_customer_and_the_vendor_one_message_each(
        api: Api, stack: Stack, smtp: tuple[Controller, Path]) -> None:
    _, directory = smtp
    # Given an order placed, paid and confirmed, and one whose card is declined
    order_id = await confirmed_order(api, "nina", {"MUG-1": 2})
    declined = await awaiting_payment(api, "omar", {"TEA-1": 1})
    assert (await send_webhook(api, "payment_intent.payment_failed", declined)).status == 200
    assert (await settled_past(api, declined, "omar", "payment_pending"))["status"] == "cancelled"
    # When every event has been processed
    await drained(stack)
    # Then the SMTP server received exactly the confirmation and the vendor's order to ship ...
    received = about(directory, order_id)
    assert summary(received) == [("order_confirmed", customer("nina")), ("vendor_order_to_ship", VENDOR_ADDRESS)]
    confirmation = next(m for m in received if m["X-FC-Kind"] == "order_confirmed")
    assert confirmation.get_content_type() == "multipart/alternative"
    assert "25.98 EUR" in confirmation.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert confirmation.get_body(("html",)) is not None
    # ... and the declined order's customer one message naming Stripe's reason
    (failed,) = about(directory, str(declined["order_id"]))
    assert (failed["X-FC-Kind"], failed["To"]) == ("payment_failed", customer("omar"))
    assert "Your card was declined." in failed.get_body(("plain",)).get_content()  # type: ignore[union-attr]


async def test_a_failed_campaign_tells_each_pledger_once(api: Api, stack: Stack, smtp: tuple[Controller, Path]) -> None:
    _, directory = smtp
    # Given a campaign that nobody pledges enough to
    campaign_id = f"notify-{uuid.uuid4().hex[:8]}"
    await open_campaign(api, campaign_id, "CUP-1", target=5, maximum=6, ends_in=timedelta(seconds=4))
    assert (await pledge(api, campaign_id, "pia", 1)).status == 200
    assert (await pledge(api, campaign_id, "quinn", 2)).status == 200
    # When it reaches its deadline and fails
    assert (await closed(api, campaign_id))["status"] == "failed"
    await drained(stack)
    # Then each pledger got exactly one message saying so
    assert summary(about(directory, campaign_id)) == [("campaign_failed", customer("pia")),
                                                      ("campaign_failed", customer("quinn"))]


async def test_a_message_refused_once_for_now_arrives_after_its_retry_exactly_once(
        api: Api, stack: Stack, smtp: tuple[Controller, Path]) -> None:
    controller, directory = smtp
    # Given an SMTP server that answers 451 to the first message for a customer
    sub = f"later-{uuid.uuid4().hex[:6]}"
    controller.handler.deferrals[customer(sub)] = 1
    # When the customer's order is confirmed
    order_id = await confirmed_order(api, sub, {"MUG-1": 1})

    async def confirmation_arrived() -> bool:
        return any(m["X-FC-Kind"] == "order_confirmed" for m in about(directory, order_id))

    await eventually_async(confirmation_arrived, 60, "the deferred confirmation arriving after its retry")
    await drained(stack)
    # Then the server refused it once, and received it once after the retry, beside the vendor's message
    assert controller.handler.deferrals[customer(sub)] == 0
    received = about(directory, order_id)
    assert summary(received) == [("order_confirmed", customer(sub)), ("vendor_order_to_ship", VENDOR_ADDRESS)]
    # And notifications.events tells each final outcome once, the confirmation's after two attempts
    told = await asyncio.to_thread(notifications_told, stack, order_id)
    assert sorted((t["kind"], t["outcome"], t["attempts"]) for t in told) == [
        ("order_confirmed", "sent", 2), ("vendor_order_to_ship", "sent", 1)]
    assert not any("@acme.customers.example" in json.dumps(t) for t in told)


def notifications_told(stack: Stack, key: str) -> list[dict[str, object]]:
    """The NotificationSent payloads of `key` on the stack's notifications.events (read_committed)."""
    return [json.loads(value)["payload"] for message_key, value in read_all(stack, f"{stack.namespace}notifications.events")
            if message_key == key.encode() and value is not None]


async def test_sigkills_mid_burst_lose_no_message_and_repeat_none_under_another_message_id(
        api: Api, stack: Stack, smtp: tuple[Controller, Path]) -> None:
    controller, directory = smtp
    notifier = stack.workers[1]
    # Given a backlog of confirmed orders behind a stopped notifications worker, and a slow SMTP
    # server that answers a second after keeping each message
    await asyncio.to_thread(notifier.stop)
    tag = uuid.uuid4().hex[:6]
    subs = [f"burst-{tag}-{n}" for n in range(24)]
    orders = dict(zip(await asyncio.gather(*(confirmed_order(api, sub, {"TEA-1": 1}) for sub in subs)), subs,
                      strict=True))
    expected = sorted([("order_confirmed", customer(sub)) for sub in subs]
                      + [("vendor_order_to_ship", VENDOR_ADDRESS)] * len(subs))

    def burst() -> list[EmailMessage]:
        return [m for m in read_messages(directory) if any(order in str(m["Subject"]) for order in orders)]

    controller.handler.delay = 1.0
    kept_but_unrecorded = []
    try:
        # When the worker starts and is SIGKILLed twice while the server holds messages it kept
        for _ in range(2):
            seen = len(burst())
            await asyncio.to_thread(stack.start_worker, 1, True, "127.0.0.1", "notifications")

            async def kept_more(than: int = seen) -> bool:
                return len(burst()) > than

            await eventually_async(kept_more, 90, "the SMTP server keeping messages of the burst", pause=0.02)
            stack.workers[1].kill()
            # (the server kept messages whose sending the worker never recorded in a commit)
            kept = {str(m["Message-ID"]) for m in burst()}
            recorded = await asyncio.to_thread(recorded_message_ids, stack)
            kept_but_unrecorded.append(len(kept - recorded))
        controller.handler.delay = 0.0
        await asyncio.to_thread(stack.start_worker, 1, True, "127.0.0.1", "notifications")

        async def all_arrived() -> bool:
            return len({str(m["Message-ID"]) for m in burst()}) >= len(expected)

        await eventually_async(all_arrived, 120, "every message of the burst arriving")
        await drained(stack)
    finally:
        controller.handler.delay = 0.0
    # Then every expected message arrived, once by Message-ID: a repeat carries the same id
    messages = burst()
    by_id: dict[str, set[tuple[str, str, str]]] = defaultdict(set)
    for message in messages:
        by_id[str(message["Message-ID"])].add((str(message["X-FC-Kind"]), str(message["To"]), str(message["Subject"])))
    assert all(len(copies) == 1 for copies in by_id.values()), "a Message-ID carried two different messages"
    assert sorted((kind, to) for ((kind, to, _),) in by_id.values()) == expected
    assert len({subject for ((_, _, subject),) in by_id.values()}) == len(expected)
    # And a kill landed while the server held a message the worker had not recorded
    assert max(kept_but_unrecorded) > 0, kept_but_unrecorded
    print(f"kept but unrecorded at each kill: {kept_but_unrecorded}; "
          f"{len(messages) - len(by_id)} repeats of {len(by_id)} messages, each under its Message-ID")


def recorded_message_ids(stack: Stack) -> set[str]:
    """The Message-IDs in the notifications table's committed changelog (read_committed)."""
    topic = changelog_topic(f"{stack.app_id}-notifications", "notifications")
    latest = dict(read_all(stack, topic))
    recorded: set[str] = set()
    for key, value in latest.items():
        if value is not None and key.startswith(DATA):
            recorded.update(json.loads(value).get("sent", {}))
    return recorded


def read_all(stack: Stack, topic: str) -> list[tuple[bytes, bytes | None]]:
    """Every committed record of `topic`, (key, value), in each partition's order."""
    consumer = confluent_kafka.Consumer({
        "bootstrap.servers": stack.bootstrap, "group.id": f"test-reader-{uuid.uuid4().hex}",
        "isolation.level": "read_committed", "enable.auto.commit": False, "enable.partition.eof": True,
    })
    records: list[tuple[bytes, bytes | None]] = []
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING)
                         for p in partitions])
        at_end: set[int] = set()
        while len(at_end) < len(partitions):
            message = consumer.poll(1.0)
            if message is None:
                continue
            if message.error() is not None:
                if message.error().code() == confluent_kafka.KafkaError._PARTITION_EOF:
                    at_end.add(message.partition())
                continue
            records.append((message.key(), message.value()))
    finally:
        consumer.close()
    return records
