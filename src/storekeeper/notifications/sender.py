"""Sending customer emails through SMTP: claim, send, record, each step apart.

The same steps as the webhook sender (`events.delivery`), on the `emails` table:

1. Claim (`claim_due`, one short unit of work, once a read-only count found work): due
   emails, oldest first, are locked `FOR UPDATE SKIP LOCKED` (PostgreSQL; SQLite's writer
   lock serialises claims), leased (`locked_until` = now + the SMTP timeout + a margin) and
   their `attempts` counted.
2. Send (no transaction open): one SMTP session per email, bounded by
   `smtp_timeout_seconds`.
3. Record (`record_outcome`, one short unit per email): accepted is `sent`; anything else
   is `failed` with the next attempt after the delay of `webhook_retry_schedule`, or `dead`
   after the last. Only the claim that made the attempt records it (`attempts` matches).

A sender that dies between the SMTP server's acceptance and the record leaves its lease
behind and the email is sent again once it runs out: at least once, with the same
`Message-ID` header each time. Without `smtp_url` nothing is sent (emails are then made
`skipped`, see `service`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
import structlog
from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper.config import Settings
from storekeeper.db import Database, UnitOfWork, after_commit, is_postgres, utcnow
from storekeeper.events.delivery import next_step
from storekeeper.notifications.metrics import EMAIL_ATTEMPTS
from storekeeper.notifications.models import Email, EmailStatus
from storekeeper.notifications.service import prepare_all

log = structlog.get_logger("storekeeper.notifications")

LEASE_MARGIN_SECONDS = 30.0
# Emails claimed at once, and SMTP sessions open at once, per process.
CLAIM_BATCH = 50
MAX_IN_FLIGHT = 8
# Claims per run at most; a run ends earlier once a claim comes back short.
MAX_ROUNDS = 20
ERROR_LIMIT = 1000

_DUE_STATUSES = (EmailStatus.PENDING, EmailStatus.FAILED)


@dataclass(frozen=True)
class SmtpTarget:
    hostname: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool
    start_tls: bool


def smtp_target(url: str) -> SmtpTarget:
    """`smtp://[user:pass@]host[:port][?starttls=true]` or `smtps://...` (implicit TLS);
    the port defaults to 25 and 465."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("an SMTP URL is smtp://[user:pass@]host[:port] or smtps://...")
    implicit_tls = parts.scheme == "smtps"
    starttls = parse_qs(parts.query).get("starttls", ["false"])[-1].lower() in ("true", "1")
    return SmtpTarget(
        hostname=parts.hostname,
        port=parts.port or (465 if implicit_tls else 25),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        use_tls=implicit_tls,
        start_tls=starttls and not implicit_tls,
    )


@dataclass(frozen=True)
class Attempt:
    email_id: int
    number: int  # the email's `attempts` including this one
    to_address: str
    subject: str
    body_text: str
    body_html: str


@dataclass(frozen=True)
class Outcome:
    sent: bool
    error: str | None


# 1. Claim


def _due(now: Any) -> list[ColumnElement[bool]]:
    return [
        Email.status.in_(_DUE_STATUSES),
        Email.next_attempt_at <= now,
        or_(Email.locked_until.is_(None), Email.locked_until < now),
    ]


async def count_due(session: AsyncSession) -> int:
    return (
        await session.scalar(select(func.count()).select_from(Email).where(*_due(utcnow())))
    ) or 0


async def claim_due(
    session: AsyncSession, *, lease_seconds: float, limit: int = CLAIM_BATCH
) -> list[Attempt]:
    """Claim up to `limit` due emails, oldest first, each leased for `lease_seconds` with
    its `attempts` counted."""
    now = utcnow()
    query = (
        select(
            Email.id,
            Email.attempts,
            Email.to_address,
            Email.subject,
            Email.body_text,
            Email.body_html,
        )
        .where(*_due(now))
        .order_by(Email.next_attempt_at, Email.id)
        .limit(limit)
    )
    if is_postgres(session):
        query = query.with_for_update(skip_locked=True)
    attempts = [
        Attempt(
            email_id=row.id,
            number=row.attempts + 1,
            to_address=row.to_address,
            subject=row.subject,
            body_text=row.body_text,
            body_html=row.body_html,
        )
        for row in (await session.execute(query)).all()
    ]
    if attempts:
        await session.execute(
            update(Email)
            .where(Email.id.in_([attempt.email_id for attempt in attempts]))
            .values(
                locked_until=now + timedelta(seconds=lease_seconds),
                attempts=Email.attempts + 1,
            )
            .execution_options(synchronize_session=False)
        )
    return attempts


