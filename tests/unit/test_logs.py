"""The processes' log formats (streams/logs.py): human lines by default, one JSON object a line with
FC_LOG_FORMAT=json, an event's topic, partition, offset and id as fields of their own."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import confluent_kafka
import pytest

from streams import topics
from streams.logs import JsonFormatter, TextFormatter, configure, event_fields, formatter, with_event
from streams.models import Envelope, Money, Product, ProductUpserted
from streams.runtime.agent import Agent, Table
from streams.runtime.stores import PartitionStore
from streams.runtime.task import Task
from streams.settings import Settings
from streams.tables import catalog

# 2026-12-01T18:04:17.858Z
CREATED = datetime(2026, 12, 1, 18, 4, 17, 858000, tzinfo=UTC).timestamp()


def record(message: str, *args: Any, extra: dict[str, Any] | None = None, level: int = logging.WARNING,
           exc_info: Any = None) -> logging.LogRecord:
    made = logging.getLogger("streams.runtime.task").makeRecord(
        "streams.runtime.task", level, __file__, 1, message, args, exc_info, extra=extra)
    made.created = CREATED
    return made


def a_message(offset: int = 41) -> confluent_kafka.Message:
    return confluent_kafka.Message(topic="ns.orders.commands", partition=3, offset=offset, key=b"k", value=b"v")


def test_a_record_with_an_event_is_exactly_this_json_object() -> None:
    # Given a dead letter's record with the event's fields
    line = JsonFormatter({"process": "worker"}).format(
        record("dead-lettered: %s", "no such SKU", extra=event_fields(a_message(), "e-1")))
    # Then the line is one JSON object: time in UTC, level, logger, message, process, the fields
    assert "\n" not in line
    assert json.loads(line) == {
        "time": "2026-12-01T18:04:17.858Z", "level": "WARNING", "logger": "streams.runtime.task",
        "message": "dead-lettered: no such SKU", "process": "worker",
        "topic": "ns.orders.commands", "partition": 3, "offset": 41, "event_id": "e-1",
    }


def test_an_event_that_did_not_decode_has_no_event_id() -> None:
    body = json.loads(JsonFormatter().format(record("dead-lettered", extra=event_fields(a_message()))))
    assert (body["topic"], body["partition"], body["offset"]) == ("ns.orders.commands", 3, 41)
    assert "event_id" not in body


def test_any_extra_is_a_field_and_what_json_cannot_hold_is_its_text() -> None:
    body = json.loads(JsonFormatter().format(record("ok", extra={"path": Path("/x"), "count": 2})))
    assert body["path"] == "/x" and body["count"] == 2


def test_a_traceback_stays_on_the_line() -> None:
    try:
        raise ZeroDivisionError("a bug")
    except ZeroDivisionError:
        line = JsonFormatter().format(record("deciding failed", level=logging.ERROR, exc_info=sys.exc_info()))
    assert "\n" not in line
    body = json.loads(line)
    assert body["level"] == "ERROR" and "ZeroDivisionError: a bug" in body["exception"]


def test_text_is_the_default_and_shows_the_event_in_short() -> None:
    # Given the settings' default
    assert Settings().log_format == "text"
    text = formatter(Settings().log_format, "worker")
    assert isinstance(text, TextFormatter)
    # Then a record with an event ends with its short form, one without has none
    line = text.format(record("dead-lettered: %s", "no such SKU", extra=event_fields(a_message(), "e-1")))
    assert line.endswith(" WARNING streams.runtime.task: dead-lettered: no such SKU [ns.orders.commands[3]@41 event e-1]")
    assert text.format(record("plain")).endswith(" WARNING streams.runtime.task: plain")
    assert text.format(record("x", extra=event_fields(a_message()))).endswith("x [ns.orders.commands[3]@41]")


def test_a_format_other_than_text_or_json_is_refused_naming_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from streams.settings import load

    monkeypatch.setenv("FC_LOG_FORMAT", "xml")
    with pytest.raises(SystemExit, match="FC_LOG_FORMAT='xml' is not valid"):
        load()
    monkeypatch.setenv("FC_LOG_FORMAT", "json")
    assert load().log_format == "json"


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """`configure` replaces the root logger's handlers (pytest's among them): put everything back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    hooks = sys.excepthook, threading.excepthook
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    sys.excepthook, threading.excepthook = hooks
    logging.captureWarnings(False)


