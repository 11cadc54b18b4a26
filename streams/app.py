"""The worker's Faust app with every agent registered: `faust -A streams.app worker -l info`."""

from __future__ import annotations

from connectors.stripe import StripePayments
from streams.agents import campaigns, catalog, inventory, orders, payments
from streams.settings import load
from streams.worker import Worker

worker = Worker(load())
app = worker.app

_products = catalog.register(worker)
inventory.register(worker, _products)
orders.register(worker)
payments.register(worker, StripePayments.from_settings(worker.settings))
campaigns.register(worker)
