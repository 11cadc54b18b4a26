"""The agents, one module per context; each binds source topics and a table to a pure decision.

`build(settings, provider, names)` gives the agents a worker runs. The inventory agent reads the
catalog table, so the two run together.
"""

from __future__ import annotations

from collections.abc import Sequence

from connectors.stripe import PaymentProvider
from streams.agents import campaigns, catalog, inventory, orders, payments
from streams.runtime.agent import Agent
from streams.settings import Settings

NAMES = ("catalog", "inventory", "orders", "payments", "campaigns")
# The tables the agents write, which workers serve to readers.
TABLES = tuple(module.TABLE.name for module in (catalog, inventory, orders, payments, campaigns))
# Agents that read another agent's table run in the same group as that agent.
NEEDS = {"inventory": "catalog"}


def build(settings: Settings, provider: PaymentProvider, names: Sequence[str] = NAMES) -> list[Agent]:
    unknown = sorted(set(names) - set(NAMES))
    if unknown:
        raise SystemExit(f"unknown agents {', '.join(unknown)}; choose from {', '.join(NAMES)}")
    for name in names:
        if name in NEEDS and NEEDS[name] not in names:
            raise SystemExit(f"the {name} agent runs with the {NEEDS[name]} agent (they share a table); "
                             f"add {NEEDS[name]} to --agents")
    builders = {
        "catalog": catalog.agent,
        "inventory": inventory.agent,
        "orders": lambda: orders.agent(settings),
        "payments": lambda: payments.agent(provider),
        "campaigns": campaigns.agent,
    }
    return [builders[name]() for name in NAMES if name in names]
