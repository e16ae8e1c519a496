"""Sending webhook deliveries: claim, send, record, each step apart.

Every server process (and `storekeeper worker`) runs the sender; they coordinate through
the database only. One attempt goes like this:

1. Claim (`claim_due`, one short unit of work, once a read-only count found work): the
   due deliveries of active endpoints, oldest first, at most
   `webhook_concurrency_per_endpoint` in flight per endpoint in this process, are locked
   `FOR UPDATE SKIP LOCKED` (PostgreSQL; SQLite's writer lock serialises claims), leased
   (`locked_until` = now + timeout + a margin) and their `attempts` counted; the claim
   reads all the attempt needs (URL, secret, the event).
2. Send (no transaction open): the host is resolved and checked again (a name may now
   resolve elsewhere) and the request goes to the very address that was checked, the name
   kept for the Host header and TLS (`webhooks.pinned_target`), so DNS rebinding between
   the check and the connection cannot reach a private address; the body is signed the
   Standard Webhooks way and POSTed, the whole
   attempt bounded by `webhook_timeout_seconds`. Attempts run concurrently, and while some
   are in flight the sender keeps claiming what falls due, so a slow or failing endpoint
   never holds up the others.
3. Record (`record_outcome`, one short unit per attempt): 2xx is `succeeded`; anything else
   is `failed` with the next attempt after the schedule's delay, or `dead` after the last
   one. The endpoint remembers since when it has only failed and is deactivated after 24 h
   of that.

A sender that dies mid-attempt leaves its lease behind; once it has run out the delivery
is claimed again (at least once: receivers deduplicate by `webhook-id`). An outcome is
recorded only by the claim that made the attempt (`attempts` still matches), so a late
answer never overwrites a newer attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import structlog
from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks import Webhook

from storekeeper import __version__
from storekeeper.config import Settings
from storekeeper.db import Database, UnitOfWork, after_commit, is_postgres, utcnow
from storekeeper.events.metrics import (
    WEBHOOK_DELIVERIES_DUE,
    WEBHOOK_DELIVERY_ATTEMPTS,
    WEBHOOK_DELIVERY_SECONDS,
)
from storekeeper.events.models import DeliveryStatus, Event, WebhookDelivery, WebhookEndpoint
from storekeeper.events.webhooks import pinned_target

log = structlog.get_logger("storekeeper.webhooks")

USER_AGENT = f"Storekeeper-Webhooks/{__version__}"
# A lease outlasts the attempt's own time limit by this much (recording included).
LEASE_MARGIN_SECONDS = 30.0
# Attempts in flight at once in one process, over all endpoints.
MAX_IN_FLIGHT = 200
# After this long with nothing but failures an endpoint is deactivated.
DEACTIVATE_AFTER = timedelta(hours=24)
ERROR_LIMIT = 1000
# How much of a refusing receiver's answer is kept in `last_error`.
ANSWER_SNIPPET_BYTES = 300

_DUE_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.FAILED)


@dataclass(frozen=True)
class Attempt:
    """One claimed attempt and everything needed to make it."""

    delivery_id: int
    endpoint_id: int
    number: int  # the delivery's `attempts` including this one
    url: str
    secret: str
    event_id: int
    event_type: str
    occurred_at: datetime
    data: dict[str, Any]


@dataclass(frozen=True)
class Outcome:
    succeeded: bool
    status_code: int | None
    error: str | None
    seconds: float


# 1. Claim


def _due(now: datetime) -> list[ColumnElement[bool]]:
    return [
        WebhookDelivery.status.in_(_DUE_STATUSES),
        WebhookDelivery.next_attempt_at <= now,
        or_(WebhookDelivery.locked_until.is_(None), WebhookDelivery.locked_until < now),
    ]


async def count_due(session: AsyncSession) -> int:
    """How many deliveries are due and not in flight (read-only: on SQLite an idle sender
    does not take the writer's lock just to find nothing to do)."""
    due = await session.scalar(
        select(func.count()).select_from(WebhookDelivery).where(*_due(utcnow()))
    )
    WEBHOOK_DELIVERIES_DUE.set(due or 0)
    return due or 0


async def claim_due(
    session: AsyncSession,
    *,
    lease_seconds: float,
    per_endpoint: int,
    busy: Mapping[int, int] | None = None,
    limit: int = MAX_IN_FLIGHT,
) -> list[Attempt]:
    """Claim up to `limit` due deliveries of active endpoints, oldest first, taking no
    more of an endpoint than `per_endpoint` minus what `busy` says is already in flight
    towards it. Each is leased for `lease_seconds` and its `attempts` counted."""
    busy = busy or {}
    now = utcnow()
    due = _due(now)
    full = [endpoint for endpoint, count in busy.items() if count >= per_endpoint]
    ranked_query = (
        select(
            WebhookDelivery.id,
            WebhookDelivery.next_attempt_at,
            func.row_number()
            .over(
                partition_by=WebhookDelivery.endpoint_id,
                order_by=(WebhookDelivery.next_attempt_at, WebhookDelivery.id),
            )
            .label("rank"),
        )
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(*due, WebhookEndpoint.is_active)
    )
    if full:
        ranked_query = ranked_query.where(WebhookDelivery.endpoint_id.not_in(full))
    ranked = ranked_query.subquery()
    chosen = (
        select(ranked.c.id)
        .where(ranked.c.rank <= per_endpoint)
        .order_by(ranked.c.next_attempt_at, ranked.c.id)
        .limit(limit)
    )
    # The due conditions again: PostgreSQL re-checks them on a row another sender leased
    # and committed meanwhile, which is then left out.
    query = (
        select(
            WebhookDelivery.id,
            WebhookDelivery.endpoint_id,
            WebhookDelivery.attempts,
            WebhookEndpoint.url,
            WebhookEndpoint.secret,
            Event.id.label("event_id"),
            Event.type,
            Event.occurred_at,
            Event.data,
        )
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .join(Event, Event.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.id.in_(chosen), *due, WebhookEndpoint.is_active)
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
    )
    if is_postgres(session):
        query = query.with_for_update(skip_locked=True, of=WebhookDelivery)
    rows = (await session.execute(query)).all()
    taken: Counter[int] = Counter()
    attempts: list[Attempt] = []
    for row in rows:
        if busy.get(row.endpoint_id, 0) + taken[row.endpoint_id] >= per_endpoint:
            continue
        taken[row.endpoint_id] += 1
        attempts.append(
            Attempt(
                delivery_id=row.id,
                endpoint_id=row.endpoint_id,
                number=row.attempts + 1,
                url=row.url,
                secret=row.secret,
                event_id=row.event_id,
                event_type=row.type,
                occurred_at=row.occurred_at,
                data=row.data,
            )
        )
    if attempts:
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_([attempt.delivery_id for attempt in attempts]))
            .values(
                locked_until=now + timedelta(seconds=lease_seconds),
                attempts=WebhookDelivery.attempts + 1,
            )
            .execution_options(synchronize_session=False)
        )
    return attempts


