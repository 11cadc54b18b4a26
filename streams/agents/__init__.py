"""The agents, one module per context; each binds source topics and a table to a pure decision.

`build(settings, provider, names)` gives the agents a worker runs. The inventory agent reads the
catalog table, so the two run together. The co_purchases agent re-keys confirmed orders by SKU
for the recommendations agent (streams/agents/recommendations.py). The notifications agent and the
three webhooks agents are not among the default ones: each runs alone, in a group of its own
(`--agents notifications`, `--agents webhooks`), so that a slow SMTP server or webhook endpoint
slows nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence

from connectors.stripe import PaymentProvider
from streams.agents import (
    campaigns,
    catalog,
    inventory,
    notifications,
    orders,
    payments,
    recommendations,
    shipping,
    webhooks,
)
from streams.runtime.agent import Agent
from streams.settings import Settings

# co_purchases re-keys confirmed orders by SKU for the recommendations agent (they need not share a group).
NAMES = ("catalog", "inventory", "orders", "payments", "campaigns", "shipping", "co_purchases", "recommendations")
# Agents run only when named, each alone in its group (`<app id>-<name>`).
ALONE = ("notifications", "webhooks")
# The tables the agents write, which workers serve to readers.
TABLES = tuple(module.TABLE.name for module in (catalog, inventory, orders, payments, campaigns, shipping,
                                                 recommendations))
# Agents that read another agent's table run in the same group as that agent.
NEEDS = {"inventory": "catalog"}


def build(settings: Settings, provider: PaymentProvider, names: Sequence[str] = NAMES) -> list[Agent]:
    unknown = sorted(set(names) - set(NAMES) - set(ALONE))
    if unknown:
        raise SystemExit(f"unknown agents {', '.join(unknown)}; choose from {', '.join((*NAMES, *ALONE))}")
    alone = sorted(set(names) & set(ALONE))
    if alone and len(set(names)) > 1:
        raise SystemExit(f"the {alone[0]} agent runs alone, in a group of its own: --agents {alone[0]}")
    if alone == ["notifications"]:
        return [notifications.agent(settings)]
    if alone:
        return webhooks.agents(settings)
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
        "shipping": shipping.agent,
        "co_purchases": recommendations.co_purchases,
        "recommendations": lambda: recommendations.agent(settings),
    }
    return [builders[name]() for name in NAMES if name in names]
