"""Writes to stock levels, each together with its ledger row.

This module is the only place that changes `stock_levels`. Every change goes through
`_write`, which appends the matching `stock_movements` row (and, for holds and allocations,
the `reservation_lines` row) in the same transaction. On PostgreSQL the three writes are one
statement (data-modifying CTEs), so the hot row is locked for a single round trip before the
commit; SQLite runs them one after the other under its database-wide write lock.

Taking stock out of `available` (holds, allocations, removals) is a *claim* and follows the
configured locking strategy:

- `atomic`: one conditional `UPDATE ... WHERE on_hand - reserved - allocated >= :q`;
  the database decides, no figures are read first.
- `pessimistic`: the request's candidate levels are locked with `SELECT ... FOR UPDATE` in
  (SKU, location) order, then updated.
- `optimistic`: figures and `version` are read without locks and written with a
  compare-and-set on `version`; a lost race is re-read and retried a bounded number of times
  with jittered backoff, then reported as `RetryableError`.

Moving units between buckets of a known level (convert, release, expire, fulfil, cancel) and
receiving stock never lower `available`, so they are relative updates under every strategy;
the reservation's own conditional status change is what serialises them, and the CHECK
constraints guard the buckets.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, Literal, cast

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    Table,
    Uuid,
    and_,
    bindparam,
    func,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import ReturningInsert, ReturningUpdate
from sqlalchemy.sql.elements import TextClause

from storekeeper.config import LockingStrategy
from storekeeper.db import UTCDateTime
from storekeeper.errors import RetryableError
from storekeeper.inventory.metrics import OPTIMISTIC_RETRIES
from storekeeper.inventory.models import Location, ReservationLine, StockLevel, StockMovement

levels = cast(Table, StockLevel.__table__)
movements = cast(Table, StockMovement.__table__)
reservation_lines = cast(Table, ReservationLine.__table__)
locations = cast(Table, Location.__table__)

AVAILABLE = levels.c.on_hand - levels.c.reserved - levels.c.allocated


@dataclass(frozen=True)
class Deltas:
    on_hand: int = 0
    reserved: int = 0
    allocated: int = 0


@dataclass(frozen=True)
class Entry:
    """What a ledger row says besides its level and deltas."""

    kind: str
    created_at: datetime
    reason: str | None = None
    reference: str | None = None
    note: str | None = None
    actor_id: int | None = None


@dataclass(frozen=True)
class Claim:
    """Take `quantity` units of one SKU's available stock, applying `deltas` to the level.

    Without a location, the highest-priority active location that can serve the whole
    quantity is used.
    """

    sku_id: int
    quantity: int
    deltas: Deltas
    location_id: int | None = None


@dataclass(frozen=True)
class Written:
    """A level after a write, and the ledger row that recorded it."""

    sku_id: int
    location_id: int
    location_code: str
    on_hand: int
    reserved: int
    allocated: int
    version: int
    movement_id: int


@dataclass(frozen=True)
class Shortage:
    sku_id: int
    requested: int
    available: int


def is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def dialect_insert(session: AsyncSession, table: Any) -> Any:
    """The dialect's INSERT construct (both support ON CONFLICT)."""
    if is_postgres(session):
        return postgresql.insert(table)
    return sqlite.insert(table)


def _set_deltas(deltas: Deltas) -> dict[str, Any]:
    values: dict[str, Any] = {"version": levels.c.version + 1}
    if deltas.on_hand:
        values["on_hand"] = levels.c.on_hand + deltas.on_hand
    if deltas.reserved:
        values["reserved"] = levels.c.reserved + deltas.reserved
    if deltas.allocated:
        values["allocated"] = levels.c.allocated + deltas.allocated
    return values


_LEVEL_RETURNING = (
    levels.c.sku_id,
    levels.c.location_id,
    levels.c.on_hand,
    levels.c.reserved,
    levels.c.allocated,
    levels.c.version,
)


