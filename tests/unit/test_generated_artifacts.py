"""Committed artifacts generated from the models (devtools/generate.py) and Druid's view of the topics."""

from __future__ import annotations

import json
from pathlib import Path

from devtools.generate import artifacts, stale
from streams import analytics, topics


def test_committed_artifacts_match_the_models():
    # When the schemas and Druid specs are generated from the models again
    # Then they equal the committed files (run `python -m devtools.generate` after changing a model)
    assert [str(path) for path in stale()] == []


def test_a_changed_or_missing_artifact_is_reported(tmp_path: Path):
    # Given a fresh copy of the artifacts, one of them edited and one removed
    for path, text in artifacts(tmp_path).items():
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    edited = tmp_path / "druid_specs" / "orders_events.json"
    edited.write_text(edited.read_text().replace('"longSum"', '"doubleSum"', 1))
    removed = tmp_path / "schemas" / "orders.events.json"
    removed.unlink()
    # Then exactly those two are stale
    assert sorted(stale(tmp_path)) == sorted([edited, removed])


def test_order_events_are_analysed_by_status_tenant_and_currency_with_summed_amounts():
    spec = analytics.supervisor_spec(topics.ORDERS_EVENTS)["spec"]
    schema = spec["dataSchema"]
    assert [d["name"] for d in schema["dimensionsSpec"]["dimensions"]] == [
        "tenant", "type", "status", "previous_status", "total_currency",
    ]
    assert schema["metricsSpec"] == [
        {"type": "count", "name": "count"},
        {"type": "longSum", "name": "total_amount", "fieldName": "total_amount"},
        {"type": "longSum", "name": "item_count", "fieldName": "item_count"},
    ]
    paths = {f["name"]: f["expr"] for f in spec["ioConfig"]["inputFormat"]["flattenSpec"]["fields"]}
    assert paths["total_amount"] == "$.payload.total.amount" and paths["status"] == "$.payload.status"
    assert spec["ioConfig"]["consumerProperties"]["isolation.level"] == "read_committed"
    assert schema["granularitySpec"]["rollup"] is True


def test_money_expands_under_the_field_name_or_as_is_where_declared():
    stock = {c.name: c.role for c in analytics.topic_columns(topics.INVENTORY_STOCK_CHANGES)}
    payments = {c.name: c.role for c in analytics.topic_columns(topics.PAYMENTS_EVENTS)}
    assert stock == {"tenant": "dimension", "type": "dimension", "sku": "dimension", "delta": "sum", "quantity": "sum"}
    assert payments == {"tenant": "dimension", "type": "dimension", "amount": "sum", "currency": "dimension",
                        "action": "dimension"}


def test_only_topics_with_a_datasource_get_a_spec_and_every_one_is_committed():
    analysed = {spec.datasource for spec in analytics.analysed_topics()}
    assert analysed == {
        "orders_events", "inventory_stock_changes", "inventory_reservations", "payments_events", "campaigns_events", "shipments_events",
        "notifications_events", "webhook_attempts", "recommendations_served", "catalog_price_changes",
    }
    committed = {path.stem for path in (Path(__file__).resolve().parents[2] / "druid_specs").glob("*.json")}
    assert committed == analysed


def test_topic_schemas_describe_each_payload_of_the_topic():
    schema = json.loads(artifacts()[next(p for p in artifacts() if p.name == "payments.events.json")])
    assert [s["title"] for s in schema["oneOf"]] == [p.__name__ for p in topics.PAYMENTS_EVENTS.payloads]
    assert schema["oneOf"][0]["properties"]["type"] == {"const": "PaymentIntentCreated", "title": "Type", "type": "string"}
