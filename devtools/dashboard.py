"""The Grafana dashboard (dashboards/fusioncommerce.json) against the metrics the code defines.

    python -m devtools.dashboard   # every panel's expressions with the series they read

A panel's PromQL names series as Prometheus stores them: a counter `x` as `x_total`, a histogram
`x` as `x_bucket`, `x_sum` and `x_count`, a gauge as `x`. `series_of(expr)` reads those names and
the label names an expression uses out of PromQL, enough for the dashboard's expressions (selectors,
matchers, `by (...)` groupings, range brackets, functions); `defined_series()` derives them from the
metric objects of gateway/metrics.py, streams/runtime/metrics.py, connectors/stripe.py and
prometheus-client's process collector. tests/unit/test_dashboard.py compares the two;
tests/integration/test_dashboard_metrics.py compares the dashboard with a live `/metrics`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from streams.settings import PROJECT_ROOT

DASHBOARD = PROJECT_ROOT / "dashboards" / "fusioncommerce.json"
# Labels Prometheus adds to every series it scrapes.
TARGET_LABELS = frozenset({"job", "instance"})
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
                       "group_left", "group_right", "inf", "nan"})
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{([^}]*)\}")
_MATCHER_LABEL = re.compile(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_NUMBER = re.compile(r"(?<![\w.:])\d+(?:(?:\d*(?:ms|[smhdwy]))+|(?:\.\d+)?(?:[eE][+-]?\d+)?)(?![\w.])")
_IDENTIFIER = re.compile(r"[a-zA-Z_:][\w:]*(\s*\()?")


@dataclass(frozen=True)
class Used:
    """What one expression reads: series names and the label names it matches or groups by."""

    series: frozenset[str]
    labels: frozenset[str]


def series_of(expr: str) -> Used:
    labels: set[str] = set()
    text = expr
    for matchers in _MATCHERS.findall(_STRING.sub('""', text)):
        labels.update(_MATCHER_LABEL.findall(matchers))
    text = _MATCHERS.sub(" ", _STRING.sub('""', text))
    for grouped in _GROUPING.findall(text):
        labels.update(name.strip() for name in grouped.split(",") if name.strip())
    text = _NUMBER.sub(" ", _RANGE.sub(" ", _GROUPING.sub(" ", text)))
    series = {match.group(0) for match in _IDENTIFIER.finditer(text)
              if not match.group(1) and match.group(0).lower() not in _KEYWORDS}
    return Used(frozenset(series), frozenset(labels))


def load_dashboard(path: Path = DASHBOARD) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows too; rows themselves are not panels."""
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def expressions(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, PromQL) of every target."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


@dataclass
class Family:
    """A metric as the code defines it: its name (without `_total`), type and label names."""

    name: str
    type: str
    labels: frozenset[str] = field(default_factory=frozenset)

    @property
    def series(self) -> dict[str, frozenset[str]]:
        """Each series name it exposes, with the labels that series carries."""
        if self.type == "counter":
            return {f"{self.name}_total": self.labels}
        if self.type == "histogram":
            return {f"{self.name}_bucket": self.labels | {"le"}, f"{self.name}_sum": self.labels,
                    f"{self.name}_count": self.labels}
        if self.type == "summary":
            return {self.name: self.labels | {"quantile"}, f"{self.name}_sum": self.labels,
                    f"{self.name}_count": self.labels}
        return {self.name: self.labels}


def _families_of(modules: Iterable[ModuleType]) -> Iterator[Family]:
    from prometheus_client.metrics import MetricWrapperBase

    for module in modules:
        for value in vars(module).values():
            if isinstance(value, MetricWrapperBase):
                # prometheus-client keeps a metric's name, type and label names in these attributes.
                yield Family(value._name, value._type, frozenset(value._labelnames))


def defined_families() -> dict[str, Family]:
    """The metrics of the project's code, and the process collector's of prometheus-client."""
    from prometheus_client import REGISTRY

    import connectors.stripe
    import gateway.metrics
    import streams.runtime.metrics

    found = {f.name: f for f in _families_of([gateway.metrics, streams.runtime.metrics, connectors.stripe])}
    for family in REGISTRY.collect():
        if family.name.startswith(("process_", "python_")):
            found.setdefault(family.name, Family(family.name, family.type))
    return found


def defined_series(families: Iterable[Family]) -> dict[str, frozenset[str]]:
    return {name: labels for family in families for name, labels in family.series.items()}


def main() -> None:
    for title, expr in expressions(load_dashboard()):
        used = series_of(expr)
        print(f"{title}: {', '.join(sorted(used.series))}  [labels: {', '.join(sorted(used.labels))}]")


if __name__ == "__main__":
    main()