def _write_params(
    deltas: Deltas, entry: Entry, reservation_id: uuid.UUID | None, line_quantity: int
) -> dict[str, Any]:
    """Values for the bind parameters of `_pg_write_statement` (its ledger row and line)."""
    return {
        "movement_kind": entry.kind,
        "movement_on_hand_delta": deltas.on_hand,
        "movement_reserved_delta": deltas.reserved,
        "movement_allocated_delta": deltas.allocated,
        "movement_reason": entry.reason,
        "movement_reference": entry.reference,
        "movement_note": entry.note,
        "movement_actor_id": entry.actor_id,
        "movement_created_at": entry.created_at,
        "line_reservation_id": reservation_id,
        "line_quantity": line_quantity,
    }


def _pg_write_statement(
    change: ReturningUpdate[Any] | ReturningInsert[Any], with_line: bool
) -> Select[Any]:
    """`change` with its ledger row (and reservation line) as one PostgreSQL statement of
    data-modifying CTEs. Every value is a bind parameter (`_write_params`), so a statement
    built once serves every call of the same shape."""
    changed = change.cte("changed")
    movement = (
        postgresql.insert(movements)
        .from_select(
            [
                "sku_id",
                "location_id",
                "kind",
                "on_hand_delta",
                "reserved_delta",
                "allocated_delta",
                "reason",
                "reference",
                "note",
                "actor_id",
                "created_at",
            ],
            select(
                changed.c.sku_id,
                changed.c.location_id,
                bindparam("movement_kind", type_=String()),
                bindparam("movement_on_hand_delta", type_=Integer()),
                bindparam("movement_reserved_delta", type_=Integer()),
                bindparam("movement_allocated_delta", type_=Integer()),
                bindparam("movement_reason", type_=String()),
                bindparam("movement_reference", type_=String()),
                bindparam("movement_note", type_=String()),
                bindparam("movement_actor_id", type_=Integer()),
                bindparam("movement_created_at", type_=UTCDateTime()),
            ),
        )
        .returning(movements.c.id)
        .cte("movement")
    )
    query = (
        select(
            changed.c.sku_id,
            changed.c.location_id,
            locations.c.code,
            changed.c.on_hand,
            changed.c.reserved,
            changed.c.allocated,
            changed.c.version,
            movement.c.id,
        )
        .select_from(changed)
        .join(locations, locations.c.id == changed.c.location_id)
        .join(movement, true())
    )
    if with_line:
        line = postgresql.insert(reservation_lines).from_select(
            ["reservation_id", "sku_id", "location_id", "quantity"],
            select(
                bindparam("line_reservation_id", type_=Uuid()),
                changed.c.sku_id,
                changed.c.location_id,
                bindparam("line_quantity", type_=Integer()),
            ),
        )
        query = query.add_cte(line.cte("line"))
    return query


async def _write(
    session: AsyncSession,
    change: ReturningUpdate[Any] | ReturningInsert[Any],
    deltas: Deltas,
    entry: Entry,
    reservation_id: uuid.UUID | None = None,
    line_quantity: int = 0,
    *,
    change_params: dict[str, Any] | None = None,
    pg_statement: Select[Any] | None = None,
) -> Written | None:
    """Run one level change (an UPDATE or upsert returning `_LEVEL_RETURNING`, with
    `change_params` for its bind parameters) with its ledger row and, when
    `reservation_id` is given, its reservation line. None when the change matched no row.
    `pg_statement` is `_pg_write_statement` of `change`, when the caller has it built
    already."""
    params = change_params or {}
    if is_postgres(session):
        statement = pg_statement
        if statement is None:
            statement = _pg_write_statement(change, with_line=reservation_id is not None)
        row = (
            await session.execute(
                statement,
                {**params, **_write_params(deltas, entry, reservation_id, line_quantity)},
            )
        ).one_or_none()
        if row is None:
            return None
        return Written(*row)

    level_row = (await session.execute(change, params)).one_or_none()
    if level_row is None:
        return None
    sku_id, location_id, on_hand, reserved, allocated, version = level_row
    movement_id = (
        await session.execute(
            movements.insert()
            .values(
                sku_id=sku_id,
                location_id=location_id,
                kind=entry.kind,
                on_hand_delta=deltas.on_hand,
                reserved_delta=deltas.reserved,
                allocated_delta=deltas.allocated,
                reason=entry.reason,
                reference=entry.reference,
                note=entry.note,
                actor_id=entry.actor_id,
                created_at=entry.created_at,
            )
            .returning(movements.c.id)
        )
    ).scalar_one()
    if reservation_id is not None:
        await session.execute(
            reservation_lines.insert().values(
                reservation_id=reservation_id,
                sku_id=sku_id,
                location_id=location_id,
                quantity=line_quantity,
            )
        )
    code = (
        await session.execute(select(locations.c.code).where(locations.c.id == location_id))
    ).scalar_one()
    return Written(sku_id, location_id, code, on_hand, reserved, allocated, version, movement_id)


