"""Read-only: the customer emails as the staff pages list them.

Newest first (by id: emails are numbered as they are made), optionally of one status and
one kind, with keyset paging on the id. The bodies are not read: a list shows the subject.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Subquery, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper.errors import ValidationFailed
from storekeeper.notifications.models import Email, EmailKind, EmailStatus
from storekeeper.pagination import INT64_MAX, decode_id_cursor, page_of

STATUSES: tuple[str, ...] = (
    EmailStatus.PENDING,
    EmailStatus.SENT,
    EmailStatus.FAILED,
    EmailStatus.DEAD,
    EmailStatus.SKIPPED,
)
KINDS: tuple[str, ...] = (
    EmailKind.ORDER_CONFIRMATION,
    EmailKind.ORDER_SHIPPED,
    EmailKind.ORDER_CANCELLED,
    EmailKind.BACK_IN_STOCK,
)


@dataclass(frozen=True)
class EmailView:
    id: int
    event_id: int
    kind: str
    to_address: str
    subject: str
    status: str
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    sent_at: datetime | None


@dataclass(frozen=True)
class EmailPage:
    rows: list[EmailView]
    next_cursor: str | None


EMAIL_COLUMNS = (
    Email.id,
    Email.event_id,
    Email.kind,
    Email.to_address,
    Email.subject,
    Email.status,
    Email.attempts,
    Email.last_error,
    Email.next_attempt_at,
    Email.created_at,
    Email.sent_at,
)


def _known(value: str | None, choices: tuple[str, ...], field: str) -> None:
    if value is not None and value not in choices:
        raise ValidationFailed.field(["query", field], f"unknown {field}")


async def list_emails(
    session: AsyncSession,
    *,
    status: str | None = None,
    kind: str | None = None,
    limit: int,
    cursor: str | None = None,
) -> EmailPage:
    """Emails newest first, optionally of one status and one kind; an unknown status or
    kind, or a malformed cursor, is a `ValidationFailed` (422)."""
    _known(status, STATUSES, "status")
    _known(kind, KINDS, "kind")
    query = select(*EMAIL_COLUMNS)
    if status is not None:
        query = query.where(Email.status == status)
    if kind is not None:
        query = query.where(Email.kind == kind)
    before = decode_id_cursor(cursor, INT64_MAX)
    if before is not None:
        query = query.where(Email.id < before)
    rows = (await session.execute(query.order_by(Email.id.desc()).limit(limit + 1))).all()
    items, next_cursor = page_of(rows, limit, lambda row: [row.id])
    return EmailPage([EmailView(**row._asdict()) for row in items], next_cursor)


def gauge_figures() -> Subquery:
    """Emails waiting to be sent (pending, or failed and waiting for a retry) as one row,
    for the metrics scrape's one statement: `emails_pending`."""
    pending = (
        select(func.count())
        .select_from(Email)
        .where(Email.status.in_([EmailStatus.PENDING, EmailStatus.FAILED]))
    )
    return select(pending.scalar_subquery().label("emails_pending")).subquery("email_gauges")
