"""Publishing events: public ids in commit order, and the webhook deliveries they need.

One process at a time publishes (it locks the single `event_publication` row; others
skip). It takes the committed events that have no public id yet in write order, numbers
them after the last id given out, and creates a pending delivery for every active webhook
endpoint that subscribes to the event's type and existed when the event occurred (a
`webhook.ping` goes to its own endpoint only). An event still in an uncommitted
transaction is invisible here and gets a later id once it commits, so the published ids
never leave a gap behind a reader.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper.db import Database, UnitOfWork, after_commit, is_postgres, utcnow
from storekeeper.events.metrics import EVENTS_PUBLISHED
from storekeeper.events.models import (
    DeliveryStatus,
    Event,
    EventPublication,
    WebhookDelivery,
    WebhookEndpoint,
)

PUBLISH_BATCH = 500


def subscribes(endpoint_types: list[str], event_type: str) -> bool:
    return "*" in endpoint_types or event_type in endpoint_types


async def _lock_publication(session: AsyncSession) -> EventPublication | None:
    """The publication row (the migration writes it), locked; None when another publisher
    holds it."""
    query = select(EventPublication).where(EventPublication.id == 1)
    if is_postgres(session):
        query = query.with_for_update(skip_locked=True)
    return (await session.scalars(query)).one_or_none()


async def publish_events(session: AsyncSession, *, batch_size: int = PUBLISH_BATCH) -> int:
    """Publish up to `batch_size` committed events; returns how many."""
    publication = await _lock_publication(session)
    if publication is None:
        return 0
    pending = (
        await session.execute(
            select(Event.seq, Event.type, Event.occurred_at, Event.endpoint_id)
            .where(Event.id.is_(None))
            .order_by(Event.seq)
            .limit(batch_size)
        )
    ).all()
    if not pending:
        return 0
    now = utcnow()
    first = publication.last_event_id + 1
    numbered = [(first + offset, row) for offset, row in enumerate(pending)]
    await session.execute(
        update(Event).execution_options(synchronize_session=False),
        [{"seq": row.seq, "id": event_id, "published_at": now} for event_id, row in numbered],
    )
    publication.last_event_id = first + len(pending) - 1
    await session.flush()
    await _fan_out(
        session,
        [(event_id, row.type, row.occurred_at, row.endpoint_id) for event_id, row in numbered],
        now,
    )
    count = len(pending)
    after_commit(session, lambda: EVENTS_PUBLISHED.inc(count))
    return count


async def _fan_out(
    session: AsyncSession, events: list[tuple[int, str, datetime, int | None]], now: datetime
) -> None:
    endpoints = (
        await session.execute(
            select(
                WebhookEndpoint.id, WebhookEndpoint.event_types, WebhookEndpoint.created_at
            ).where(WebhookEndpoint.is_active)
        )
    ).all()
    rows: list[dict[str, Any]] = []
    for event_id, event_type, occurred_at, only_endpoint in events:
        for endpoint in endpoints:
            if only_endpoint is not None:
                wanted = endpoint.id == only_endpoint
            else:
                wanted = endpoint.created_at <= occurred_at and subscribes(
                    endpoint.event_types, event_type
                )
            if wanted:
                rows.append(
                    {
                        "endpoint_id": endpoint.id,
                        "event_id": event_id,
                        "status": DeliveryStatus.PENDING,
                        "attempts": 0,
                        "next_attempt_at": now,
                        "created_at": now,
                    }
                )
    if rows:
        await session.execute(insert(WebhookDelivery), rows)


async def has_unpublished(session: AsyncSession) -> bool:
    """Whether any committed event awaits publication (a probe of the partial index)."""
    found = await session.scalar(select(Event.seq).where(Event.id.is_(None)).limit(1))
    return found is not None


async def publish_all(db: Database, *, batch_size: int = PUBLISH_BATCH) -> int:
    """Publish every committed event, one short unit of work per batch (the job). An idle
    run only reads: it takes no lock (on SQLite, not the database's write lock) unless
    there is something to publish."""
    total = 0
    while await UnitOfWork(db, write=False).run(has_unpublished):
        published = await UnitOfWork(db).run(publish_events, batch_size=batch_size)
        total += published
        if published < batch_size:
            break
    return total
