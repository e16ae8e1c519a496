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

Every hold expired here is announced with a `hold.expired` event in the same unit of work,
its `data` the hold as the API shows it (`ReservationOut`): on PostgreSQL one more CTE of
the same statement writes the events, on SQLite one select of the batch's lines and one
insert follow the update. `expired_hold_data` is that shape for the holds expired one at a
time (a convert that finds its hold expired). The units given back are noted for the
SKUs' stock announcements (`signals`): a SKU that was sold out is back in stock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, TextClause, bindparam, exists, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper.db import Database, UnitOfWork, UTCDateTime, after_commit, is_postgres, utcnow
from storekeeper.events import outbox
from storekeeper.events.metrics import EVENTS_WRITTEN
from storekeeper.inventory import ledger, signals
from storekeeper.inventory.lines import skus
from storekeeper.inventory.metrics import HOLDS_EXPIRED
from storekeeper.inventory.models import (
    ReservationStatus,
    locations,
    reservation_lines,
    reservations,
)
from storekeeper.inventory.schemas import ReservationOut

EXPIRY_REASON = "expired"


# --- the hold.expired event's data ------------------------------------------------------


def expired_hold_data(hold: Any, items: Sequence[tuple[str, int, str]]) -> dict[str, Any]:
    """A `hold.expired` event's `data`: the hold as the API shows it (`ReservationOut`, as
    JSON). `hold` has the reservation's columns (a row or the model), `items` its lines as
    (SKU code, quantity, location code) in the API's order (by SKU)."""
    return ReservationOut.of(hold, items).model_dump(mode="json")


def _json_time_sql(column: str) -> str:
    """A timestamptz as the API writes it (Pydantic): UTC, `Z`, microseconds only when not
    zero (`2026-12-02T10:00:00Z`, `2026-12-02T10:00:00.250000Z`); NULL stays NULL."""
    return (
        f"replace(to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
        "'.000000Z', 'Z')"
    )


# `ReservationOut` in SQL, over the CTE `expired` (the holds' columns, as `e`) and
# `held_items` (their items, as `i`): `expired_hold_data` of PostgreSQL's expiry statement
# (the tests hold both to what GET /inventory/holds/{id} shows, on both databases).
_HOLD_DATA_SQL = {
    "id": "e.id",
    "client_token": "e.client_token",
    "status": "e.status",
    "items": "COALESCE(i.items, CAST('[]' AS JSONB))",
    "expires_at": _json_time_sql("e.expires_at"),
    "created_at": _json_time_sql("e.created_at"),
    "updated_at": _json_time_sql("e.updated_at"),
    "reference": "e.reference",
    "managed_by": "e.managed_by",
}
_HOLD_DATA_PAIRS = ",\n        ".join(f"'{key}', {value}" for key, value in _HOLD_DATA_SQL.items())

# The events of the holds a PostgreSQL batch expired, after its CTEs `expired` and
# `lines`: one `hold.expired` row per hold, oldest expiry first (as `claimed` took them).
_ANNOUNCE_ON_POSTGRES = f"""
held_items AS (
    SELECT l.reservation_id,
           jsonb_agg(
               jsonb_build_object('sku', s.code, 'quantity', l.quantity, 'location', loc.code)
               ORDER BY l.sku_id, l.location_id
           ) AS items
    FROM lines AS l
    JOIN skus AS s ON s.id = l.sku_id
    JOIN locations AS loc ON loc.id = l.location_id
    GROUP BY l.reservation_id
),
announced AS (
    INSERT INTO events (type, occurred_at, data)
    SELECT '{outbox.HOLD_EXPIRED}', :now, jsonb_build_object(
        {_HOLD_DATA_PAIRS}
    )
    FROM expired AS e LEFT JOIN held_items AS i ON i.reservation_id = e.id
    ORDER BY e.expires_at, e.id
    RETURNING events.seq
)"""