def _update_level(
    condition: ColumnElement[bool], deltas: Deltas, now: datetime
) -> ReturningUpdate[Any]:
    return (
        update(levels)
        .where(condition)
        .values(**_set_deltas(deltas), updated_at=now)
        .returning(*_LEVEL_RETURNING)
    )


async def shift(
    session: AsyncSession,
    sku_id: int,
    location_id: int,
    deltas: Deltas,
    entry: Entry,
) -> Written:
    """Move units between the buckets of a known level (never lowers `available`)."""
    written = await _write(
        session,
        _update_level(
            and_(levels.c.sku_id == sku_id, levels.c.location_id == location_id),
            deltas,
            entry.created_at,
        ),
        deltas,
        entry,
    )
    if written is None:
        raise LookupError(f"no stock level for SKU {sku_id} at location {location_id}")
    return written


async def receive(
    session: AsyncSession, sku_id: int, location_id: int, quantity: int, entry: Entry
) -> Written:
    """Add `quantity` to `on_hand`, creating the level on first receipt."""
    deltas = Deltas(on_hand=quantity)
    insert = dialect_insert(session, levels)
    upsert = (
        insert.values(
            sku_id=sku_id,
            location_id=location_id,
            on_hand=quantity,
            reserved=0,
            allocated=0,
            version=1,
            updated_at=entry.created_at,
        )
        .on_conflict_do_update(
            index_elements=[levels.c.sku_id, levels.c.location_id],
            set_={
                "on_hand": levels.c.on_hand + insert.excluded.on_hand,
                "version": levels.c.version + 1,
                "updated_at": insert.excluded.updated_at,
            },
        )
        .returning(*_LEVEL_RETURNING)
    )
    written = await _write(session, upsert, deltas, entry)
    if written is None:
        raise AssertionError("an upsert always returns its row")
    return written


# --- claims ------------------------------------------------------------------------------


def _candidates(claim: Claim) -> Select[Any]:
    """A claim's candidate levels, best first."""
    query = (
        select(levels.c.id, levels.c.location_id, AVAILABLE.label("available"), levels.c.version)
        .join(locations, locations.c.id == levels.c.location_id)
        .where(levels.c.sku_id == claim.sku_id)
    )
    if claim.location_id is not None:
        return query.where(levels.c.location_id == claim.location_id)
    return query.where(locations.c.is_active).order_by(locations.c.priority.desc(), locations.c.id)


async def _best_available(session: AsyncSession, claim: Claim) -> int:
    """The most a single candidate level could serve now (lines are never split)."""
    best = (
        await session.execute(
            select(func.max(AVAILABLE))
            .select_from(levels.join(locations, locations.c.id == levels.c.location_id))
            .where(
                levels.c.sku_id == claim.sku_id,
                levels.c.location_id == claim.location_id
                if claim.location_id is not None
                else locations.c.is_active,
            )
        )
    ).scalar_one_or_none()
    return max(int(best or 0), 0)


