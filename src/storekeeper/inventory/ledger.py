"""The single writer of stock: every change of a level, each with its ledger row.

No other module updates `stock_levels` or inserts into `stock_movements`. Every change is
one level statement and the matching ledger row (and, for holds and allocations, the
reservation line) in the same transaction; on PostgreSQL they are one statement of
data-modifying CTEs, so the hot row is locked for a single round trip before the commit,
while SQLite runs them one after the other under its database-wide write lock. The ledger
row's columns are named once (`LEDGER_COLUMNS`) and every statement inserts them through
`ledger_insert` (Core) or `ledger_insert_sql` (the raw statements below).

The writes, by who asks for them:

- `shift` moves units between the buckets of a known level (convert, release, fulfil,
  cancel) and `receive` adds to `on_hand`, creating the level on first receipt: neither
  lowers `available`, so they are relative updates under every locking strategy.
- `claim_level` takes units out of `available` with a conditional update (the claim
  strategies in `claims` decide which level and under which locks).
- `return_reserved` gives the reserved units of expired holds back, set-based
  (`RETURN_RESERVED_SQL` is the same write inside expiry's PostgreSQL statement).
- `change_on_hand_set` adds a delta to `on_hand` of many levels at once (a CSV import:
  stock takes and adjustments), creating missing levels, in three set-based statements.
- `hold_one_line_statement` is the flash-sale hold: caller check, claim, reservation, line
  and ledger row as one statement.

Every write in a unit of work notes how it moved its SKU's available units (`signals.note`),
so that the unit announces `stock.low` / `stock.out` / `stock.back_in_stock` before it
commits; the PostgreSQL expiry statement reports its SKUs' totals for the same. The
one-statement hold only serves holds that leave their level above the SKU's threshold,
which never call for an announcement (`signals` explains why).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, Literal

import orjson
from sqlalchemy import (
    ColumnElement,
    Insert,
    Integer,
    Select,
    String,
    Uuid,
    and_,
    bindparam,
    func,
    literal,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import ReturningInsert, ReturningUpdate
from sqlalchemy.sql.elements import TextClause

from storekeeper.accounts.policy import live_sign_in_sql, staff_role_sql
from storekeeper.db import UTCDateTime, dialect_insert, is_postgres
from storekeeper.errors import RetryableError
from storekeeper.inventory import signals
from storekeeper.inventory.models import (
    MovementKind,
    available_of,
    available_sql,
    available_units,
    levels,
    locations,
    movements,
    reservation_lines,
)


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

    @property
    def available(self) -> int:
        figure: int = available_units(self.on_hand, self.reserved, self.allocated)
        return figure


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
class ClaimRequest:
    claim: Claim
    entry: Entry
    reservation_id: uuid.UUID | None = None


# --- the ledger row ----------------------------------------------------------------------

LEDGER_COLUMNS = (
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
)


def ledger_insert(source: Select[Any]) -> Insert:
    """`INSERT INTO stock_movements (LEDGER_COLUMNS) <source>`: `source` selects one value
    per column, in `LEDGER_COLUMNS` order, per ledger row to write."""
    return movements.insert().from_select(list(LEDGER_COLUMNS), source)


def ledger_insert_sql(values: Sequence[str], source: str) -> str:
    """`ledger_insert` as SQL text for the raw statements: `values` are the select list's
    expressions in `LEDGER_COLUMNS` order, `source` what follows FROM."""
    if len(values) != len(LEDGER_COLUMNS):
        raise ValueError("one value per ledger column")
    return (
        f"INSERT INTO stock_movements ({', '.join(LEDGER_COLUMNS)}) "
        f"SELECT {', '.join(values)} FROM {source}"
    )


def _ledger_row_values(changed: Any = None) -> Select[Any]:
    """One ledger row's values as bind parameters (`_write_params`), with the level's SKU
    and location taken from `changed` (the CTE of the changed level) when given."""
    sku_id: Any = (
        changed.c.sku_id if changed is not None else bindparam("level_sku_id", type_=Integer())
    )
    location_id: Any = (
        changed.c.location_id
        if changed is not None
        else bindparam("level_location_id", type_=Integer())
    )
    return select(
        sku_id,
        location_id,
        bindparam("movement_kind", type_=String()),
        bindparam("movement_on_hand_delta", type_=Integer()),
        bindparam("movement_reserved_delta", type_=Integer()),
        bindparam("movement_allocated_delta", type_=Integer()),
        bindparam("movement_reason", type_=String()),
        bindparam("movement_reference", type_=String()),
        bindparam("movement_note", type_=String()),
        bindparam("movement_actor_id", type_=Integer()),
        bindparam("movement_created_at", type_=UTCDateTime()),
    )


def _write_params(
    deltas: Deltas, entry: Entry, reservation_id: uuid.UUID | None, line_quantity: int
) -> dict[str, Any]:
    """Values for the bind parameters of a write's ledger row (and reservation line)."""
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


