"""Hold expiry: returning the stock of holds whose `expires_at` has passed.

`expire_due_holds` is set-based. On PostgreSQL one statement per batch claims due holds
with `FOR UPDATE SKIP LOCKED` (several sweepers never wait on each other nor expire a hold
twice), marks them `expired`, writes an `expire` movement per line, locks the touched levels
in (SKU, location) order and gives their `reserved` back. SQLite, whose writers are
serialised anyway, runs the same steps as separate statements. The background sweeper runs
it in batches every `STOREKEEPER_EXPIRY_INTERVAL_SECONDS`; holds and allocations also run it
inline, restricted to their own SKUs, when they would otherwise be short. The inline run
waits for due holds another transaction has locked instead of skipping them: a sweeper in
the middle of expiring the very hold a request needs must not make that request short.
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
    TextClause,
    bindparam,
    cast,
    exists,
    func,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper.db import Database, UTCDateTime, utcnow
from storekeeper.inventory.levels import is_postgres, levels, movements, reservation_lines
from storekeeper.inventory.metrics import HOLDS_EXPIRED
from storekeeper.inventory.models import MovementKind, Reservation, ReservationStatus

reservations = typing.cast(Table, Reservation.__table__)

EXPIRY_REASON = "expired"


def _reservation_id_text() -> ColumnElement[Any]:
    """A reservation id as the canonical hyphenated text used in ledger references (SQLite
    stores UUIDs as 32 hex digits)."""
    hex_id = func.lower(cast(reservation_lines.c.reservation_id, String))
    parts = [func.substr(hex_id, start, length) for start, length in _UUID_GROUPS]
    hyphenated: ColumnElement[Any] = parts[0]
    for part in parts[1:]:
        hyphenated = hyphenated.op("||")(literal("-")).op("||")(part)
    return hyphenated


_UUID_GROUPS = ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))


# One round trip per batch on PostgreSQL: claim due holds (a sweeper skips those another
# transaction holds; an inline reclaim waits for them, and the re-check after the wait drops
# the ones that were expired meanwhile), mark them expired, write one `expire` movement per
# line, then lock the touched levels in (SKU, location) order and give their `reserved`
# back. `= ANY(ARRAY(...))` keeps the batch's lookups on the primary-key and line indexes
# whatever the planner guesses about the CTEs' sizes. Rows leave the `locked` query sorted
# and each is locked as it leaves, so the lock order is the order every other writer uses.
_EXPIRE_ON_POSTGRES = """
WITH claimed AS (
    SELECT r.id FROM reservations AS r
    WHERE r.status = 'held' AND r.expires_at <= :now {sku_filter}
    ORDER BY r.expires_at
    {limit}
    FOR UPDATE OF r {skip_locked}
),
expired AS (
    UPDATE reservations AS r SET status = 'expired', updated_at = :now
    WHERE r.id = ANY(ARRAY(SELECT id FROM claimed)) AND r.status = 'held'
    RETURNING r.id
),
lines AS (
    SELECT rl.reservation_id, rl.sku_id, rl.location_id, rl.quantity
    FROM reservation_lines AS rl
    WHERE rl.reservation_id = ANY(ARRAY(SELECT id FROM expired))
),
movement AS (
    INSERT INTO stock_movements (sku_id, location_id, kind, on_hand_delta, reserved_delta,
                                 allocated_delta, reason, reference, created_at)
    SELECT sku_id, location_id, 'expire', 0, -quantity, 0, :reason,
           CAST(reservation_id AS VARCHAR), :now
    FROM lines
),
totals AS (
    SELECT sku_id, location_id, sum(quantity) AS quantity FROM lines
    GROUP BY sku_id, location_id
),
locked AS (
    SELECT sl.id, totals.quantity FROM stock_levels AS sl
    JOIN totals ON totals.sku_id = sl.sku_id AND totals.location_id = sl.location_id
    ORDER BY sl.sku_id, sl.location_id
    FOR UPDATE OF sl
),
returned AS (
    UPDATE stock_levels AS sl
    SET reserved = sl.reserved - locked.quantity, version = sl.version + 1, updated_at = :now
    FROM locked WHERE sl.id = locked.id
    RETURNING sl.id
)
SELECT (SELECT count(*) FROM expired) AS expired, (SELECT count(*) FROM returned) AS levels
"""


def _expire_on_postgres(*, limited: bool, by_sku: bool) -> TextClause:
    sku_filter = (
        "AND EXISTS (SELECT 1 FROM reservation_lines AS x "
        "WHERE x.reservation_id = r.id AND x.sku_id = ANY(:sku_ids))"
        if by_sku
        else ""
    )
    statement = text(
        _EXPIRE_ON_POSTGRES.format(
            sku_filter=sku_filter,
            limit="LIMIT :limit" if limited else "",
            skip_locked="" if by_sku else "SKIP LOCKED",
        )
    )
    return statement.bindparams(bindparam("now", type_=UTCDateTime()))


_POSTGRES_STATEMENTS = {
    (limited, by_sku): _expire_on_postgres(limited=limited, by_sku=by_sku)
    for limited in (False, True)
    for by_sku in (False, True)
}


async def expire_due_holds(
    session: AsyncSession,
    *,
    now: datetime,
    limit: int | None = None,
    sku_ids: Sequence[int] | None = None,
) -> int:
    """Expire held reservations past `expires_at` (at most `limit`; only those with a line
    on one of `sku_ids` when given) and return their stock. Returns how many expired.

    With `sku_ids` (the inline reclaim of a request that came up short) due holds locked by
    another transaction are waited for rather than skipped; without (the sweeper) they are
    skipped, so sweepers side by side never wait on each other."""
    if is_postgres(session):
        params: dict[str, Any] = {"now": now, "reason": EXPIRY_REASON}
        if limit is not None:
            params["limit"] = limit
        if sku_ids is not None:
            params["sku_ids"] = list(sku_ids)
        statement = _POSTGRES_STATEMENTS[(limit is not None, sku_ids is not None)]
        expired: int = (await session.execute(statement, params)).one().expired
        return expired
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
    due = due.with_for_update(skip_locked=sku_ids is None, of=reservations)
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
                _reservation_id_text(),
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