@dataclass(frozen=True)
class ClaimRequest:
    claim: Claim
    entry: Entry
    reservation_id: uuid.UUID | None = None


async def claim_all(
    session: AsyncSession,
    requests: Sequence[ClaimRequest],
    locking: LockingStrategy,
    *,
    optimistic_retries: int,
) -> list[Written | Shortage]:
    """Apply each claim (the caller orders them by SKU id) or report it short."""
    if locking is LockingStrategy.PESSIMISTIC:
        return await _claim_pessimistic(session, requests)
    results: list[Written | Shortage] = []
    for request in requests:
        if locking is LockingStrategy.OPTIMISTIC:
            results.append(await _claim_optimistic(session, request, optimistic_retries))
        else:
            results.append(await _claim_atomic(session, request))
    return results


# How a claim picks its level: the best active location that can serve it (`best`), a
# named location (`location`), a level already locked (`level`), or a level at the version
# it was read at (`level_version`).
ClaimTarget = Literal["best", "location", "level", "level_version"]
_DELTA_COLUMNS = ("on_hand", "reserved", "allocated")


@cache
def _claim_update(target: ClaimTarget, columns: tuple[str, ...]) -> ReturningUpdate[Any]:
    """The conditional UPDATE of a claim, built once per shape; `columns` are the buckets it
    changes. Bind parameters: `claim_quantity`, `level_updated_at`, `delta_<column>`, and
    those of the target (`claim_sku_id`, `claim_location_id`, `claim_level_id`,
    `claim_level_version`)."""
    quantity = bindparam("claim_quantity", type_=Integer())
    condition: ColumnElement[bool]
    if target == "best":
        candidate = levels.alias("candidate")
        best = (
            select(candidate.c.id)
            .join(locations, locations.c.id == candidate.c.location_id)
            .where(
                candidate.c.sku_id == bindparam("claim_sku_id", type_=Integer()),
                locations.c.is_active,
                candidate.c.on_hand - candidate.c.reserved - candidate.c.allocated >= quantity,
            )
            .order_by(locations.c.priority.desc(), locations.c.id)
            .limit(1)
            .scalar_subquery()
        )
        condition = levels.c.id == best
    elif target == "location":
        condition = and_(
            levels.c.sku_id == bindparam("claim_sku_id", type_=Integer()),
            levels.c.location_id == bindparam("claim_location_id", type_=Integer()),
        )
    else:
        condition = levels.c.id == bindparam("claim_level_id", type_=Integer())
        if target == "level_version":
            condition = and_(
                condition, levels.c.version == bindparam("claim_level_version", type_=Integer())
            )
    values: dict[str, Any] = {
        "version": levels.c.version + 1,
        "updated_at": bindparam("level_updated_at", type_=UTCDateTime()),
    }
    for column in columns:
        values[column] = levels.c[column] + bindparam(f"delta_{column}", type_=Integer())
    return (
        update(levels)
        .where(condition, quantity <= AVAILABLE)
        .values(**values)
        .returning(*_LEVEL_RETURNING)
    )


@cache
def _pg_claim_statement(
    target: ClaimTarget, columns: tuple[str, ...], with_line: bool
) -> Select[Any]:
    return _pg_write_statement(_claim_update(target, columns), with_line)


def _claim_write(
    session: AsyncSession,
    request: ClaimRequest,
    target: ClaimTarget,
    level_id: int | None = None,
    level_version: int | None = None,
) -> Any:
    """Apply `request`'s claim to the level `target` picks, if it can serve it (a
    statement of the claim's shape is built once and reused)."""
    claim = request.claim
    columns = tuple(c for c in _DELTA_COLUMNS if getattr(claim.deltas, c))
    params: dict[str, Any] = {
        "claim_quantity": claim.quantity,
        "level_updated_at": request.entry.created_at,
        "claim_sku_id": claim.sku_id,
        "claim_location_id": claim.location_id,
        "claim_level_id": level_id,
        "claim_level_version": level_version,
    }
    for column in columns:
        params[f"delta_{column}"] = getattr(claim.deltas, column)
    with_line = request.reservation_id is not None
    return _write(
        session,
        _claim_update(target, columns),
        claim.deltas,
        request.entry,
        request.reservation_id,
        claim.quantity,
        change_params=params,
        pg_statement=_pg_claim_statement(target, columns, with_line)
        if is_postgres(session)
        else None,
    )


