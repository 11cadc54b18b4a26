"""Druid's view of the topics, derived from the models: one Kafka supervisor spec per analytical topic.

A topic with a `datasource` in the registry is ingested by Druid. Its columns come from the
payload models of the topic: fields marked `DIMENSION` become string dimensions, fields marked
`SUM` become `longSum` metrics, and a field marked `EXPAND` (money) contributes its own marked
fields under its name (`total_amount`, `total_currency`). Every datasource also has the envelope's
`tenant` and `type` as dimensions, `occurred_at` as its time, and a `count` metric: rows are rolled
up per minute, so questions count events with `SUM("count")`, never `COUNT(*)`.

`druid_specs/<datasource>.json` holds the generated specs (`python -m devtools.generate` writes
them; a test fails when they drift from the models). They name the topic without a namespace and
leave the bootstrap servers to `connectors/druid.py`, which fills both in when it submits them.
Druid reads committed records only, so an aborted transaction never reaches a query.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from streams import topics
from streams.models import Analytics

BOOTSTRAP_PLACEHOLDER = "${KAFKA_BOOTSTRAP_SERVERS}"
ENVELOPE_DIMENSIONS = ("tenant", "type")


@dataclass(frozen=True)
class Column:
    name: str
    path: str  # JSONPath into the envelope
    role: str  # "dimension" or "sum"


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model of a field typed `Model` or `Model | None`."""
    candidates = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    models = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
    return models[0] if models else None


def columns(model: type[BaseModel], prefix: str = "", path: str = "$.payload") -> list[Column]:
    found: list[Column] = []
    for name, field in model.model_fields.items():
        for mark in (m for m in field.metadata if isinstance(m, Analytics)):
            if mark.role == "expand":
                nested = _model_in(field.annotation)
                assert nested is not None, f"{model.__name__}.{name} is marked EXPAND but is not a model"
                inner = f"{name}_" if mark.prefix is None else mark.prefix
                found += columns(nested, f"{prefix}{inner}", f"{path}.{name}")
            else:
                found.append(Column(f"{prefix}{name}", f"{path}.{name}", mark.role))
    return found


def topic_columns(spec: topics.TopicSpec) -> list[Column]:
    """The union of the columns of the topic's payloads, in declaration order, envelope first."""
    merged = {name: Column(name, f"$.{name}", "dimension") for name in ENVELOPE_DIMENSIONS}
    for payload in spec.payloads:
        for column in columns(payload):
            known = merged.setdefault(column.name, column)
            if known != column:
                raise ValueError(f"{spec.name}: column {column.name} means {known} and {column}")
    return list(merged.values())


def supervisor_spec(spec: topics.TopicSpec) -> dict[str, Any]:
    assert spec.datasource is not None, f"{spec.name} is not analysed in Druid"
    cols = topic_columns(spec)
    dimensions = [{"type": "string", "name": c.name} for c in cols if c.role == "dimension"]
    metrics = [{"type": "count", "name": "count"}] + [
        {"type": "longSum", "name": c.name, "fieldName": c.name} for c in cols if c.role == "sum"
    ]
    fields = [{"type": "path", "name": c.name, "expr": c.path} for c in cols if c.path != f"$.{c.name}"]
    return {
        "type": "kafka",
        "spec": {
            "dataSchema": {
                "dataSource": spec.datasource,
                "timestampSpec": {"column": "occurred_at", "format": "iso"},
                "dimensionsSpec": {"dimensions": dimensions},
                "metricsSpec": metrics,
                "granularitySpec": {
                    "type": "uniform", "segmentGranularity": "HOUR", "queryGranularity": "MINUTE", "rollup": True,
                },
            },
            "ioConfig": {
                "topic": spec.name,
                "inputFormat": {"type": "json", "flattenSpec": {"useFieldDiscovery": True, "fields": fields}},
                "consumerProperties": {"bootstrap.servers": BOOTSTRAP_PLACEHOLDER, "isolation.level": "read_committed"},
                "useEarliestOffset": True,
                "taskCount": 1,
                "replicas": 1,
                "taskDuration": "PT1H",
            },
            # Small in-memory limits: one indexer JVM runs a task per analytical topic.
            "tuningConfig": {"type": "kafka", "maxRowsInMemory": 50000, "maxBytesInMemory": 25_000_000},
        },
    }


def analysed_topics() -> list[topics.TopicSpec]:
    return [spec for spec in topics.ALL if spec.datasource is not None]
