"""The Grafana dashboard (dashboards/fusioncommerce.json): import-ready, and every series and label
its PromQL reads is one the code defines (devtools/dashboard.py)."""

from __future__ import annotations

import pytest

from devtools.dashboard import (
    TARGET_LABELS, defined_families, defined_series, expressions, load_dashboard, panels, series_of,
)

DASHBOARD = load_dashboard()
FAMILIES = defined_families()
SERIES = defined_series(FAMILIES.values())


@pytest.mark.parametrize(("expr", "series", "labels"), [
    ('sum by (route, status) (rate(fc_http_requests_total[$__rate_interval]))',
     {"fc_http_requests_total"}, {"route", "status"}),
    ('histogram_quantile(0.99, sum by (le) (rate(x_bucket{method!="OPTIONS", a=~"b|c"}[5m])))',
     {"x_bucket"}, {"le", "method", "a"}),
    ("a_total / clamp_min(sum(rate(b_total[1m])), 1e-9) > bool 0.5", {"a_total", "b_total"}, set()),
    ('(sum(rate(a_total{status=~"5.."}[1h30m])) or vector(0)) / b', {"a_total", "b"}, {"status"}),
    ('rate(process_cpu_seconds_total{job="gateway"}[1m]) offset 5m', {"process_cpu_seconds_total"}, {"job"}),
])
def test_series_and_labels_are_read_out_of_promql(expr: str, series: set[str], labels: set[str]) -> None:
    used = series_of(expr)
    assert used.series == series and used.labels == labels


def test_a_counter_is_read_as_total_and_a_histogram_as_bucket_sum_count() -> None:
    assert "fc_http_requests_total" in SERIES and "fc_http_requests" not in SERIES
    assert {"fc_commit_duration_seconds_bucket", "fc_commit_duration_seconds_sum",
            "fc_commit_duration_seconds_count"} <= set(SERIES)
    assert "le" in SERIES["fc_commit_duration_seconds_bucket"]


def test_the_dashboard_is_import_ready_with_a_prometheus_datasource_input() -> None:
    # Given the committed JSON, when Grafana imports it, then it asks for a Prometheus data source
    (input_,) = DASHBOARD["__inputs"]
    assert input_ == {**input_, "name": "DS_PROMETHEUS", "type": "datasource", "pluginId": "prometheus"}
    assert DASHBOARD["uid"] and DASHBOARD["title"] and DASHBOARD["id"] is None
    every = list(panels(DASHBOARD))
    assert len({p["id"] for p in every} | {p["id"] for p in DASHBOARD["panels"] if p["type"] == "row"}) == \
        len(every) + sum(1 for p in DASHBOARD["panels"] if p["type"] == "row")
    for panel in every:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]


@pytest.mark.parametrize(("title", "expr"), list(expressions(DASHBOARD)))
def test_every_expression_reads_only_series_and_labels_the_code_defines(title: str, expr: str) -> None:
    used = series_of(expr)
    assert used.series, f"{title}: no series in {expr}"
    unknown = used.series - set(SERIES)
    assert not unknown, f"{title}: {sorted(unknown)} not defined by the code (known: {sorted(SERIES)})"
    labels = TARGET_LABELS.union(*(SERIES[name] for name in used.series))
    assert used.labels <= labels, f"{title}: labels {sorted(used.labels - labels)} on none of {sorted(used.series)}"


def test_every_metric_of_the_project_has_a_panel() -> None:
    # A new metric in the code without a panel fails here: add one to dashboards/fusioncommerce.json.
    read = set().union(*(series_of(expr).series for _, expr in expressions(DASHBOARD)))
    missing = [f.name for f in FAMILIES.values() if f.name.startswith("fc_") and not read & set(f.series)]
    assert not missing, f"metrics without a panel: {missing}"