# A conditional update can miss because another transaction changed the chosen level
# between choosing and locking it; a few fresh attempts settle that race.
_ATOMIC_ATTEMPTS = 4


async def _claim_atomic(session: AsyncSession, request: ClaimRequest) -> Written | Shortage:
    claim = request.claim
    target: ClaimTarget = "location" if claim.location_id is not None else "best"
    for _ in range(_ATOMIC_ATTEMPTS):
        written = await _claim_write(session, request, target)
        if written is not None:
            return written
        available = await _best_available(session, claim)
        if available < claim.quantity:
            return Shortage(claim.sku_id, claim.quantity, available)
    raise RetryableError("The stock level kept changing under this request; retry it.")


async def _claim_pessimistic(
    session: AsyncSession, requests: Sequence[ClaimRequest]
) -> list[Written | Shortage]:
    if not requests:
        return []
    sku_ids = sorted({request.claim.sku_id for request in requests})
    locked = (
        await session.execute(
            select(
                levels.c.id,
                levels.c.sku_id,
                levels.c.location_id,
                AVAILABLE.label("available"),
                locations.c.is_active,
                locations.c.priority,
            )
            .join(locations, locations.c.id == levels.c.location_id)
            .where(levels.c.sku_id.in_(sku_ids))
            .order_by(levels.c.sku_id, levels.c.location_id)
            .with_for_update(of=levels)
        )
    ).all()
    results: list[Written | Shortage] = []
    for request in requests:
        claim = request.claim
        options = [
            row
            for row in locked
            if row.sku_id == claim.sku_id
            and (row.location_id == claim.location_id if claim.location_id else row.is_active)
        ]
        options.sort(key=lambda row: (-row.priority, row.location_id))
        chosen = next((row for row in options if row.available >= claim.quantity), None)
        if chosen is None:
            best = max((row.available for row in options), default=0)
            results.append(Shortage(claim.sku_id, claim.quantity, max(best, 0)))
            continue
        written = await _claim_write(session, request, "level", level_id=chosen.id)
        if written is None:
            raise AssertionError("a locked level that could serve the claim refused it")
        results.append(written)
    return results


async def _claim_optimistic(
    session: AsyncSession, request: ClaimRequest, max_retries: int
) -> Written | Shortage:
    claim = request.claim
    for attempt in range(max_retries + 1):
        options = (await session.execute(_candidates(claim))).all()
        chosen = next((row for row in options if row.available >= claim.quantity), None)
        if chosen is None:
            best = max((row.available for row in options), default=0)
            return Shortage(claim.sku_id, claim.quantity, max(best, 0))
        written = await _claim_write(
            session, request, "level_version", level_id=chosen.id, level_version=chosen.version
        )
        if written is not None:
            return written
        OPTIMISTIC_RETRIES.inc()
        if 0 < attempt < max_retries:
            # The first re-read goes at once: on PostgreSQL the lost compare-and-set has
            # already locked the row's newest version (READ COMMITTED re-check), so it
            # cannot lose again and sleeping would only keep others waiting. Later
            # losses back off with jitter so racing writers spread out.
            await asyncio.sleep(random.uniform(0, min(0.001 * 2**attempt, 0.05)))
    raise RetryableError("The stock level kept changing under this request; retry it.")


# --- a one-line hold as one statement (PostgreSQL, atomic) --------------------------------

