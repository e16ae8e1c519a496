"""Hold expiry: returning the stock of holds whose `expires_at` has passed.

`expire_due_holds` is set-based: one statement marks a batch of holds `expired` (claimed with
`FOR UPDATE SKIP LOCKED` on PostgreSQL, so several sweepers never wait on each other), one
writes an `expire` movement per line, one locks the touched levels in (SKU, location) order
and one gives their `reserved` back. The background sweeper runs it in batches every
`STOREKEEPER_EXPIRY_INTERVAL_SECONDS`; holds and allocations also run it inline, restricted
to their own SKUs, when they would otherwise be short.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    String,
    Table,
    cast,
    exists,
    func,
    literal,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper.db import Database, utcnow
from storekeeper.inventory.levels import is_postgres, levels, movements, reservation_lines
from storekeeper.inventory.metrics import HOLDS_EXPIRED
from storekeeper.inventory.models import MovementKind, Reservation, ReservationStatus

reservations = typing.cast(Table, Reservation.__table__)

EXPIRY_REASON = "expired"


def _reservation_id_text(session: AsyncSession) -> ColumnElement[Any]:
    """A reservation id as the canonical hyphenated text used in ledger references."""
    column = reservation_lines.c.reservation_id
    if is_postgres(session):
        return cast(column, String)
    # SQLite stores UUIDs as 32 hex digits.
    hex_id = func.lower(cast(column, String))
    parts = [func.substr(hex_id, start, length) for start, length in _UUID_GROUPS]
    text: ColumnElement[Any] = parts[0]
    for part in parts[1:]:
        text = text.op("||")(literal("-")).op("||")(part)
    return text


_UUID_GROUPS = ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))


async def expire_due_holds(
    session: AsyncSession,
    *,
    now: datetime,
    limit: int | None = None,
    sku_ids: Sequence[int] | None = None,
) -> int:
    """Expire held reservations past `expires_at` (at most `limit`; only those with a line
    on one of `sku_ids` when given) and return their stock. Returns how many expired."""
    due = select(reservations.c.id).where(
        reservations.c.status == ReservationStatus.HELD.value,
        reservations.c.expires_at <= now,
    )
    if sku_ids is not None:
        # Driven by the partial index of live holds; each candidate's lines are probed.
        due = due.where(
            exists().where(
                reservation_lines.c.reservation_id == reservations.c.id,
                reservation_lines.c.sku_id.in_(sku_ids),
            )
        )
    if limit is not None:
        due = due.order_by(reservations.c.expires_at).limit(limit)
    due = due.with_for_update(skip_locked=True, of=reservations)
    expired_ids = (
        (
            await session.execute(
                update(reservations)
                .where(
                    reservations.c.id.in_(due),
                    reservations.c.status == ReservationStatus.HELD.value,
                )
                .values(status=ReservationStatus.EXPIRED.value, updated_at=now)
                .returning(reservations.c.id)
            )
        )
        .scalars()
        .all()
    )
    if not expired_ids:
        return 0

    lines_of_batch = reservation_lines.c.reservation_id.in_(expired_ids)
    await session.execute(
        movements.insert().from_select(
            [
                "sku_id",
                "location_id",
                "kind",
                "on_hand_delta",
                "reserved_delta",
                "allocated_delta",
                "reason",
                "reference",
                "created_at",
            ],
            select(
                reservation_lines.c.sku_id,
                reservation_lines.c.location_id,
                literal(MovementKind.EXPIRE.value),
                literal(0),
                -reservation_lines.c.quantity,
                literal(0),
                literal(EXPIRY_REASON),
                _reservation_id_text(session),
                literal(now, movements.c.created_at.type),
            ).where(lines_of_batch),
        )
    )
    totals = (
        select(
            reservation_lines.c.sku_id,
            reservation_lines.c.location_id,
            func.sum(reservation_lines.c.quantity).label("quantity"),
        )
        .where(lines_of_batch)
        .group_by(reservation_lines.c.sku_id, reservation_lines.c.location_id)
        .subquery("totals")
    )
    if is_postgres(session):
        # Lock the levels in the same order every writer uses, so a sweep and a batch
        # hold cannot deadlock.
        await session.execute(
            select(levels.c.id)
            .where(
                tuple_(levels.c.sku_id, levels.c.location_id).in_(
                    select(totals.c.sku_id, totals.c.location_id)
                )
            )
            .order_by(levels.c.sku_id, levels.c.location_id)
            .with_for_update()
        )
    await session.execute(
        update(levels)
        .where(
            levels.c.sku_id == totals.c.sku_id,
            levels.c.location_id == totals.c.location_id,
        )
        .values(
            reserved=levels.c.reserved - totals.c.quantity,
            version=levels.c.version + 1,
            updated_at=now,
        )
    )
    return len(expired_ids)


async def sweep_expired_holds(db: Database, *, batch_size: int) -> int:
    """Expire every due hold, one short transaction per batch. Safe to run in several
    processes at once: each batch skips the holds another sweeper has claimed."""

    async def _batch(session: AsyncSession) -> int:
        return await expire_due_holds(session, now=utcnow(), limit=batch_size)

    total = 0
    while True:
        expired = await db.run(_batch)
        total += expired
        if expired < batch_size:
            break
    if total:
        HOLDS_EXPIRED.inc(total)
    return total
