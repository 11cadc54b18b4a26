"""The DataFrame view of a topic, derived from the models: one typed polars column per payload field.

What `streams.tap.read_topic` returns and `python -m streams.tap export --to x.parquet` writes:

- `partition`, `offset` (where the record is), then the envelope's `event_id`, `type`, `tenant`
  and `occurred_at` (a UTC datetime);
- then every field of every payload type of the topic, in declaration order (the union: a row
  has nulls in the columns of the other types). Types come from the annotations: `int` Int64,
  `bool` Boolean, `str` and `UUID` String, datetimes Datetime(us, UTC), tuples of models Lists of
  Structs, anything else its JSON text.
- A nested model is **flattened** as the Druid specs do (`streams/analytics.py`): `total: Money`
  gives `total_amount` and `total_currency`, and a field marked `EXPAND_AS_IS` (a payment's
  `amount`) gives `amount` and `currency`. Only lists of models (an order's `lines`) stay nested.

`events_from_frame` turns such a frame (or its parquet file read back) into the envelopes again: a
nested model whose columns are all null is None.
"""

from __future__ import annotations

import datetime as dt
import json
import types
import typing
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl
from pydantic import BaseModel

from streams import models as m
from streams.topics import TopicSpec

POSITION_COLUMNS: dict[str, pl.DataType] = {"partition": pl.Int32(), "offset": pl.Int64()}
ENVELOPE_COLUMNS: dict[str, pl.DataType] = {
    "event_id": pl.String(), "type": pl.String(), "tenant": pl.String(), "occurred_at": pl.Datetime("us", "UTC"),
}


@dataclass(frozen=True)
class Column:
    name: str
    path: tuple[str, ...]  # field names from the payload down
    dtype: pl.DataType
    as_json: bool = False  # a value of no column type of its own, kept as its JSON text


def _without_none(annotation: Any) -> Any:
    """`X | None` -> X (and Annotated[X, ...] -> X): nullability is every column's anyway."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        rest = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _without_none(rest[0]) if len(rest) == 1 else annotation
    return annotation


def _model(annotation: Any) -> type[BaseModel] | None:
    bare = _without_none(annotation)
    return bare if isinstance(bare, type) and issubclass(bare, BaseModel) else None


def dtype_of(annotation: Any) -> pl.DataType:
    """The polars type of a field's values."""
    bare = _without_none(annotation)
    origin = typing.get_origin(bare)
    if origin is typing.Literal:
        values = typing.get_args(bare)
        return pl.Int64() if all(isinstance(v, int) and not isinstance(v, bool) for v in values) else pl.String()
    if origin in (tuple, list, Sequence) and typing.get_args(bare):
        return pl.List(dtype_of(typing.get_args(bare)[0]))
    if isinstance(bare, type):
        if issubclass(bare, BaseModel):
            return pl.Struct({name: dtype_of(f.annotation) for name, f in bare.model_fields.items()})
        if issubclass(bare, bool):
            return pl.Boolean()
        if issubclass(bare, int):
            return pl.Int64()
        if issubclass(bare, float):
            return pl.Float64()
        if issubclass(bare, dt.datetime):
            return pl.Datetime("us", "UTC")
        if issubclass(bare, dt.date):
            return pl.Date()
    return pl.String()  # str, UUID, and the JSON text of anything else


def _as_json(annotation: Any) -> bool:
    bare = _without_none(annotation)
    if typing.get_origin(bare) is typing.Literal or (isinstance(bare, type) and issubclass(bare, (str, uuid.UUID))):
        return False
    return dtype_of(annotation) == pl.String()