# Everything a one-line hold writes, as one statement of data-modifying CTEs: the caller's
# right to hold, the SKU and best level, the conditional claim, the reservation, its line
# and the ledger row. Run on its own (autocommit), PostgreSQL commits it the moment it ends,
# so the hot row is locked for the statement and its commit only, never for a round trip
# back to the application. Every step depends on the one before: when the caller may not
# hold, the SKU is unknown or deleted, or no level can serve the quantity, nothing matches
# and nothing is written. A client_token already used makes the reservation INSERT fail
# with a unique violation, which undoes the claim with the rest of the statement.
_HOLD_ONE_LINE = text(
    """
WITH caller AS (
    SELECT users.id FROM users
    WHERE users.id = :actor_id AND users.is_active AND users.role IN ('admin', 'staff')
),
target AS (
    SELECT candidate.id
    FROM skus
    JOIN stock_levels AS candidate ON candidate.sku_id = skus.id
    JOIN locations ON locations.id = candidate.location_id
    WHERE skus.code = :sku_code
      AND NOT skus.is_deleted
      AND CASE WHEN CAST(:location_code AS VARCHAR) IS NULL THEN locations.is_active
               ELSE locations.code = CAST(:location_code AS VARCHAR) END
      AND candidate.on_hand - candidate.reserved - candidate.allocated
          >= CAST(:quantity AS INTEGER)
      AND EXISTS (SELECT 1 FROM caller)
    ORDER BY locations.priority DESC, locations.id
    LIMIT 1
),
claimed AS (
    UPDATE stock_levels AS level
    SET reserved = level.reserved + CAST(:quantity AS INTEGER),
        version = level.version + 1,
        updated_at = :now
    FROM target
    WHERE level.id = target.id
      AND level.on_hand - level.reserved - level.allocated >= CAST(:quantity AS INTEGER)
    RETURNING level.sku_id, level.location_id
),
reservation AS (
    INSERT INTO reservations (
        id, client_token, request_fingerprint, status, expires_at, reference,
        managed_by, created_by, created_at, updated_at
    )
    SELECT :reservation_id, :client_token, :request_fingerprint, 'held', :expires_at,
           :reference, NULL, :actor_id, :now, :now
    FROM claimed
    RETURNING reservations.id
),
movement AS (
    INSERT INTO stock_movements (
        sku_id, location_id, kind, on_hand_delta, reserved_delta, allocated_delta,
        reason, reference, note, actor_id, created_at
    )
    SELECT claimed.sku_id, claimed.location_id, 'hold', 0, CAST(:quantity AS INTEGER), 0,
           NULL, :movement_reference, NULL, :actor_id, :now
    FROM claimed
),
line AS (
    INSERT INTO reservation_lines (reservation_id, sku_id, location_id, quantity)
    SELECT reservation.id, claimed.sku_id, claimed.location_id, CAST(:quantity AS INTEGER)
    FROM reservation CROSS JOIN claimed
)
SELECT claimed.sku_id, claimed.location_id, locations.code
FROM claimed JOIN locations ON locations.id = claimed.location_id
"""
)


@dataclass(frozen=True)
class OneLineHold:
    """A one-line hold to write in one statement; the caller has validated its shape."""

    reservation_id: uuid.UUID
    client_token: str
    request_fingerprint: str
    sku_code: str
    quantity: int
    location_code: str | None
    expires_at: datetime
    reference: str | None
    actor_id: int
    now: datetime


def hold_one_line_statement(hold: OneLineHold) -> tuple[TextClause, dict[str, Any]]:
    """The statement that writes `hold` whole or not at all, and its parameters: one row
    (sku id, location id, location code) when it held, none when it could not."""
    return _HOLD_ONE_LINE, {
        "actor_id": hold.actor_id,
        "sku_code": hold.sku_code,
        "location_code": hold.location_code,
        "quantity": hold.quantity,
        "now": hold.now,
        "reservation_id": hold.reservation_id,
        "client_token": hold.client_token,
        "request_fingerprint": hold.request_fingerprint,
        "expires_at": hold.expires_at,
        "reference": hold.reference,
        "movement_reference": str(hold.reservation_id),
    }
