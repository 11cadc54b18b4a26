"""The DataFrame view of topics (streams/frames.py): column types from the models, rows and back."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from streams import frames, topics
from streams import models as m

ENVELOPE = {
    "partition": pl.Int32(), "offset": pl.Int64(), "event_id": pl.String(), "type": pl.String(),
    "tenant": pl.String(), "occurred_at": pl.Datetime("us", "UTC"),
}


def test_orders_events_has_one_typed_column_per_payload_field() -> None:
    # Written out from OrderStatusChanged: `total: Money | None` is flattened as in the Druid spec
    assert frames.schema(topics.ORDERS_EVENTS) == {
        **ENVELOPE,
        "order_id": pl.String(), "customer": pl.String(), "status": pl.String(), "previous_status": pl.String(),
        "reason": pl.String(), "total_amount": pl.Int64(), "total_currency": pl.String(), "item_count": pl.Int64(),
        # A confirmation's lines (None otherwise): a list of structs, as the model nests them.
        "lines": pl.List(pl.Struct({"sku": pl.String(), "quantity": pl.Int64()})),
    }


def test_a_payments_amount_is_flattened_as_is_like_druid_does() -> None:
    schema = frames.schema(topics.PAYMENTS_EVENTS)
    assert schema["amount"] == pl.Int64() and schema["currency"] == pl.String()
    assert schema["refunded_amount"] == pl.Int64() and schema["refunded_currency"] == pl.String()
    assert "amount_amount" not in schema


def test_lists_of_models_stay_nested_and_times_are_utc() -> None:
    assert frames.schema(topics.ORDERS_COMMANDS)["lines"] == pl.List(pl.Struct({"sku": pl.String(), "quantity": pl.Int64()}))
    assert frames.schema(topics.CAMPAIGNS_EVENTS)["ends_at"] == pl.Datetime("us", "UTC")
    assert frames.schema(topics.CAMPAIGNS_EVENTS)["replaced"] == pl.Boolean()
    webhooks = frames.schema(topics.PAYMENTS_WEBHOOKS)
    assert webhooks["charge_amount_refunded"] == pl.Int64() and webhooks["charge_refunded"] == pl.Boolean()


def test_every_topic_has_a_consistent_frame() -> None:
    for spec in topics.ALL:
        names = list(frames.schema(spec))
        assert names[:6] == list(ENVELOPE) and len(names) == len(set(names))


def test_a_column_with_two_meanings_is_refused() -> None:
    class WithMoney(m.Payload):
        total: m.Money

    class WithFlat(m.Payload):
        total_amount: str

    try:
        spec = topics.TopicSpec("clash", "k", (WithMoney, WithFlat), "w", "r", key_of=lambda e: b"")
        with pytest.raises(ValueError, match="total_amount"):
            frames.topic_columns(spec)
    finally:
        del m.Payload.registry["WithMoney"], m.Payload.registry["WithFlat"]


@pytest.mark.parametrize(("annotation", "dtype"), [
    (int, pl.Int64()), (bool, pl.Boolean()), (str, pl.String()), (uuid.UUID, pl.String()), (float, pl.Float64()),
    (int | None, pl.Int64()), (m.UtcDatetime, pl.Datetime("us", "UTC")), (m.Identifier, pl.String()),
    (tuple[str, ...], pl.List(pl.String())), (dict[str, int], pl.String()),
])
def test_the_type_of_a_field(annotation: object, dtype: pl.DataType) -> None:
    assert frames.dtype_of(annotation) == dtype


def _events_of(spec: topics.TopicSpec, samples: dict[str, m.Payload], make_envelope) -> list[m.Envelope]:  # type: ignore[no-untyped-def]
    return [make_envelope(samples[p.__name__], event_id=uuid.UUID(int=i + 1), tenant=f"t{i % 2}",
                          at=datetime(2026, 11, 1, 9, i, tzinfo=UTC)) for i, p in enumerate(spec.payloads)]


@pytest.mark.parametrize("spec", topics.ALL, ids=lambda s: s.name)
def test_rows_turn_back_into_the_same_events_also_through_parquet(
        spec: topics.TopicSpec, sample_payloads, make_envelope, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # Given one event of each type of the topic
    events = _events_of(spec, sample_payloads, make_envelope)
    # When they become a frame, and that frame a parquet file read back
    df = frames.frame(spec, [(0, i, e) for i, e in enumerate(events)])
    df.write_parquet(tmp_path / "x.parquet")
    back = pl.read_parquet(tmp_path / "x.parquet")
    # Then both give the same events, with the frame's types
    assert back.schema == df.schema == pl.Schema(frames.schema(spec))
    assert frames.events_from_frame(df) == events
    assert frames.events_from_frame(back) == events


def test_a_row_holds_the_values_and_nulls_where_a_model_is_none(make_envelope) -> None:  # type: ignore[no-untyped-def]
    order = uuid.UUID(int=7)
    placed = make_envelope(m.OrderStatusChanged(order_id=order, customer="c", status="pending", previous_status=None))
    reserved = make_envelope(m.OrderStatusChanged(order_id=order, customer="c", status="reserved",
                                                  previous_status="pending", total=m.Money(amount=2598, currency="EUR"),
                                                  item_count=2))
    df = frames.frame(topics.ORDERS_EVENTS, [(2, 10, placed), (2, 11, reserved)])
    assert df.select("partition", "offset", "status", "total_amount", "total_currency", "item_count").rows() == [
        (2, 10, "pending", None, None, 0), (2, 11, "reserved", 2598, "EUR", 2)]
    assert df["order_id"].to_list() == [str(order)] * 2
    assert df["occurred_at"].to_list()[0] == placed.occurred_at
    assert frames.events_from_frame(df) == [placed, reserved]
    assert df["total_amount"].sum() == 2598


def test_an_empty_topic_is_an_empty_frame_of_the_same_columns() -> None:
    df = frames.frame(topics.PAYMENTS_EVENTS, [])
    assert df.height == 0 and df.schema == pl.Schema(frames.schema(topics.PAYMENTS_EVENTS))