# Built once: the SQLite form of a write's ledger row and reservation line.
_LEDGER_ROW = ledger_insert(_ledger_row_values()).returning(movements.c.id)
_LINE_ROW = reservation_lines.insert().from_select(
    ["reservation_id", "sku_id", "location_id", "quantity"],
    select(
        bindparam("line_reservation_id", type_=Uuid()),
        bindparam("level_sku_id", type_=Integer()),
        bindparam("level_location_id", type_=Integer()),
        bindparam("line_quantity", type_=Integer()),
    ),
)
_LOCATION_CODE = select(locations.c.code).where(
    locations.c.id == bindparam("level_location_id", type_=Integer())
)


# --- one level change with its ledger row ------------------------------------------------

_LEVEL_RETURNING = (
    levels.c.sku_id,
    levels.c.location_id,
    levels.c.on_hand,
    levels.c.reserved,
    levels.c.allocated,
    levels.c.version,
)


def _pg_write_statement(
    change: ReturningUpdate[Any] | ReturningInsert[Any], with_line: bool
) -> Select[Any]:
    """`change` with its ledger row (and reservation line) as one PostgreSQL statement of
    data-modifying CTEs. Every value is a bind parameter (`_write_params`), so a statement
    built once serves every call of the same shape."""
    changed = change.cte("changed")
    movement = ledger_insert(_ledger_row_values(changed)).returning(movements.c.id).cte("movement")
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
    already. A change of the SKU's available units is noted for its announcements."""
    written = await _write_level(
        session,
        change,
        deltas,
        entry,
        reservation_id,
        line_quantity,
        change_params=change_params,
        pg_statement=pg_statement,
    )
    if written is not None:
        units = available_units(deltas.on_hand, deltas.reserved, deltas.allocated)
        signals.note(session, {written.sku_id: units})
    return written


async def _write_level(
    session: AsyncSession,
    change: ReturningUpdate[Any] | ReturningInsert[Any],
    deltas: Deltas,
    entry: Entry,
    reservation_id: uuid.UUID | None,
    line_quantity: int,
    *,
    change_params: dict[str, Any] | None,
    pg_statement: Select[Any] | None,
) -> Written | None:
    params = {
        **(change_params or {}),
        **_write_params(deltas, entry, reservation_id, line_quantity),
    }
    if is_postgres(session):
        statement = pg_statement
        if statement is None:
            statement = _pg_write_statement(change, with_line=reservation_id is not None)
        row = (await session.execute(statement, params)).one_or_none()
        return Written(*row) if row is not None else None

    level_row = (await session.execute(change, change_params)).one_or_none()
    if level_row is None:
        return None
    sku_id, location_id, on_hand, reserved, allocated, version = level_row
    params.update(level_sku_id=sku_id, level_location_id=location_id)
    movement_id = (await session.execute(_LEDGER_ROW, params)).scalar_one()
    if reservation_id is not None:
        await session.execute(_LINE_ROW, params)
    code = (await session.execute(_LOCATION_CODE, params)).scalar_one()
    return Written(sku_id, location_id, code, on_hand, reserved, allocated, version, movement_id)


def _set_deltas(deltas: Deltas) -> dict[str, Any]:
    values: dict[str, Any] = {"version": levels.c.version + 1}
    if deltas.on_hand:
        values["on_hand"] = levels.c.on_hand + deltas.on_hand
    if deltas.reserved:
        values["reserved"] = levels.c.reserved + deltas.reserved
    if deltas.allocated:
        values["allocated"] = levels.c.allocated + deltas.allocated
    return values


async def shift(
    session: AsyncSession,
    sku_id: int,
    location_id: int,
    deltas: Deltas,
    entry: Entry,
) -> Written:
    """Move units between the buckets of a known level (never lowers `available`)."""
    change = (
        update(levels)
        .where(levels.c.sku_id == sku_id, levels.c.location_id == location_id)
        .values(**_set_deltas(deltas), updated_at=entry.created_at)
        .returning(*_LEVEL_RETURNING)
    )
    written = await _write(session, change, deltas, entry)
    if written is None:
        raise LookupError(f"no stock level for SKU {sku_id} at location {location_id}")
    return written