def configured(log_format: str, process: str = "worker") -> io.StringIO:
    out = io.StringIO()
    original = sys.stderr
    sys.stderr = out  # the handler writes to the stderr of when it is made
    try:
        configure(Settings(log_format=log_format), process)
    finally:
        sys.stderr = original
    return out


def test_configure_json_makes_every_record_of_every_logger_a_json_line(restored_logging: None) -> None:
    out = configured("json", "gateway")
    logging.getLogger("aiohttp.access").info("GET /readyz 200")
    logging.getLogger("streams.runtime.task").warning("dead-lettered", extra=event_fields(a_message(), "e-2"))
    logging.getLogger("x").debug("below the level: not written")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(line["logger"], line["process"]) for line in lines] == [("aiohttp.access", "gateway"),
                                                                     ("streams.runtime.task", "gateway")]
    assert lines[1]["event_id"] == "e-2" and lines[1]["offset"] == 41


def test_configure_json_logs_an_uncaught_exception_as_a_record(restored_logging: None) -> None:
    out = configured("json")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        sys.excepthook(*sys.exc_info())
    body = json.loads(out.getvalue())
    assert body["level"] == "CRITICAL" and "RuntimeError: boom" in body["exception"]


def test_configure_text_writes_human_lines(restored_logging: None) -> None:
    out = configured("text")
    logging.getLogger("gateway").info("gateway on http://127.0.0.1:8080")
    assert out.getvalue().rstrip().endswith(" INFO gateway: gateway on http://127.0.0.1:8080")


def test_what_an_outside_call_logs_carries_its_event(restored_logging: None) -> None:
    # Given a call (a Stripe call of the payments agent) that logs and knows nothing of records
    out = configured("json")

    async def stripe_call() -> str:
        logging.getLogger("connectors.stripe").warning("Stripe create failed transiently")
        return "answer"

    async def both() -> tuple[str, None]:
        other = asyncio.create_task(asyncio.sleep(0))  # another task's records carry nothing
        answer = await with_event(stripe_call(), event_fields(a_message(7), "e-3"))
        logging.getLogger("elsewhere").warning("after")
        await other
        return answer, None

    # When it runs for an event
    assert asyncio.run(both())[0] == "answer"
    # Then its record carries the event's fields, and a record outside it does not
    first, after = (json.loads(line) for line in out.getvalue().splitlines())
    assert (first["topic"], first["offset"], first["event_id"]) == ("ns.orders.commands", 7, "e-3")
    assert "event_id" not in after


def test_a_dead_letter_is_logged_with_its_topic_partition_offset_and_event_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a task of partition 3 and a product event that does not belong on it
    table = Table("products", Product)
    store = PartitionStore(tmp_path / "products" / "3")
    try:
        agent = Agent(name="products", sources=(topics.CATALOG_PRODUCTS,), table=table,
                      decide=lambda state, event, now, tables: catalog.decide(state, event, now))

        class Outputs:
            def produce(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None) -> None:
                pass

        task = Task(3, 8, "ns.", [agent], {"products": store}, Outputs(), None)  # type: ignore[arg-type]
        event = Envelope.new("acme", ProductUpserted(sku="MUG-1", name="Mug", price=Money(amount=1, currency="EUR")))
        source = topics.full_name("ns.", topics.CATALOG_PRODUCTS.name)
        wrong_key = confluent_kafka.Message(topic=source, partition=3, offset=12, key=b"not-the-key", value=event.to_bytes())
        garbage = confluent_kafka.Message(topic=source, partition=3, offset=13, key=b"k", value=b"{not json")
        # When both are processed
        with caplog.at_level(logging.WARNING, logger="streams.runtime.task"):
            task.process(wrong_key)
            task.process(garbage)
        # Then each dead letter's record has the record's coordinates, and the event id when it decoded
        letters = [r for r in caplog.records if r.getMessage().startswith("dead-lettered")]
        assert [(r.topic, r.partition, r.offset, getattr(r, "event_id", None)) for r in letters] == [  # type: ignore[attr-defined]
            (source, 3, 12, event.event_id), (source, 3, 13, None)]
    finally:
        store.close()
