"""Writing events: the outbox side of every change other systems must learn of.

`record` adds the event to the caller's unit of work, so it commits with the change it
announces or not at all; nothing here touches the network. The publisher later gives it
its public id and fans it out to webhook endpoints (`publisher`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper.db import after_commit, utcnow
from storekeeper.events.metrics import EVENTS_WRITTEN
from storekeeper.events.models import Event

ORDER_CREATED = "order.created"
ORDER_PAID = "order.paid"
ORDER_SHIPPED = "order.shipped"
ORDER_CANCELLED = "order.cancelled"
HOLD_EXPIRED = "hold.expired"
STOCK_LOW = "stock.low"
STOCK_OUT = "stock.out"
STOCK_BACK_IN_STOCK = "stock.back_in_stock"
WEBHOOK_PING = "webhook.ping"

EVENT_TYPES = (
    ORDER_CREATED,
    ORDER_PAID,
    ORDER_SHIPPED,
    ORDER_CANCELLED,
    HOLD_EXPIRED,
    STOCK_LOW,
    STOCK_OUT,
    STOCK_BACK_IN_STOCK,
)

_INSERT = insert(Event)


async def record(
    session: AsyncSession,
    event_type: str,
    data: dict[str, Any],
    *,
    occurred_at: datetime | None = None,
    endpoint_id: int | None = None,
) -> None:
    """Write one event in the caller's unit of work."""
    await record_many(session, event_type, [data], occurred_at=occurred_at, endpoint_id=endpoint_id)


async def record_many(
    session: AsyncSession,
    event_type: str,
    items: list[dict[str, Any]],
    *,
    occurred_at: datetime | None = None,
    endpoint_id: int | None = None,
) -> None:
    """Write one event of `event_type` per item of `items`, in one statement."""
    if not items:
        return
    when = occurred_at or utcnow()
    await session.execute(
        _INSERT,
        [
            {"type": event_type, "data": data, "occurred_at": when, "endpoint_id": endpoint_id}
            for data in items
        ],
    )
    count = len(items)
    after_commit(session, lambda: EVENTS_WRITTEN.labels(type=event_type).inc(count))