async def receive(
    session: AsyncSession, sku_id: int, location_id: int, quantity: int, entry: Entry
) -> Written:
    """Add `quantity` to `on_hand`, creating the level on first receipt."""
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
    written = await _write(session, upsert, Deltas(on_hand=quantity), entry)
    if written is None:
        raise AssertionError("an upsert always returns its row")
    return written


# --- many levels at once: a CSV import -------------------------------------------------


@dataclass(frozen=True)
class OnHandChange:
    """A change of one level's `on_hand`: of the existing level `level_id`, or of a level
    to create (`level_id` None, `delta` > 0). The caller has checked, under the locks it
    holds, that it keeps `available` at or above zero; the CHECK constraints hold it
    anyway."""

    sku_id: int
    location_id: int
    level_id: int | None
    delta: int
    kind: str
    reason: str


# The set-based forms: the changes travel as arrays (PostgreSQL, `unnest`) or as one JSON
# document (SQLite, `json_each`), so each statement is the same short text whatever the
# number of changes: nothing to compile per size and no bind parameter limit to chunk for.
_PG_SET_UPDATE = """
UPDATE stock_levels AS sl
SET on_hand = sl.on_hand + d.delta, version = sl.version + 1, updated_at = :now
FROM unnest(CAST(:level_ids AS INTEGER[]), CAST(:level_deltas AS BIGINT[])) AS d(id, delta)
WHERE sl.id = d.id
"""
_PG_SET_INSERT = """
INSERT INTO stock_levels (sku_id, location_id, on_hand, reserved, allocated, version, updated_at)
SELECT n.sku_id, n.location_id, n.delta, 0, 0, 1, :now
FROM unnest(CAST(:new_skus AS INTEGER[]), CAST(:new_locations AS INTEGER[]),
            CAST(:new_deltas AS BIGINT[])) AS n(sku_id, location_id, delta)
ON CONFLICT (sku_id, location_id) DO NOTHING
RETURNING 1
"""
_PG_SET_LEDGER = ledger_insert_sql(
    (
        "m.sku_id",
        "m.location_id",
        "m.kind",
        "m.delta",
        "0",
        "0",
        "m.reason",
        "CAST(:reference AS VARCHAR)",
        "CAST(:note AS VARCHAR)",
        "CAST(:actor_id AS INTEGER)",
        ":now",
    ),
    "unnest(CAST(:skus AS INTEGER[]), CAST(:locations AS INTEGER[]), "
    "CAST(:kinds AS VARCHAR[]), CAST(:deltas AS BIGINT[]), CAST(:reasons AS VARCHAR[])) "
    "AS m(sku_id, location_id, kind, delta, reason)",
)
_SQLITE_SET_UPDATE = """
UPDATE stock_levels
SET on_hand = stock_levels.on_hand + d.delta, version = stock_levels.version + 1,
    updated_at = :now
FROM (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS delta
      FROM json_each(:level_changes)) AS d
WHERE stock_levels.id = d.id
"""
_SQLITE_SET_INSERT = """
INSERT INTO stock_levels (sku_id, location_id, on_hand, reserved, allocated, version, updated_at)
SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),
       0, 0, 1, :now
FROM json_each(:new_levels)
"""
_SQLITE_SET_LEDGER = ledger_insert_sql(
    (
        "json_extract(value, '$[0]')",
        "json_extract(value, '$[1]')",
        "json_extract(value, '$[2]')",
        "json_extract(value, '$[3]')",
        "0",
        "0",
        "json_extract(value, '$[4]')",
        ":reference",
        ":note",
        ":actor_id",
        ":now",
    ),
    "json_each(:changes)",
)


def _set_statement(sql: str) -> TextClause:
    return text(sql).bindparams(bindparam("now", type_=UTCDateTime()))


