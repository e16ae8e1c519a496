"""Making customer emails from published events.

One process at a time (it locks the single `email_cursor` row; the others skip) reads the
published events after the cursor in id order, makes the emails they call for and moves
the cursor past them, all in one unit of work: an event's emails are made exactly once.
Published ids are gapless and only appended, so reading `id > cursor` misses none; should a
gap ever show, the batch stops before it and the next run carries on.

| event | email |
|---|---|
| `order.created` | `order_confirmation`: lines, total, shipping address |
| `order.shipped` | `order_shipped` |
| `order.cancelled` | `order_cancelled` |
| `stock.back_in_stock` | `back_in_stock`, naming the SKU code: one per waiting customer |

The recipient of an order email is the order's customer (`data["user_id"]` in `users`).
Those of a back-in-stock email are the customers waiting for the SKU (`data["sku"]`): their
entries become `notified` in the same unit of work (`waitlist.take_waiting`), so a second
event for the SKU emails only those who joined again since. With no SMTP server configured
an email is made `skipped`: kept and visible, never sent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper.accounts.models import User
from storekeeper.config import Settings
from storekeeper.db import Database, UnitOfWork, dialect_insert, is_postgres, utcnow
from storekeeper.events import outbox
from storekeeper.events.models import Event, EventPublication
from storekeeper.notifications.models import Email, EmailCursor, EmailKind, EmailStatus
from storekeeper.notifications.templates import (
    Rendered,
    back_in_stock_context,
    order_context,
    render,
)
from storekeeper.notifications.waitlist import take_waiting

log = structlog.get_logger("storekeeper.notifications")

PREPARE_BATCH = 500

KIND_OF_EVENT = {
    outbox.ORDER_CREATED: EmailKind.ORDER_CONFIRMATION,
    outbox.ORDER_SHIPPED: EmailKind.ORDER_SHIPPED,
    outbox.ORDER_CANCELLED: EmailKind.ORDER_CANCELLED,
}


async def _lock_cursor(session: AsyncSession) -> EmailCursor | None:
    """The cursor row (the migration writes it), locked; None when another process holds
    it."""
    query = select(EmailCursor).where(EmailCursor.id == 1)
    if is_postgres(session):
        query = query.with_for_update(skip_locked=True)
    return (await session.scalars(query)).one_or_none()


async def events_behind(session: AsyncSession) -> int:
    """How many published events the cursor has not reached (read-only: an idle job does
    not take SQLite's writer lock to find nothing to do)."""
    published = await session.scalar(
        select(EventPublication.last_event_id).where(EventPublication.id == 1)
    )
    done = await session.scalar(select(EmailCursor.last_event_id).where(EmailCursor.id == 1))
    return max((published or 0) - (done or 0), 0)


def _email_row(
    event_id: int, kind: str, to_address: str, rendered: Rendered, *, now: datetime, sending: bool
) -> dict[str, Any]:
    """The `emails` row of one email: due now when sending, else kept as skipped."""
    return {
        "event_id": event_id,
        "kind": kind,
        "to_address": to_address,
        "subject": rendered.subject,
        "body_text": rendered.body_text,
        "body_html": rendered.body_html,
        "status": EmailStatus.PENDING if sending else EmailStatus.SKIPPED,
        "attempts": 0,
        "next_attempt_at": now if sending else None,
        "created_at": now,
    }


async def _back_in_stock_emails(
    session: AsyncSession, row: Any, *, now: datetime, sending: bool
) -> list[dict[str, Any]]:
    """One `back_in_stock` email per customer waiting for the event's SKU, whose entries
    become `notified`."""
    code = row.data.get("sku")
    if not isinstance(code, str) or not code:
        log.warning("back_in_stock_without_sku", event_id=row.id)
        return []
    back = await take_waiting(session, code, now)
    if back is None:
        return []
    kind = EmailKind.BACK_IN_STOCK
    return [
        _email_row(
            row.id,
            kind,
            recipient.email,
            render(kind, back_in_stock_context(back.sku, back.product_name, recipient.name)),
            now=now,
            sending=sending,
        )
        for recipient in back.recipients
    ]


async def prepare_emails(
    session: AsyncSession, settings: Settings, *, batch_size: int = PREPARE_BATCH
) -> int:
    """Turn up to `batch_size` published events after the cursor into emails; returns how
    many events were consumed (0 when none, or when another process holds the cursor)."""
    cursor = await _lock_cursor(session)
    if cursor is None:
        return 0
    rows = (
        await session.execute(
            select(Event.id, Event.type, Event.data)
            .where(Event.id > cursor.last_event_id)
            .order_by(Event.id)
            .limit(batch_size)
        )
    ).all()
    consumed: list[Any] = []
    for row in rows:
        if row.id != cursor.last_event_id + len(consumed) + 1:
            break  # never step over an id not visible yet
        consumed.append(row)
    if not consumed:
        return 0
    wanted = [row for row in consumed if row.type in KIND_OF_EVENT]
    user_ids = {int(row.data["user_id"]) for row in wanted}
    users = (
        {
            user.id: user
            for user in (
                await session.execute(
                    select(User.id, User.email, User.full_name).where(User.id.in_(user_ids))
                )
            ).all()
        }
        if user_ids
        else {}
    )
    now = utcnow()
    sending = settings.smtp_url is not None
    emails: list[dict[str, Any]] = []
    for row in consumed:
        if row.type == outbox.STOCK_BACK_IN_STOCK:
            emails.extend(await _back_in_stock_emails(session, row, now=now, sending=sending))
            continue
        if row.type not in KIND_OF_EVENT:
            continue
        user = users.get(int(row.data["user_id"]))
        if user is None:
            log.warning("email_without_recipient", event_id=row.id, user_id=row.data["user_id"])
            continue
        kind = KIND_OF_EVENT[row.type]
        context = order_context(row.data, user.full_name or user.email)
        emails.append(
            _email_row(row.id, kind, user.email, render(kind, context), now=now, sending=sending)
        )
    if emails:
        await session.execute(
            dialect_insert(session, Email).on_conflict_do_nothing(
                index_elements=["event_id", "kind", "to_address"]
            ),
            emails,
        )
    cursor.last_event_id = consumed[-1].id
    await session.flush()
    return len(consumed)


async def prepare_all(db: Database, settings: Settings, *, batch_size: int = PREPARE_BATCH) -> int:
    """Make the emails of every published event after the cursor, one short unit of work
    per batch (the job's first half); returns how many events were consumed."""
    total = 0
    while await UnitOfWork(db, write=False).run(events_behind) > 0:
        consumed = await UnitOfWork(db).run(prepare_emails, settings, batch_size=batch_size)
        total += consumed
        if consumed < batch_size:
            break
    return total
