"""The processes' logs: human lines by default, one JSON object a line with `FC_LOG_FORMAT=json`.

`configure(settings, process)` is the one place logging is set up: the worker, the gateway and the
dev tools that start processes call it first thing, instead of `basicConfig`. Both formats go to
stderr through one handler on the root logger.

- `text`: `2026-12-01 18:04:17,858 WARNING streams.runtime.task: dead-lettered: <why> [orders.commands[3]@41 event 9f1c...]`;
  the bracket is the record's event fields (below) in short form, shown only when a record has them.
- `json`: `{"time": "2026-12-01T18:04:17.858Z", "level": "WARNING", "logger": "streams.runtime.task",
  "message": "...", "process": "worker", "topic": ..., "partition": ..., "offset": ..., "event_id": ...}`:
  time in UTC, ISO-8601; every field given with logging's `extra=` as a field of its own; a
  traceback as `exception`. Uncaught exceptions (main thread and others) and `warnings` are
  logged too, so that every line of the process's output is one object.

Where an event is in hand (a dead letter, a failed decision or outside call, an abort in the
middle of a batch) the runtime logs with `extra=event_fields(message, event_id)`. Nothing is logged
per event on the hot path; only failures are.

The standard library does this in a few lines, so no JSON-logging package is needed: the field
names and the short text form are the project's own, and there is one dependency fewer to keep.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from datetime import UTC, datetime
from types import TracebackType
from collections.abc import Awaitable, Generator
from contextvars import ContextVar
from typing import Any, Generic, Protocol, TypeVar

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FORMATS = ("text", "json")
# The fields of a record that carries an event, in the order the text form shows them.
EVENT_FIELDS = ("topic", "partition", "offset", "event_id")
# What every LogRecord has: anything else on a record came with `extra=`.
T = TypeVar("T")
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class _Settings(Protocol):
    @property
    def log_format(self) -> str: ...


class _Message(Protocol):
    """A consumed record (confluent_kafka.Message)."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...


# The event an outside call (a Stripe call of the payments agent) is made for: its logs carry the
# event's fields, though the call's code knows nothing of records (`with_event`, `_EventContext`).
_CALL_EVENT: ContextVar[dict[str, Any] | None] = ContextVar("fc_call_event", default=None)


class with_event(Generic[T]):  # noqa: N801 - used like the function it replaces
    """`call`, awaited with `fields` (`event_fields`) on every record its task logs meanwhile.
    Closing it closes `call` (a call dropped unawaited)."""

    def __init__(self, call: Awaitable[T], fields: dict[str, Any]) -> None:
        self.call = call
        self.fields = fields

    def __await__(self) -> Generator[Any, None, T]:
        token = _CALL_EVENT.set(self.fields)  # in the awaiting task's context: no other task sees it
        try:
            return (yield from self.call.__await__())
        finally:
            try:
                _CALL_EVENT.reset(token)
            except ValueError:  # finalized in another context (dropped unawaited): nothing to undo there
                pass

    def close(self) -> None:
        close = getattr(self.call, "close", None)
        if close is not None:
            close()


class _EventContext(logging.Filter):
    """Adds the fields of the event an outside call is made for to what the call logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = _CALL_EVENT.get()
        if fields:
            for name, value in fields.items():
                if not hasattr(record, name):
                    setattr(record, name, value)
        return True


def event_fields(message: _Message, event_id: str | None = None) -> dict[str, Any]:
    """The `extra=` of a log record about a consumed record: its topic, partition and offset, and
    the event's id when it decoded."""
    fields: dict[str, Any] = {"topic": message.topic(), "partition": message.partition(), "offset": message.offset()}
    if event_id is not None:
        fields["event_id"] = event_id
    return fields


def extras(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a record was given with `extra=`."""
    return {name: value for name, value in vars(record).items() if name not in _RECORD_ATTRIBUTES}


def event_suffix(record: logging.LogRecord) -> str:
    """The short text form of a record's event fields: ` [topic[partition]@offset event <id>]`, or ''."""
    fields = vars(record)
    if "topic" not in fields and "event_id" not in fields:
        return ""
    where = ""
    if "topic" in fields:
        where = f"{fields['topic']}[{fields.get('partition', '?')}]@{fields.get('offset', '?')}"
    event = f"event {fields['event_id']}" if fields.get("event_id") is not None else ""
    return f" [{' '.join(part for part in (where, event) if part)}]"


class TextFormatter(logging.Formatter):
    """The human line, with a record's event fields in short form after the message."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        return super().formatMessage(record) + event_suffix(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line; `fields` are added to every object (the process)."""

    def __init__(self, fields: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.fields = dict(fields or {})

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **self.fields,
            **extras(record),
        }
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            body["exception"] = record.exc_text
        if record.stack_info:
            body["stack"] = self.formatStack(record.stack_info)
        return json.dumps(body, ensure_ascii=False, default=str)


def formatter(log_format: str, process: str) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter({"process": process})
    return TextFormatter()


def configure(settings: _Settings, process: str, level: int = logging.INFO) -> None:
    """Set up the process's logging once, in the format of `FC_LOG_FORMAT`: one handler on the
    root logger (stderr), warnings captured; in JSON, uncaught exceptions logged as records."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(settings.log_format, process))
    handler.addFilter(_EventContext())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
    if settings.log_format == "json":
        sys.excepthook = _log_uncaught
        threading.excepthook = _log_uncaught_in_thread


def kafka_client_logger() -> logging.Logger:
    """The logger a Kafka client's own messages go through (the client config's `logger`), so that
    they are formatted like the rest rather than written to stderr by librdkafka."""
    return logging.getLogger("librdkafka")


def _log_uncaught(kind: type[BaseException], value: BaseException, traceback: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, traceback)
        return
    logging.getLogger("uncaught").critical("uncaught %s: %s", kind.__name__, value, exc_info=(kind, value, traceback))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit or args.exc_value is None:
        return
    logging.getLogger("uncaught").critical(
        "uncaught %s in thread %s: %s", args.exc_type.__name__, args.thread.name if args.thread else "?",
        args.exc_value, exc_info=(args.exc_type, args.exc_value, args.exc_traceback))
