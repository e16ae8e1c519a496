"""Prometheus counters of the orders domain (added up across worker processes).

They count committed work only: the services register the increment with
`storekeeper.db.after_commit`, so a rolled-back checkout or status change is never counted.
"""

from __future__ import annotations

from prometheus_client import Counter

ORDERS_CREATED = Counter(
    "storekeeper_orders_created_total",
    "Orders created, by source (checkout of a cart or an order with explicit items).",
    ["source"],
)
ORDER_STATUS_CHANGES = Counter(
    "storekeeper_order_status_changes_total",
    "Order status changes, by the new status.",
    ["status"],
)