def payload_columns(model: type[BaseModel], prefix: str = "", path: tuple[str, ...] = ()) -> list[Column]:
    found: list[Column] = []
    for name, field in model.model_fields.items():
        nested = _model(field.annotation)
        if nested is None:
            # A payload's own `occurred_at` (a carrier's time of its update) sits beside the envelope's, prefixed.
            column = f"payload_{name}" if not path and name == "occurred_at" else f"{prefix}{name}"
            found.append(Column(column, (*path, name), dtype_of(field.annotation), _as_json(field.annotation)))
            continue
        mark = next((a for a in field.metadata if isinstance(a, m.Analytics) and a.role == "expand"), None)
        inner = f"{name}_" if mark is None or mark.prefix is None else mark.prefix
        found += payload_columns(nested, f"{prefix}{inner}", (*path, name))
    return found


def topic_columns(spec: TopicSpec) -> list[Column]:
    """The union of the payloads' columns, in declaration order; a name means one path and one type."""
    reserved = {**POSITION_COLUMNS, **ENVELOPE_COLUMNS}
    merged: dict[str, Column] = {}
    for payload in spec.payloads:
        for column in payload_columns(payload):
            if column.name in reserved:
                raise ValueError(f"{spec.name}: {payload.__name__}.{column.name} hides the envelope's column")
            known = merged.setdefault(column.name, column)
            if known != column:
                raise ValueError(f"{spec.name}: column {column.name} means {known} and {column}")
    return list(merged.values())


def schema(spec: TopicSpec) -> dict[str, pl.DataType]:
    return {**POSITION_COLUMNS, **ENVELOPE_COLUMNS, **{c.name: c.dtype for c in topic_columns(spec)}}


def _cell(value: Any, dtype: pl.DataType, as_json: bool = False) -> Any:
    if value is None:
        return None
    if as_json:
        return json.dumps(value, default=str, sort_keys=True)
    if isinstance(dtype, pl.List):
        return [_cell(v, dtype.inner) for v in value]
    if isinstance(dtype, pl.Struct):
        return {f.name: _cell(value.get(f.name), f.dtype) for f in dtype.fields}
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _at(data: Any, path: tuple[str, ...]) -> Any:
    for name in path:
        if data is None:
            return None
        data = data.get(name)
    return data


def rows(spec: TopicSpec, records: Iterable[tuple[int, int, m.Envelope]]) -> list[tuple[Any, ...]]:
    """(partition, offset, envelope) triples as rows of `schema(spec)`."""
    columns = topic_columns(spec)
    out = []
    for partition, offset, event in records:
        payload = event.payload.model_dump(mode="python")
        out.append((partition, offset, str(event.event_id), event.type, event.tenant, event.occurred_at,
                    *(_cell(_at(payload, c.path), c.dtype, c.as_json) for c in columns)))
    return out


def frame(spec: TopicSpec, records: Iterable[tuple[int, int, m.Envelope]]) -> pl.DataFrame:
    return pl.DataFrame(rows(spec, records), schema=schema(spec), orient="row")


def _prune(data: dict[str, Any]) -> dict[str, Any] | None:
    """A nested model whose values are all null was None."""
    for name, value in data.items():
        if isinstance(value, dict):
            data[name] = _prune(value)
    return data if any(v is not None for v in data.values()) else None


def events_from_frame(df: pl.DataFrame) -> list[m.Envelope]:
    """The envelopes a frame of `schema(spec)` holds (a frame of `read_topic`, or its parquet file)."""
    events = []
    for row in df.iter_rows(named=True):
        model = m.Payload.registry[row["type"]]
        payload: dict[str, Any] = {}
        for column in payload_columns(model):
            value = row.get(column.name)
            if value is not None and column.as_json:
                value = json.loads(value)
            target = payload
            for name in column.path[:-1]:
                target = target.setdefault(name, {})
            target[column.path[-1]] = value
        events.append(m.Envelope.model_validate({
            "event_id": row["event_id"], "type": row["type"], "tenant": row["tenant"],
            "occurred_at": row["occurred_at"],
            # An empty dict is a field's own value (a product's `attributes`), not a nested model's nulls.
            "payload": {name: _prune(value) if isinstance(value, dict) and value else value
                        for name, value in payload.items()},
        }))
    return events
