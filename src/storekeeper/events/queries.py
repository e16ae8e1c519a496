"""Reading published events: the feed, oldest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Subquery, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper.events.models import DeliveryStatus, Event, WebhookDelivery


@dataclass(frozen=True)
class EventView:
    id: int
    type: str
    occurred_at: datetime
    data: dict[str, Any]


async def event_feed(
    session: AsyncSession, *, after_id: int | None, event_type: str | None, limit: int
) -> list[EventView]:
    """Published events after `after_id`, oldest first (ids are gapless and only ever
    appended, so a consumer that keeps the last id it saw misses none)."""
    query = select(Event.id, Event.type, Event.occurred_at, Event.data).where(
        Event.id.is_not(None), Event.endpoint_id.is_(None)
    )
    if after_id is not None:
        query = query.where(Event.id > after_id)
    if event_type is not None:
        query = query.where(Event.type == event_type)
    rows = await session.execute(query.order_by(Event.id).limit(limit))
    return [EventView(*row) for row in rows]


def gauge_figures() -> Subquery:
    """The outbox backlog as one row, for the metrics scrape's one statement (each count
    reads a partial index): `events_unpublished` (written, no public id yet) and
    `webhook_deliveries_pending` (pending or failed and waiting for a retry)."""
    unpublished = select(func.count()).select_from(Event).where(Event.id.is_(None))
    pending = (
        select(func.count())
        .select_from(WebhookDelivery)
        .where(WebhookDelivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.FAILED]))
    )
    return select(
        unpublished.scalar_subquery().label("events_unpublished"),
        pending.scalar_subquery().label("webhook_deliveries_pending"),
    ).subquery("events_gauges")