# 2. Send


def signed_request(attempt: Attempt, sent_at: datetime) -> tuple[bytes, dict[str, str]]:
    """The body and the Standard Webhooks headers of `attempt`, signed at `sent_at`."""
    body = orjson.dumps(
        {
            "id": attempt.event_id,
            "type": attempt.event_type,
            "occurred_at": attempt.occurred_at,
            "data": attempt.data,
        },
        option=orjson.OPT_UTC_Z,
    )
    message_id = str(attempt.event_id)
    sent_at = sent_at.replace(microsecond=0)
    signature = Webhook(attempt.secret).sign(message_id, sent_at, body.decode())
    headers = {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signature,
    }
    return body, headers


async def _answer_snippet(response: httpx.Response) -> str:
    """The start of the receiver's answer (never the whole of an endless one)."""
    chunks: list[bytes] = []
    size = 0
    with contextlib.suppress(httpx.HTTPError):
        async for chunk in response.aiter_raw():
            chunks.append(chunk)
            size += len(chunk)
            if size >= ANSWER_SNIPPET_BYTES:
                break
    text = b"".join(chunks)[:ANSWER_SNIPPET_BYTES].decode("utf-8", "replace").strip()
    return " ".join(text.split())


async def send(client: httpx.AsyncClient, settings: Settings, attempt: Attempt) -> Outcome:
    """Make one attempt: check where the URL now points, sign, POST. Never raises for
    what the receiver or the network does; every such failure is an `Outcome`."""
    timeout = settings.webhook_timeout_seconds
    started = time.perf_counter()

    def outcome(succeeded: bool, status_code: int | None, error: str | None) -> Outcome:
        return Outcome(succeeded, status_code, error, time.perf_counter() - started)

    try:
        async with asyncio.timeout(timeout):
            target = await pinned_target(attempt.url, settings)
            if isinstance(target, str):
                return outcome(False, None, f"refused to send: {target}")
            body, headers = signed_request(attempt, datetime.now(UTC))
            async with client.stream(
                "POST",
                target.url,
                content=body,
                headers={**headers, **target.headers},
                extensions=target.extensions,
            ) as answer:
                if 200 <= answer.status_code < 300:
                    return outcome(True, answer.status_code, None)
                snippet = await _answer_snippet(answer)
                error = f"HTTP {answer.status_code}" + (f": {snippet}" if snippet else "")
                return outcome(False, answer.status_code, error)
    except (TimeoutError, httpx.TimeoutException):
        return outcome(False, None, f"no answer within {timeout:g} s")
    except httpx.HTTPError as exc:
        return outcome(False, None, f"{type(exc).__name__}: {exc}".rstrip(": "))
    except Exception as exc:  # an invalid URL, a TLS library error: still a failed attempt
        log.warning("webhook_attempt_error", delivery_id=attempt.delivery_id, exc_info=True)
        return outcome(False, None, f"{type(exc).__name__}: {exc}".rstrip(": "))