async def change_on_hand_set(
    session: AsyncSession,
    changes: Sequence[OnHandChange],
    *,
    created_at: datetime,
    reference: str | None,
    note: str | None,
    actor_id: int | None,
) -> int:
    """Apply every change, each with its ledger row, set-based: one UPDATE of the existing
    levels, one INSERT of the new ones and one INSERT of the ledger rows, whatever the
    number of changes (never a round trip per change). Returns the statements sent."""
    existing = [c for c in changes if c.level_id is not None]
    new = [c for c in changes if c.level_id is None]
    common = {"now": created_at}
    statements = 0
    if is_postgres(session):
        if existing:
            await session.execute(
                _set_statement(_PG_SET_UPDATE),
                {
                    **common,
                    "level_ids": [c.level_id for c in existing],
                    "level_deltas": [c.delta for c in existing],
                },
            )
            statements += 1
        if new:
            inserted = await session.execute(
                _set_statement(_PG_SET_INSERT),
                {
                    **common,
                    "new_skus": [c.sku_id for c in new],
                    "new_locations": [c.location_id for c in new],
                    "new_deltas": [c.delta for c in new],
                },
            )
            statements += 1
            if len(inserted.all()) != len(new):
                # A level the caller found missing (so could not lock) was created by a
                # concurrent unit meanwhile: its figures were decided on stale reads. The
                # whole unit runs again and then finds (and locks) that level.
                raise RetryableError("A stock level was created concurrently; retry the import.")
        if changes:
            await session.execute(
                _set_statement(_PG_SET_LEDGER),
                {
                    **common,
                    "skus": [c.sku_id for c in changes],
                    "locations": [c.location_id for c in changes],
                    "kinds": [c.kind for c in changes],
                    "deltas": [c.delta for c in changes],
                    "reasons": [c.reason for c in changes],
                    "reference": reference,
                    "note": note,
                    "actor_id": actor_id,
                },
            )
            statements += 1
    else:
        if existing:
            await session.execute(
                _set_statement(_SQLITE_SET_UPDATE),
                {
                    **common,
                    "level_changes": orjson.dumps(
                        [[c.level_id, c.delta] for c in existing]
                    ).decode(),
                },
            )
            statements += 1
        if new:
            await session.execute(
                _set_statement(_SQLITE_SET_INSERT),
                {
                    **common,
                    "new_levels": orjson.dumps(
                        [[c.sku_id, c.location_id, c.delta] for c in new]
                    ).decode(),
                },
            )
            statements += 1
        if changes:
            await session.execute(
                _set_statement(_SQLITE_SET_LEDGER),
                {
                    **common,
                    "changes": orjson.dumps(
                        [[c.sku_id, c.location_id, c.kind, c.delta, c.reason] for c in changes]
                    ).decode(),
                    "reference": reference,
                    "note": note,
                    "actor_id": actor_id,
                },
            )
            statements += 1
    by_sku: dict[int, int] = {}
    for change in changes:
        by_sku[change.sku_id] = by_sku.get(change.sku_id, 0) + change.delta
    signals.note(session, by_sku)
    return statements


# --- claims: a conditional update of `available` ------------------------------------------

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
                available_of(candidate) >= quantity,
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
        .where(condition, quantity <= available_of(levels))
        .values(**values)
        .returning(*_LEVEL_RETURNING)
    )


@cache
def _pg_claim_statement(
    target: ClaimTarget, columns: tuple[str, ...], with_line: bool
) -> Select[Any]:
    return _pg_write_statement(_claim_update(target, columns), with_line)


async def claim_level(
    session: AsyncSession,
    request: ClaimRequest,
    target: ClaimTarget,
    level_id: int | None = None,
    level_version: int | None = None,
) -> Written | None:
    """Apply `request`'s claim to the level `target` picks, if it can serve it; None when
    no level matched (a statement of the claim's shape is built once and reused)."""
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
    return await _write(
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


# --- expiry: reserved units of expired holds back to their levels ------------------------

# The expiry write inside expiry's PostgreSQL statement, after its CTE `lines`
# (reservation_id, sku_id, location_id, quantity) of the holds it expired: one `expire`
# ledger row per line, then the touched levels locked in (SKU, location) order (rows leave
# `locked` sorted and each is locked as it leaves, the order every other writer uses) and
# their `reserved` given back. Bind parameters: `now`, `reason`. The statement running it
# reports each SKU's units from `totals`, for `signals.note`.
RETURN_RESERVED_SQL = f"""
movement AS (
    {
    ledger_insert_sql(
        (
            "sku_id",
            "location_id",
            f"'{MovementKind.EXPIRE.value}'",
            "0",
            "-quantity",
            "0",
            ":reason",
            "CAST(reservation_id AS VARCHAR)",
            "NULL",
            "NULL",
            ":now",
        ),
        "lines",
    )
}
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
)"""


def _reservation_id_text() -> ColumnElement[Any]:
    """A reservation id as the canonical hyphenated text used in ledger references (SQLite
    stores UUIDs as 32 hex digits)."""
    hex_id = func.lower(reservation_lines.c.reservation_id.cast(String))
    parts = [func.substr(hex_id, start, length) for start, length in _UUID_GROUPS]
    hyphenated: ColumnElement[Any] = parts[0]
    for part in parts[1:]:
        hyphenated = hyphenated.op("||")(literal("-")).op("||")(part)
    return hyphenated


_UUID_GROUPS = ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))


