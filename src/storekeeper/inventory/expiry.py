"""Hold expiry: finding holds whose `expires_at` has passed and expiring them.

`expire_due_holds` is set-based. It claims due holds (on PostgreSQL with `FOR UPDATE SKIP
LOCKED`, so several sweepers never wait on each other nor expire a hold twice), marks them
`expired`, and has the ledger give their `reserved` back with an `expire` movement per line
(`ledger.RETURN_RESERVED_SQL` inside the same statement on PostgreSQL, one round trip per
batch; `ledger.return_reserved` after it on SQLite, whose writers are serialised anyway).
The background sweeper runs it in batches every `STOREKEEPER_EXPIRY_INTERVAL_SECONDS`;
holds and allocations also run it inline, restricted to their own SKUs, when they would
otherwise be short. The inline run waits for due holds another transaction has locked
instead of skipping them: a sweeper in the middle of expiring the very hold a request needs
must not make that request short.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import TextClause, bindparam, exists, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper.db import Database, UnitOfWork, UTCDateTime, is_postgres, utcnow
from storekeeper.inventory import ledger
from storekeeper.inventory.metrics import HOLDS_EXPIRED
from storekeeper.inventory.models import ReservationStatus, reservation_lines, reservations

EXPIRY_REASON = "expired"


# One round trip per batch on PostgreSQL: claim due holds (a sweeper skips those another
# transaction holds; an inline reclaim waits for them, and the re-check after the wait drops
# the ones that were expired meanwhile), mark them expired, then the ledger's write of their
# lines. `= ANY(ARRAY(...))` keeps the batch's lookups on the primary-key and line indexes
# whatever the planner guesses about the CTEs' sizes.
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
{return_reserved}
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
            return_reserved=ledger.RETURN_RESERVED_SQL.strip(),
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

    await ledger.return_reserved(session, expired_ids, now=now, reason=EXPIRY_REASON)
    return len(expired_ids)


async def _expire_batch(session: AsyncSession, batch_size: int) -> int:
    return await expire_due_holds(session, now=utcnow(), limit=batch_size)


async def sweep_expired_holds(db: Database, *, batch_size: int) -> int:
    """Expire every due hold, one short unit of work per batch. Safe to run in several
    processes at once: each batch skips the holds another sweeper has claimed."""
    unit = UnitOfWork(db)
    total = 0
    while True:
        expired = await unit.run(_expire_batch, batch_size)
        total += expired
        if expired < batch_size:
            break
    if total:
        HOLDS_EXPIRED.inc(total)
    return total