# 2. Send


def message_of(attempt: Attempt, mail_from: str) -> EmailMessage:
    """The MIME message: plain text with an HTML alternative; its `Message-ID` is the
    email's own, so a repeated attempt is recognisably the same message."""
    domain = mail_from.rpartition("@")[2] or "localhost"
    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = attempt.to_address
    message["Subject"] = attempt.subject
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = f"<storekeeper-email-{attempt.email_id}@{domain}>"
    message.set_content(attempt.body_text)
    message.add_alternative(attempt.body_html, subtype="html")
    return message


async def send(settings: Settings, target: SmtpTarget, attempt: Attempt) -> Outcome:
    """One SMTP session for one email. Never raises for what the server or the network
    does; every such failure is an `Outcome`."""
    timeout = settings.smtp_timeout_seconds
    try:
        async with asyncio.timeout(timeout):
            await aiosmtplib.send(
                message_of(attempt, settings.mail_from),
                sender=settings.mail_from,
                recipients=[attempt.to_address],
                hostname=target.hostname,
                port=target.port,
                username=target.username,
                password=target.password,
                use_tls=target.use_tls,
                start_tls=target.start_tls,
                timeout=timeout,
            )
        return Outcome(True, None)
    except TimeoutError:
        return Outcome(False, f"no answer within {timeout:g} s")
    except Exception as exc:  # refused, unreachable, TLS: a failed attempt all the same
        return Outcome(False, f"{type(exc).__name__}: {exc}".rstrip(": "))


# 3. Record


async def record_outcome(
    session: AsyncSession, attempt: Attempt, outcome: Outcome, schedule: Sequence[int]
) -> str | None:
    """Record what the attempt came to; returns the email's new status, or None when the
    attempt no longer owns the email (its lease ran out and another sender took it)."""
    now = utcnow()
    if outcome.sent:
        status = EmailStatus.SENT
        values: dict[str, Any] = {"sent_at": now, "next_attempt_at": None, "last_error": None}
    else:
        next_at = next_step(attempt.number, schedule, now)
        status = EmailStatus.FAILED if next_at is not None else EmailStatus.DEAD
        values = {
            "next_attempt_at": next_at,
            "last_error": (outcome.error or "failed")[:ERROR_LIMIT],
        }
    recorded = (
        await session.execute(
            update(Email)
            .where(
                Email.id == attempt.email_id,
                Email.attempts == attempt.number,
                Email.status.in_(_DUE_STATUSES),
            )
            .values(status=status, locked_until=None, **values)
            .returning(Email.id)
            .execution_options(synchronize_session=False)
        )
    ).scalar_one_or_none()
    if recorded is None:
        return None
    after_commit(session, lambda: EMAIL_ATTEMPTS.labels(outcome=status).inc())
    return status


# The job


async def _attempt(
    db: Database,
    settings: Settings,
    target: SmtpTarget,
    attempt: Attempt,
    room: asyncio.Semaphore,
) -> None:
    async with room:
        outcome = await send(settings, target, attempt)
    try:
        await UnitOfWork(db).run(
            record_outcome, attempt, outcome, tuple(settings.webhook_retry_schedule)
        )
    except Exception:
        # Not recorded: the lease runs out and the email is attempted again.
        log.exception("email_outcome_not_recorded", email_id=attempt.email_id)


async def send_due(db: Database, settings: Settings) -> int:
    """Attempt every email due now, once each (a run claims again only while its claims
    come back full); returns the number of attempts. Nothing without `smtp_url`."""
    if settings.smtp_url is None:
        return 0
    target = smtp_target(settings.smtp_url)
    lease_seconds = settings.smtp_timeout_seconds + LEASE_MARGIN_SECONDS
    room = asyncio.Semaphore(MAX_IN_FLIGHT)
    made = 0
    for _ in range(MAX_ROUNDS):
        if await UnitOfWork(db, write=False).run(count_due) == 0:
            break
        claimed = await UnitOfWork(db).run(claim_due, lease_seconds=lease_seconds)
        await asyncio.gather(
            *(_attempt(db, settings, target, attempt, room) for attempt in claimed)
        )
        made += len(claimed)
        if len(claimed) < CLAIM_BATCH:
            break
    return made


def email_job(settings: Settings) -> Callable[[Database], Awaitable[None]]:
    """The background job: make the emails of newly published events, then send what is
    due (every `events_interval_seconds`)."""

    async def send_emails(db: Database) -> None:
        await prepare_all(db, settings)
        await send_due(db, settings)

    return send_emails
