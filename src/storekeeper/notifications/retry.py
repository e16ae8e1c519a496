"""Sending an email again by hand, the way a webhook delivery is retried.

A `failed` or `dead` email becomes `failed` and due now (a dead one gets one more
attempt; its `attempts` grows by one when a sender makes it). Other statuses are refused:
a `pending` email is already on its way, a `sent` one arrived, a `skipped` one was made
while no SMTP server was configured and is kept, never sent.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper.db import utcnow
from storekeeper.errors import Conflict, NotFound
from storekeeper.notifications.models import Email, EmailStatus
from storekeeper.notifications.queries import EMAIL_COLUMNS, EmailView

RETRYABLE = (EmailStatus.FAILED, EmailStatus.DEAD)


async def retry_email(session: AsyncSession, email_id: int) -> EmailView:
    """Make a failed or dead email due again now; `NotFound` for an unknown id, `Conflict`
    for an email in any other status."""
    email = (
        await session.scalars(select(Email).where(Email.id == email_id).with_for_update())
    ).one_or_none()
    if email is None:
        raise NotFound(f"No email with id {email_id}.")
    if email.status not in RETRYABLE:
        raise Conflict(
            f"Email {email_id} is {email.status}: only a failed or dead email can be retried."
        )
    email.status = EmailStatus.FAILED
    email.next_attempt_at = utcnow()
    await session.flush()
    row = (await session.execute(select(*EMAIL_COLUMNS).where(Email.id == email_id))).one()
    return EmailView(**row._asdict())