async def return_reserved(
    session: AsyncSession, reservation_ids: Sequence[uuid.UUID], *, now: datetime, reason: str
) -> None:
    """Give the reserved units of these (just expired) holds back to their levels, with an
    `expire` ledger row per line, set-based. The SQLite form of `RETURN_RESERVED_SQL`."""
    lines_of_batch = reservation_lines.c.reservation_id.in_(reservation_ids)
    returned_by_sku = await session.execute(
        select(reservation_lines.c.sku_id, func.sum(reservation_lines.c.quantity))
        .where(lines_of_batch)
        .group_by(reservation_lines.c.sku_id)
    )
    signals.note(session, {sku_id: int(units) for sku_id, units in returned_by_sku})
    await session.execute(
        ledger_insert(
            select(
                reservation_lines.c.sku_id,
                reservation_lines.c.location_id,
                literal(MovementKind.EXPIRE.value),
                literal(0),
                -reservation_lines.c.quantity,
                literal(0),
                literal(reason),
                _reservation_id_text(),
                literal(None, String()),
                literal(None, Integer()),
                literal(now, movements.c.created_at.type),
            ).where(lines_of_batch)
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


# --- a one-line hold as one statement (PostgreSQL, atomic) --------------------------------

# Everything a one-line hold writes, as one statement of data-modifying CTEs: the caller's
# right to hold (the staff rule of `accounts.policy`, and a live sign-in of the caller's
# access token, `accounts.policy.live_sign_in_sql`), the SKU and best level, the
# conditional claim, the reservation, its line and the ledger row. Run on its own
# (autocommit), PostgreSQL commits it the moment it ends, so the hot row is locked for the
# statement and its commit only, never for a round trip back to the application. Every step
# depends on the one before: when the caller may not hold, the SKU is unknown or deleted,
# or no level can serve the quantity, nothing matches and nothing is written; so too when
# the hold would leave its level at or below the SKU's low-stock threshold (the level is
# still chosen as every hold chooses it, by priority): such a hold may call for
# `stock.low` or `stock.out`, which the unit-of-work path announces. A
# client_token this caller already used (tokens are unique per creator) makes the
# reservation INSERT fail with a unique violation, which undoes the claim with the rest of
# the statement; another caller's identical token does not collide.
_HOLD_ONE_LINE = text(
    f"""
WITH caller AS (
    SELECT users.id FROM users
    WHERE users.id = :actor_id AND users.is_active AND {staff_role_sql("users.role")}
      AND (CAST(:sign_in_id AS UUID) IS NULL
           OR {live_sign_in_sql("CAST(:sign_in_id AS UUID)", "users.id", ":now")})
),
target AS (
    SELECT candidate.id,
           COALESCE(skus.low_stock_threshold, CAST(:default_threshold AS INTEGER)) AS threshold
    FROM skus
    JOIN stock_levels AS candidate ON candidate.sku_id = skus.id
    JOIN locations ON locations.id = candidate.location_id
    WHERE skus.code = :sku_code
      AND NOT skus.is_deleted
      AND CASE WHEN CAST(:location_code AS VARCHAR) IS NULL THEN locations.is_active
               ELSE locations.code = CAST(:location_code AS VARCHAR) END
      AND {available_sql("candidate")} >= CAST(:quantity AS INTEGER)
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
      AND {available_sql("level")} >= CAST(:quantity AS INTEGER)
      AND {available_sql("level")} - CAST(:quantity AS INTEGER) > target.threshold
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
    {
        ledger_insert_sql(
            (
                "claimed.sku_id",
                "claimed.location_id",
                f"'{MovementKind.HOLD.value}'",
                "0",
                "CAST(:quantity AS INTEGER)",
                "0",
                "NULL",
                ":movement_reference",
                "NULL",
                ":actor_id",
                ":now",
            ),
            "claimed",
        )
    }
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
    # The sign-in of the caller's credential, which must be live. None: a credential of no
    # sign-in, whose account alone is checked; every access token has one (a JWT without
    # `sid` is refused before it gets here).
    sign_in_id: uuid.UUID | None
    now: datetime
    # STOREKEEPER_LOW_STOCK_THRESHOLD, for a SKU without a threshold of its own.
    default_threshold: int


def hold_one_line_statement(hold: OneLineHold) -> tuple[TextClause, dict[str, Any]]:
    """The statement that writes `hold` whole or not at all, and its parameters: one row
    (sku id, location id, location code) when it held, none when it could not."""
    return _HOLD_ONE_LINE, {
        "actor_id": hold.actor_id,
        "sign_in_id": hold.sign_in_id,
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
        "default_threshold": hold.default_threshold,
    }
