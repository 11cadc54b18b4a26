"""Apache Druid: ingestion supervisors for the analytical topics, and the business questions.

    druid = DruidAnalytics(broker_url="http://127.0.0.1:18082", overlord_url="http://127.0.0.1:18081")
    druid.submit_supervisors(bootstrap="127.0.0.1:9092")   # idempotent: unchanged specs are left running
    rows = await druid.run(druid.gmv_per_minute)            # from async code: runs in a thread

Specs come from `druid_specs/` (generated from the models, see `streams/analytics.py`); submitting
fills in the broker's bootstrap servers, the topic's namespace and the datasource's name (a
namespace maps to a datasource prefix, so test stacks never share a datasource).

Answers are sums of the stored `count` and metric columns, never row counts: Druid rolls events up
per minute, so one row may stand for many events. Native queries go through pydruid's client, SQL
through pydruid's DB-API; both block, so the async methods run them in a thread and never stall the
caller's event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydruid.client import PyDruid
from pydruid.db import connect
from pydruid.db.exceptions import ProgrammingError
from pydruid.utils.aggregators import longsum
from pydruid.utils.filters import Dimension

from streams import analytics, topics
from streams.analytics import BOOTSTRAP_PLACEHOLDER
from streams.settings import PROJECT_ROOT

log = logging.getLogger(__name__)

SPECS_DIR = PROJECT_ROOT / "druid_specs"
FINGERPRINT = "fusioncommerceSpecSha256"
ALL_TIME = "1000-01-01/3000-01-01"
T = TypeVar("T")


def datasource_name(namespace: str, datasource: str) -> str:
    """`t1234.` + `orders_events` -> `t1234_orders_events`: Druid SQL needs no quoting for it."""
    return re.sub(r"[^A-Za-z0-9_]", "_", namespace) + datasource


def supervisor_for(spec: topics.TopicSpec, bootstrap: str, namespace: str = "") -> dict[str, Any]:
    """The committed spec of a topic, bound to a cluster and a namespace."""
    assert spec.datasource is not None
    supervisor = json.loads((SPECS_DIR / f"{spec.datasource}.json").read_text())
    body = supervisor["spec"]
    body["dataSchema"]["dataSource"] = datasource_name(namespace, spec.datasource)
    body["ioConfig"]["topic"] = topics.full_name(namespace, spec.name)
    consumer = body["ioConfig"]["consumerProperties"]
    assert consumer["bootstrap.servers"] == BOOTSTRAP_PLACEHOLDER
    consumer["bootstrap.servers"] = bootstrap
    return supervisor


@dataclass(frozen=True)
class MinuteSales:
    minute: str
    tenant: str
    currency: str
    orders: int
    gmv: int  # minor units


class DruidAnalytics:
    def __init__(self, broker_url: str, overlord_url: str, namespace: str = "") -> None:
        self.broker_url = broker_url.rstrip("/")
        self.overlord_url = overlord_url.rstrip("/")
        self.namespace = namespace

    def datasource(self, spec: topics.TopicSpec) -> str:
        assert spec.datasource is not None
        return datasource_name(self.namespace, spec.datasource)

    # -- ingestion ---------------------------------------------------------------------------

    def submit_supervisors(self, bootstrap: str) -> list[str]:
        """Start or update one supervisor per analytical topic; returns the ids it (re)submitted.

        Druid answers a supervisor's spec with its defaults filled in, so it is compared by a
        fingerprint of what was submitted, kept in the supervisor's context.
        """
        submitted = []
        for spec in analytics.analysed_topics():
            supervisor = supervisor_for(spec, bootstrap, self.namespace)
            fingerprint = hashlib.sha256(json.dumps(supervisor, sort_keys=True).encode()).hexdigest()
            supervisor["context"] = {FINGERPRINT: fingerprint}
            supervisor_id = supervisor["spec"]["dataSchema"]["dataSource"]
            if self._running_fingerprint(supervisor_id) == fingerprint:
                continue
            self._post(f"{self.overlord_url}/druid/indexer/v1/supervisor", supervisor)
            log.info("submitted the Druid supervisor of %s", supervisor_id)
            submitted.append(supervisor_id)
        return submitted

    def _running_fingerprint(self, supervisor_id: str) -> str | None:
        try:
            with urllib.request.urlopen(f"{self.overlord_url}/druid/indexer/v1/supervisor/{supervisor_id}",
                                        timeout=10) as response:
                running = json.load(response)
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise
        return (running.get("context") or {}).get(FINGERPRINT)

    @staticmethod
    def _post(url: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            raise RuntimeError(f"Druid refused {url}: {error.code} {error.read().decode(errors='replace')}") from None

    # -- questions (SQL) ---------------------------------------------------------------------

    def sql(self, query: str, parameters: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        broker = urlsplit(self.broker_url)
        cursor = connect(host=broker.hostname, port=broker.port, path="/druid/v2/sql/", scheme=broker.scheme).cursor()
        cursor.execute(query, parameters)
        names = [column[0] for column in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def events_ingested(self, spec: topics.TopicSpec) -> int:
        """How many events of the topic Druid holds (0 before its first row makes the datasource)."""
        try:
            [row] = self.sql(f'SELECT SUM("count") AS events FROM "{self.datasource(spec)}"')
        except ProgrammingError as error:
            if "not found" in str(error):
                return 0
            raise
        return int(row["events"] or 0)

    def gmv_per_minute(self) -> list[MinuteSales]:
        """Confirmed (paid) orders and their value per minute, tenant and currency."""
        rows = self.sql(
            f'SELECT TIME_FORMAT(FLOOR(__time TO MINUTE)) AS "minute", tenant, total_currency AS currency, '
            f'SUM("count") AS orders, SUM(total_amount) AS gmv FROM "{self.datasource(topics.ORDERS_EVENTS)}" '
            "WHERE status = 'confirmed' GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
        )
        return [MinuteSales(**row) for row in rows]

    def units_by_sku(self) -> dict[str, dict[str, int]]:
        """Units sold (committed by paid orders) and units reserved (holds granted) per SKU."""
        sold = self.sql(
            f'SELECT sku, SUM(quantity) AS units FROM "{self.datasource(topics.INVENTORY_STOCK_CHANGES)}" '
            "WHERE type = 'StockCommitted' GROUP BY sku"
        )
        reserved = self.sql(
            f'SELECT sku, SUM(quantity) AS units FROM "{self.datasource(topics.INVENTORY_RESERVATIONS)}" '
            "WHERE type = 'StockReserved' GROUP BY sku"
        )
        answer: dict[str, dict[str, int]] = {}
        for kind, rows in (("sold", sold), ("reserved", reserved)):
            for row in rows:
                answer.setdefault(row["sku"], {"sold": 0, "reserved": 0})[kind] = row["units"]
        return answer

    def payment_failure_rate(self) -> float | None:
        """Failed payment steps per PaymentIntent created; None before any intent exists."""
        [row] = self.sql(
            "SELECT SUM(CASE WHEN type = 'PaymentFailed' THEN \"count\" ELSE 0 END) AS failed, "
            "SUM(CASE WHEN type = 'PaymentIntentCreated' THEN \"count\" ELSE 0 END) AS created "
            f'FROM "{self.datasource(topics.PAYMENTS_EVENTS)}"'
        )
        return row["failed"] / row["created"] if row["created"] else None

    def campaign_funnel(self) -> dict[str, int]:
        """Campaigns opened, pledges accepted, campaigns tipped and succeeded, per step."""
        steps = ("CampaignOpened", "PledgeAccepted", "CampaignTipped", "CampaignSucceeded")
        rows = self.sql(
            f'SELECT type, SUM("count") AS events FROM "{self.datasource(topics.CAMPAIGNS_EVENTS)}" '
            f"WHERE type IN ({', '.join(repr(step) for step in steps)}) GROUP BY type"
        )
        found = {row["type"]: row["events"] for row in rows}
        return {step: found.get(step, 0) for step in steps}

    def fulfilment_times(self) -> dict[str, dict[str, float | int | None]]:
        """Per tenant: shipments made and delivered, and the mean seconds from an order's confirmation to
        a shipment (ShipmentCreated) and to its delivery (the carrier's time of `delivered`). Each event
        carries `since_confirmed_seconds`, summed at ingestion: the mean is that sum over the events."""
        rows = self.sql(
            "SELECT tenant, "
            "SUM(CASE WHEN type = 'ShipmentCreated' THEN \"count\" ELSE 0 END) AS shipped, "
            "SUM(CASE WHEN type = 'ShipmentCreated' THEN since_confirmed_seconds ELSE 0 END) AS to_ship, "
            "SUM(CASE WHEN status = 'delivered' THEN \"count\" ELSE 0 END) AS delivered, "
            "SUM(CASE WHEN status = 'delivered' THEN since_confirmed_seconds ELSE 0 END) AS to_deliver "
            f'FROM "{self.datasource(topics.SHIPMENTS_EVENTS)}" GROUP BY tenant ORDER BY tenant'
        )
        return {row["tenant"]: {
            "shipments": row["shipped"], "delivered": row["delivered"],
            "seconds_to_ship": row["to_ship"] / row["shipped"] if row["shipped"] else None,
            "seconds_to_deliver": row["to_deliver"] / row["delivered"] if row["delivered"] else None,
        } for row in rows}

    def delivery_exceptions(self) -> dict[tuple[str, str], dict[str, int]]:
        """Per tenant and carrier: shipments' status changes to `exception` and to `returned`. (Druid
        sums a CASE that no row of a group matches to null, not 0: hence the `or 0` here and below.)"""
        rows = self.sql(
            "SELECT tenant, carrier, "
            "SUM(CASE WHEN status = 'exception' THEN \"count\" ELSE 0 END) AS exceptions, "
            "SUM(CASE WHEN status = 'returned' THEN \"count\" ELSE 0 END) AS returned "
            f'FROM "{self.datasource(topics.SHIPMENTS_EVENTS)}" WHERE type = \'ShipmentStatusChanged\' '
            "GROUP BY tenant, carrier ORDER BY tenant, carrier"
        )
        return {(row["tenant"], row["carrier"]): {"exceptions": row["exceptions"] or 0, "returned": row["returned"] or 0}
                for row in rows}

    def notifications_by_outcome(self) -> dict[tuple[str, str], dict[str, int]]:
        """Per tenant and message kind: messages sent and refused (each counted once, at its final
        outcome), and the attempts they took (more attempts than messages: temporary SMTP failures)."""
        rows = self.sql(
            "SELECT tenant, kind, "
            "SUM(CASE WHEN outcome = 'sent' THEN \"count\" ELSE 0 END) AS sent, "
            "SUM(CASE WHEN outcome = 'refused' THEN \"count\" ELSE 0 END) AS refused, "
            "SUM(attempts) AS attempts "
            f'FROM "{self.datasource(topics.NOTIFICATIONS_EVENTS)}" GROUP BY tenant, kind ORDER BY tenant, kind'
        )
        return {(row["tenant"], row["kind"]): {"sent": row["sent"] or 0, "refused": row["refused"] or 0,
                                               "attempts": row["attempts"] or 0} for row in rows}

    def webhook_failure_rate(self) -> dict[str, dict[str, float | int | None]]:
        """Per tenant: webhook delivery attempts, how many failed (an error or a non-2xx answer; each
        retry counts), deliveries given up, and the share of attempts that failed."""
        rows = self.sql(
            "SELECT tenant, "
            "SUM(CASE WHEN outcome IN ('delivered', 'failed', 'gave_up') THEN \"count\" ELSE 0 END) AS attempts, "
            "SUM(CASE WHEN outcome IN ('failed', 'gave_up') THEN \"count\" ELSE 0 END) AS failed, "
            "SUM(CASE WHEN outcome = 'gave_up' THEN \"count\" ELSE 0 END) AS given_up "
            f'FROM "{self.datasource(topics.WEBHOOKS_ATTEMPTS)}" GROUP BY tenant ORDER BY tenant'
        )
        counted = [(row["tenant"], row["attempts"] or 0, row["failed"] or 0, row["given_up"] or 0) for row in rows]
        return {tenant: {"attempts": attempts, "failed": failed, "given_up": given_up,
                         "failure_rate": failed / attempts if attempts else None}
                for tenant, attempts, failed, given_up in counted}

    def recommendation_click_through(self) -> dict[str, dict[str, float | int | None]]:
        """Per tenant: of the products recommended (RecommendationsServed), how many were ordered at
        or after the minute they were first recommended, and that share. "Ordered" is a line of a
        confirmed order: the StockCommitted of `inventory.stock-changes`, one per line at the order's
        confirmation (the same facts as OrderStatusChanged's `lines`, which Druid does not ingest).
        Two queries, joined here: `recommended` is a multi-value dimension, which GROUP BY unnests."""
        shown = self.sql(
            "SELECT tenant, recommended AS sku, TIMESTAMP_TO_MILLIS(MIN(__time)) AS first_ms, SUM(\"count\") AS served "
            f'FROM "{self.datasource(topics.RECOMMENDATIONS_SERVED)}" WHERE recommended IS NOT NULL GROUP BY 1, 2'
        )
        ordered = self.sql(
            "SELECT tenant, sku, TIMESTAMP_TO_MILLIS(MAX(__time)) AS last_ms "
            f'FROM "{self.datasource(topics.INVENTORY_STOCK_CHANGES)}" WHERE type = \'StockCommitted\' GROUP BY 1, 2'
        )
        last_ordered = {(row["tenant"], row["sku"]): row["last_ms"] for row in ordered}
        answer: dict[str, dict[str, float | int | None]] = {}
        for row in shown:
            counts = answer.setdefault(row["tenant"], {"recommended": 0, "ordered": 0, "click_through": None})
            counts["recommended"] = int(counts["recommended"] or 0) + 1
            if last_ordered.get((row["tenant"], row["sku"]), -1) >= row["first_ms"]:
                counts["ordered"] = int(counts["ordered"] or 0) + 1
        for counts in answer.values():
            counts["click_through"] = int(counts["ordered"] or 0) / int(counts["recommended"] or 1)
        return answer

    # -- questions (native, pydruid's client) ------------------------------------------------

    def order_events_by_status(self) -> dict[str, int]:
        """How many order transitions reached each status: a native groupBy summing `count`."""
        client = PyDruid(self.broker_url, "druid/v2")
        result = client.groupby(
            datasource=self.datasource(topics.ORDERS_EVENTS), granularity="all", intervals=ALL_TIME,
            dimensions=["status"], aggregations={"events": longsum("count")},
        )
        return {row["event"]["status"]: row["event"]["events"] for row in result.result}

    def confirmed_gmv(self, tenant: str, currency: str) -> int:
        """A tenant's confirmed order value in one currency, all time: a native timeseries with filters."""
        client = PyDruid(self.broker_url, "druid/v2")
        result = client.timeseries(
            datasource=self.datasource(topics.ORDERS_EVENTS), granularity="all", intervals=ALL_TIME,
            filter=(Dimension("status") == "confirmed") & (Dimension("tenant") == tenant)
            & (Dimension("total_currency") == currency),
            aggregations={"gmv": longsum("total_amount")},
        )
        return int(result.result[0]["result"]["gmv"]) if result.result else 0

    # -- async twins -------------------------------------------------------------------------

    async def run(self, question: Callable[..., T], *args: Any) -> T:
        """Ask any question above from async code: `await druid.run(druid.units_by_sku)`."""
        return await asyncio.to_thread(question, *args)