# 3. Record


def next_step(attempt_number: int, schedule: Sequence[int], now: datetime) -> datetime | None:
    """When attempt `attempt_number + 1` is due after attempt `attempt_number` failed, or
    None when that was the last (`len(schedule) + 1` attempts in all)."""
    if attempt_number > len(schedule):
        return None
    return now + timedelta(seconds=schedule[attempt_number - 1])


async def record_outcome(
    session: AsyncSession, attempt: Attempt, outcome: Outcome, schedule: Sequence[int]
) -> str | None:
    """Record what the attempt came to; returns the delivery's new status, or None when
    the attempt no longer owns the delivery (its lease ran out and another took it)."""
    now = utcnow()
    mine = (
        WebhookDelivery.id == attempt.delivery_id,
        WebhookDelivery.attempts == attempt.number,
        WebhookDelivery.status.in_(_DUE_STATUSES),
    )
    endpoint = WebhookEndpoint.id == attempt.endpoint_id
    if outcome.succeeded:
        status = DeliveryStatus.SUCCEEDED
        values: dict[str, Any] = {
            "status": status,
            "delivered_at": now,
            "next_attempt_at": None,
            "last_error": None,
        }
    else:
        next_at = next_step(attempt.number, schedule, now)
        status = DeliveryStatus.FAILED if next_at is not None else DeliveryStatus.DEAD
        values = {
            "status": status,
            "next_attempt_at": next_at,
            "last_error": (outcome.error or "failed")[:ERROR_LIMIT],
        }
    values |= {"locked_until": None, "last_status_code": outcome.status_code}
    recorded = (
        await session.execute(
            update(WebhookDelivery)
            .where(*mine)
            .values(**values)
            .returning(WebhookDelivery.id)
            .execution_options(synchronize_session=False)
        )
    ).scalar_one_or_none()
    if recorded is None:
        return None
    if outcome.succeeded:
        await session.execute(
            update(WebhookEndpoint)
            .where(endpoint, WebhookEndpoint.failing_since.is_not(None))
            .values(failing_since=None)
        )
    else:
        await session.execute(
            update(WebhookEndpoint)
            .where(endpoint, WebhookEndpoint.failing_since.is_(None))
            .values(failing_since=now)
        )
        reason = (
            f"Deactivated at {now:%Y-%m-%d %H:%M} UTC: every delivery attempt failed for "
            f"24 hours. Last error: {outcome.error or 'failed'}"
        )[:500]
        deactivated = (
            await session.execute(
                update(WebhookEndpoint)
                .where(
                    endpoint,
                    WebhookEndpoint.is_active,
                    WebhookEndpoint.failing_since < now - DEACTIVATE_AFTER,
                )
                .values(is_active=False, deactivated_reason=reason)
                .returning(WebhookEndpoint.id)
            )
        ).scalar_one_or_none()
        if deactivated is not None:
            after_commit(
                session,
                lambda: log.warning("webhook_endpoint_deactivated", endpoint_id=deactivated),
            )

    def count() -> None:
        WEBHOOK_DELIVERY_ATTEMPTS.labels(outcome=status).inc()
        WEBHOOK_DELIVERY_SECONDS.observe(outcome.seconds)

    after_commit(session, count)
    return status


