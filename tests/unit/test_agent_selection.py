"""Which agents a worker runs (`python -m streams --agents ...`) and the consumer group they form."""

from __future__ import annotations

import pytest

from streams import agents
from streams.runtime.worker import group_id
from streams.settings import Settings


class NoPayments:
    async def close(self) -> None: ...


SETTINGS = Settings(app_id="shop")


def test_every_agent_runs_in_the_app_group_by_default() -> None:
    running = agents.build(SETTINGS, NoPayments(), agents.NAMES)  # type: ignore[arg-type]
    assert [agent.name for agent in running] == list(agents.NAMES)
    assert group_id(SETTINGS, agents.NAMES, agents.NAMES) == "shop"


def test_a_subset_forms_a_group_of_its_own() -> None:
    running = agents.build(SETTINGS, NoPayments(), ["payments"])  # type: ignore[arg-type]
    assert [agent.name for agent in running] == ["payments"]
    assert group_id(SETTINGS, ["payments"], agents.NAMES) == "shop-payments"
    assert group_id(SETTINGS, ["orders", "catalog", "inventory"], agents.NAMES) == "shop-catalog-inventory-orders"


def test_inventory_without_the_catalog_it_reads_is_refused() -> None:
    with pytest.raises(SystemExit, match="runs with the catalog agent"):
        agents.build(SETTINGS, NoPayments(), ["inventory", "orders"])  # type: ignore[arg-type]


def test_an_unknown_agent_is_refused_with_the_choices() -> None:
    with pytest.raises(SystemExit, match="unknown agents warehouse; choose from catalog, inventory"):
        agents.build(SETTINGS, NoPayments(), ["warehouse"])  # type: ignore[arg-type]


def test_the_notifications_agent_runs_alone_in_a_group_of_its_own() -> None:
    settings = Settings(app_id="shop", smtp_url="smtp://127.0.0.1:2525")
    running = agents.build(settings, NoPayments(), ["notifications"])  # type: ignore[arg-type]
    assert [agent.name for agent in running] == ["notifications"]
    assert [spec.name for spec in running[0].sources] == ["orders.events", "campaigns.events", "shipments.events",
                                                          "notifications.commands"]
    assert group_id(settings, ["notifications"], agents.NAMES) == "shop-notifications"
    with pytest.raises(SystemExit, match="runs alone"):
        agents.build(settings, NoPayments(), ["notifications", "orders"])  # type: ignore[arg-type]


def test_the_notifications_agent_needs_smtp_url_outside_development_mode() -> None:
    assert Settings(development=True).smtp_url == "smtp://127.0.0.1:8025"
    with pytest.raises(SystemExit, match="needs SMTP_URL"):
        agents.build(Settings(app_id="shop", smtp_url=""), NoPayments(), ["notifications"])  # type: ignore[arg-type]