# One round trip per batch on PostgreSQL: claim due holds (a sweeper skips those another
# transaction holds; an inline reclaim waits for them, and the re-check after the wait drops
# the ones that were expired meanwhile), mark them expired, the ledger's write of their
# lines, and their `hold.expired` events. `= ANY(ARRAY(...))` keeps the batch's lookups on
# the primary-key and line indexes whatever the planner guesses about the CTEs' sizes.
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
    RETURNING r.id, r.client_token, r.status, r.expires_at, r.created_at, r.updated_at,
              r.reference, r.managed_by
),
lines AS (
    SELECT rl.reservation_id, rl.sku_id, rl.location_id, rl.quantity
    FROM reservation_lines AS rl
    WHERE rl.reservation_id = ANY(ARRAY(SELECT id FROM expired))
),
{return_reserved},
{announce}
SELECT (SELECT count(*) FROM expired) AS expired, (SELECT count(*) FROM returned) AS levels,
       (SELECT count(*) FROM announced) AS events,
       ARRAY(SELECT sku_id FROM totals GROUP BY sku_id ORDER BY sku_id) AS returned_skus,
       ARRAY(SELECT CAST(sum(quantity) AS INTEGER) FROM totals GROUP BY sku_id ORDER BY sku_id)
           AS returned_units
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
            announce=_ANNOUNCE_ON_POSTGRES.strip(),
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
        counts = (await session.execute(statement, params)).one()
        _count_events(session, counts.events)
        signals.note(session, dict(zip(counts.returned_skus, counts.returned_units, strict=True)))
        expired: int = counts.expired
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
    expired_holds = (
        await session.execute(
            update(reservations)
            .where(
                reservations.c.id.in_(due),
                reservations.c.status == ReservationStatus.HELD.value,
            )
            .values(status=ReservationStatus.EXPIRED.value, updated_at=now)
            .returning(*_HOLD_COLUMNS)
        )
    ).all()
    if not expired_holds:
        return 0

    expired_ids = [hold.id for hold in expired_holds]
    await ledger.return_reserved(session, expired_ids, now=now, reason=EXPIRY_REASON)
    await _announce(session, expired_holds, now=now)
    return len(expired_holds)


# The columns of a hold its `hold.expired` event shows.
_HOLD_COLUMNS = (
    reservations.c.id,
    reservations.c.client_token,
    reservations.c.status,
    reservations.c.expires_at,
    reservations.c.created_at,
    reservations.c.updated_at,
    reservations.c.reference,
    reservations.c.managed_by,
)


async def _announce(session: AsyncSession, holds: Sequence[Row[Any]], *, now: datetime) -> None:
    """The `hold.expired` events of a SQLite batch: one select of the holds' lines, one
    insert of the events (oldest expiry first, as on PostgreSQL)."""
    rows = await session.execute(
        select(
            reservation_lines.c.reservation_id,
            skus.c.code,
            reservation_lines.c.quantity,
            locations.c.code,
        )
        .join(skus, skus.c.id == reservation_lines.c.sku_id)
        .join(locations, locations.c.id == reservation_lines.c.location_id)
        .where(reservation_lines.c.reservation_id.in_([hold.id for hold in holds]))
        .order_by(
            reservation_lines.c.reservation_id,
            reservation_lines.c.sku_id,
            reservation_lines.c.location_id,
        )
    )
    items: dict[Any, list[tuple[str, int, str]]] = {hold.id: [] for hold in holds}
    for reservation_id, sku, quantity, location in rows:
        items[reservation_id].append((sku, quantity, location))
    ordered = sorted(holds, key=lambda hold: (hold.expires_at, hold.id))
    await outbox.record_many(
        session,
        outbox.HOLD_EXPIRED,
        [expired_hold_data(hold, items[hold.id]) for hold in ordered],
        occurred_at=now,
    )


def _count_events(session: AsyncSession, count: int) -> None:
    """Count events the expiry statement wrote itself (not through `outbox.record_many`)."""
    if count:
        after_commit(session, lambda: EVENTS_WRITTEN.labels(type=outbox.HOLD_EXPIRED).inc(count))


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
