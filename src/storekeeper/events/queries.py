"""Reading published events: the feed, oldest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper.events.models import Event


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
