"""Prometheus counters of the orders domain (added up across worker processes).

They count committed work only: the services register the increment to run after the unit
of work commits, so a rolled-back checkout or status change is never counted.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import Counter
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

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


def count_after_commit(session: AsyncSession, count: Callable[[], None]) -> None:
    """Run `count` once this session's transaction commits (never on rollback)."""

    def _committed(_session: Session) -> None:
        count()

    event.listen(session.sync_session, "after_commit", _committed, once=True)
