"""The tap's parsing, start positions, catalog and consumer settings (streams/tap.py); no broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from devtools.generate import artifacts
from streams import models as m
from streams import tap, topics
from streams.settings import PROJECT_ROOT, Settings

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "ago"), [
    ("90s", timedelta(seconds=90)),
    ("15m", timedelta(minutes=15)),
    ("2h", timedelta(hours=2)),
    ("1d", timedelta(days=1)),
    ("1w", timedelta(weeks=1)),
    ("1h30m", timedelta(hours=1, minutes=30)),
    (" 2h ", timedelta(hours=2)),
    ("0s", timedelta(0)),
])
def test_since_a_duration_is_that_long_before_now(text: str, ago: timedelta) -> None:
    assert tap.parse_since(text, now=NOW) == NOW - ago


@pytest.mark.parametrize(("text", "at"), [
    ("2026-10-31T08:00:00Z", datetime(2026, 10, 31, 8, 0, tzinfo=UTC)),
    ("2026-10-31T10:00:00+02:00", datetime(2026, 10, 31, 8, 0, tzinfo=UTC)),
    ("2026-10-31T08:00:00", datetime(2026, 10, 31, 8, 0, tzinfo=UTC)),  # no zone: UTC
    ("2026-10-31", datetime(2026, 10, 31, tzinfo=UTC)),
])
def test_since_a_time_is_that_time_in_utc(text: str, at: datetime) -> None:
    parsed = tap.parse_since(text, now=NOW)
    assert parsed == at and parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", ["", "2", "h", "2x", "2 h", "-2h", "1.5h", "yesterday", "2h ago"])
def test_since_refuses_what_is_neither(text: str) -> None:
    with pytest.raises(ValueError, match="neither a duration"):
        tap.parse_since(text, now=NOW)


@pytest.mark.parametrize(("text", "position"), [("3:120", (3, 120)), ("0:0", (0, 0)), (" 7 : 5 ", (7, 5))])
def test_offset_is_partition_and_offset(text: str, position: tuple[int, int]) -> None:
    assert tap.parse_offset(text) == position


@pytest.mark.parametrize("text", ["3", "3:", ":5", "a:1", "1:b", "-1:0", "1:-2", "1:2:3", "1.0:2"])
def test_offset_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError, match="PARTITION:OFFSET"):
        tap.parse_offset(text)


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({}, tap.Start("beginning")),
    ({"follow": True}, tap.Start("end")),
    ({"from_beginning": True, "follow": True}, tap.Start("beginning")),
    ({"since": NOW}, tap.Start("since", since=NOW)),
    ({"offsets": ["1:5", (2, 0)]}, tap.Start("offsets", offsets={1: 5, 2: 0})),
    ({"offsets": ["1:5"], "follow": True}, tap.Start("offsets", offsets={1: 5})),
])
def test_where_reading_starts(kwargs: dict, expected: tap.Start) -> None:
    assert tap.Start.of(**kwargs) == expected


def test_a_since_string_is_parsed_for_the_library() -> None:
    start = tap.Start.of(since="1h")
    assert start.at == "since" and start.since is not None
    assert timedelta(minutes=59) < datetime.now(UTC) - start.since < timedelta(minutes=61)


def test_two_starts_at_once_are_refused() -> None:
    with pytest.raises(ValueError, match="at most one"):
        tap.Start.of(since="1h", offsets=["0:1"])


def test_the_command_line_parses_each_option() -> None:
    parser = tap.build_parser()
    args = parser.parse_args(["tail", "orders.events", "--offset", "3:120", "--offset", "0:7",
                              "--type", "OrderStatusChanged", "--tenant", "acme", "-f"])
    assert args.offset == [(3, 120), (0, 7)] and args.type == ["OrderStatusChanged"]
    assert args.tenant == "acme" and args.follow and args.since is None
    export = parser.parse_args(["export", "orders.events", "--to", "x.parquet", "--since", "1h30m"])
    assert isinstance(export.since, datetime) and str(export.to) == "x.parquet"


@pytest.mark.parametrize("argv", [
    ["tail", "orders.events", "--since", "2h", "--offset", "1:2"],
    ["tail", "orders.events", "--from-beginning", "--since", "2h"],
    ["tail", "orders.events", "--since", "soon"],
    ["tail", "orders.events", "--offset", "12"],
    ["export", "orders.events"],  # --to is required
    ["export", "orders.events", "--to", "x.parquet", "--follow"],
])
def test_the_command_line_refuses_bad_options(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        tap.build_parser().parse_args(argv)
    assert exit_.value.code == 2


def test_a_topic_is_the_registrys_or_its_dead_letter_twin() -> None:
    assert tap.topic_spec("orders.events") is topics.ORDERS_EVENTS
    dlq = tap.topic_spec("orders.commands.dlq")
    assert dlq.name == "orders.commands.dlq" and dlq.payloads == (m.DeadLetter,)
    with pytest.raises(tap.TapError, match="no topic 'orders'"):
        tap.topic_spec("orders")
    with pytest.raises(tap.TapError, match="no topic"):
        tap.topic_spec("inventory.stock-changes.dlq")  # consumed by no agent: no twin


def test_the_catalog_lists_every_topic_from_the_registry() -> None:
    settings = Settings(topic_namespace="ns.", topic_partitions=5)
    infos = {info.name: info for info in tap.catalog(settings)}
    assert sorted(infos) == sorted(f"ns.{spec.name}" for spec in topics.ALL)
    orders = infos["ns.orders.events"]
    assert (orders.key, orders.partitions, orders.retention) == ("<order_id>", 5, "7d")
    assert orders.event_types == ("OrderStatusChanged",)
    assert orders.datasource == "orders_events" and orders.dead_letters == "ns.orders.events.dlq"
    products = infos["ns.catalog.products"]
    assert products.retention == "forever, compacted" and products.datasource is None
    assert products.dead_letters == "ns.catalog.products.dlq"


def test_the_catalog_names_the_generated_schema_and_druid_spec_of_each_topic() -> None:
    generated = {path.relative_to(PROJECT_ROOT).as_posix() for path in artifacts()}
    for info in tap.catalog(Settings()):
        assert info.schema in generated and (PROJECT_ROOT / info.schema).exists()
        if info.datasource:
            assert f"druid_specs/{info.datasource}.json" in generated
    assert {i.datasource for i in tap.catalog(Settings()) if i.datasource} == {
        "orders_events", "inventory_stock_changes", "inventory_reservations", "payments_events", "campaigns_events", "shipments_events",
        "webhook_attempts", "notifications_events", "catalog_price_changes", "recommendations_served"}


def test_the_consumer_reads_committed_records_and_can_commit_nothing() -> None:
    first = tap.consumer_config(Settings(external_bootstrap="broker:9092", app_id="fusioncommerce"))
    second = tap.consumer_config(Settings())
    assert first["isolation.level"] == "read_committed"
    assert first["enable.auto.commit"] is False and first["enable.auto.offset.store"] is False
    assert first["bootstrap.servers"] == "broker:9092"
    # a group of its own, never a worker's, new for every reader
    assert first["group.id"].startswith("fc-tap-") and first["group.id"] != second["group.id"]


def test_no_commit_anywhere_in_the_tap() -> None:
    source = (PROJECT_ROOT / "streams" / "tap.py").read_text()
    assert ".commit(" not in source and ".subscribe(" not in source and "store_offsets" not in source


def test_a_tail_line_is_the_position_key_and_event(make_envelope) -> None:  # type: ignore[no-untyped-def]
    event = make_envelope(m.ExpireOrderHold(order_id="00000000-0000-0000-0000-00000000002a"))
    line = orjson.loads(tap.Record(3, 17, NOW, "00000000-0000-0000-0000-00000000002a", event).line())
    assert line["partition"] == 3 and line["offset"] == 17 and line["timestamp"] == "2026-11-01T12:00:00+00:00"
    assert line["key"] == "00000000-0000-0000-0000-00000000002a"
    assert m.Envelope.model_validate(line["event"]) == event


@pytest.mark.parametrize(("spec", "text"), [
    (topics.ORDERS_EVENTS, "7d"),
    (topics.CATALOG_PRODUCTS, "forever, compacted"),
])
def test_retention_reads_as_days(spec: topics.TopicSpec, text: str) -> None:
    assert tap.retention_text(spec) == text