# The job


async def _attempt(
    db: Database, settings: Settings, client: httpx.AsyncClient, attempt: Attempt
) -> None:
    outcome = await send(client, settings, attempt)
    await UnitOfWork(db).run(
        record_outcome, attempt, outcome, tuple(settings.webhook_retry_schedule)
    )


async def deliver_due(db: Database, settings: Settings, client: httpx.AsyncClient) -> int:
    """Attempt every delivery that is due, and whatever falls due while those are in
    flight; returns the number of attempts once none is left in flight. Cancelled, it
    cancels its attempts (their leases run out and they are claimed again)."""
    lease_seconds = settings.webhook_timeout_seconds + LEASE_MARGIN_SECONDS
    per_endpoint = settings.webhook_concurrency_per_endpoint
    in_flight: dict[asyncio.Task[None], int] = {}
    busy: Counter[int] = Counter()
    made = 0
    try:
        while True:
            room = MAX_IN_FLIGHT - len(in_flight)
            claimed: list[Attempt] = []
            due = await UnitOfWork(db, write=False).run(count_due) if room > 0 else 0
            if due > 0:
                claimed = await UnitOfWork(db).run(
                    claim_due,
                    lease_seconds=lease_seconds,
                    per_endpoint=per_endpoint,
                    busy=dict(busy),
                    limit=room,
                )
            for attempt in claimed:
                task = asyncio.create_task(
                    _attempt(db, settings, client, attempt),
                    name=f"webhook-delivery:{attempt.delivery_id}",
                )
                in_flight[task] = attempt.endpoint_id
                busy[attempt.endpoint_id] += 1
            made += len(claimed)
            if not in_flight:
                return made
            done, _ = await asyncio.wait(
                in_flight,
                timeout=settings.events_interval_seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
            for task in done:
                endpoint_id = in_flight.pop(task)
                busy[endpoint_id] -= 1
                if busy[endpoint_id] <= 0:
                    del busy[endpoint_id]
                if not task.cancelled() and task.exception() is not None:
                    # Not recorded (the database failed us): the lease runs out and the
                    # delivery is attempted again.
                    log.error(
                        "webhook_outcome_not_recorded",
                        endpoint_id=endpoint_id,
                        exc_info=task.exception(),
                    )
    finally:
        for task in in_flight:
            task.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)


def new_client(settings: Settings) -> httpx.AsyncClient:
    """The sender's HTTP client: no redirects followed, no proxy from the environment, no
    shared connection limit (the sender bounds what is in flight itself)."""
    return httpx.AsyncClient(
        timeout=settings.webhook_timeout_seconds,
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=50),
        headers={"user-agent": USER_AGENT},
    )


def webhook_sender(settings: Settings) -> Callable[[Database], Awaitable[None]]:
    """The background job: one HTTP client for the life of the process, `deliver_due`
    every `events_interval_seconds` until the process stops (cancellation closes it)."""

    async def send_webhooks(db: Database) -> None:
        async with new_client(settings) as client:
            while True:
                try:
                    await deliver_due(db, settings, client)
                except Exception:
                    log.exception("webhook_delivery_failed")
                await asyncio.sleep(settings.events_interval_seconds)

    return send_webhooks
