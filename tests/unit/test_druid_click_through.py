"""The click-through question of connectors/druid.py, its two SQL answers given: the join made in
Python (per tenant, products recommended and how many of them were ordered at or after the minute
they were first recommended)."""

from __future__ import annotations

from typing import Any

from connectors.druid import DruidAnalytics


class Canned(DruidAnalytics):
    def __init__(self, shown: list[dict[str, Any]], ordered: list[dict[str, Any]]) -> None:
        super().__init__("http://druid.invalid:1", "http://druid.invalid:2", namespace="t1.")
        self.answers = {"recommendations_served": shown, "inventory_stock_changes": ordered}
        self.asked: list[str] = []

    def sql(self, query: str, parameters: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        self.asked.append(query)
        return next(rows for source, rows in self.answers.items() if f'"t1_{source}"' in query)


def test_products_ordered_after_their_first_recommendation_count_per_tenant() -> None:
    # Given acme's TEA-1 and CUP-1 recommended at minute 10, POT-1 at minute 20, and globex's GLX-1
    shown = [
        {"tenant": "acme", "sku": "TEA-1", "first_ms": 10, "served": 3},
        {"tenant": "acme", "sku": "CUP-1", "first_ms": 10, "served": 1},
        {"tenant": "acme", "sku": "POT-1", "first_ms": 20, "served": 2},
        {"tenant": "globex", "sku": "GLX-1", "first_ms": 10, "served": 1},
    ]
    # And TEA-1 ordered at minute 10 (the same minute), POT-1 last ordered before its recommendation,
    # CUP-1 never; GLX-1 ordered in acme's name only (another tenant's SKU of the same name)
    ordered = [
        {"tenant": "acme", "sku": "TEA-1", "last_ms": 10},
        {"tenant": "acme", "sku": "POT-1", "last_ms": 15},
        {"tenant": "acme", "sku": "GLX-1", "last_ms": 30},
    ]
    druid = Canned(shown, ordered)
    # When the question is asked
    answer = druid.recommendation_click_through()
    # Then acme: 1 of 3 recommended was then ordered; globex: none of 1
    assert answer == {"acme": {"recommended": 3, "ordered": 1, "click_through": 1 / 3},
                      "globex": {"recommended": 1, "ordered": 0, "click_through": 0.0}}
    assert any("StockCommitted" in query for query in druid.asked)
