"""The inventory service: locations, adjustments, holds and allocations.

It owns every write to stock (through `storekeeper.inventory.levels`). Orders and checkout
call `allocate_stock`, `fulfil_allocation` and `cancel_allocation` inside their own unit of
work. Functions flush, never commit. Under `optimistic` locking, and when PostgreSQL picks
this transaction as a deadlock victim, they raise `RetryableError`: callers that run their
unit with `Database.run` get it re-run; HTTP callers see 409 `concurrent_update`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper.catalog.models import Sku
from storekeeper.config import LockingStrategy
from storekeeper.db import Database, is_retryable, utcnow
from storekeeper.errors import (
    Conflict,
    IdempotencyKeyReused,
    InsufficientStock,
    InvalidTransition,
    NotFound,
    RetryableError,
    ValidationFailed,
    sqlstate_of,
)
from storekeeper.inventory import levels as stock
from storekeeper.inventory.expiry import expire_due_holds
from storekeeper.inventory.metrics import (
    ALLOCATIONS_CREATED,
    HOLDS_CONVERTED,
    HOLDS_CREATED,
    HOLDS_EXPIRED,
    HOLDS_RELEASED,
    INSUFFICIENT_STOCK,
)
from storekeeper.inventory.models import (
    Location,
    MovementKind,
    Reservation,
    ReservationLine,
    ReservationStatus,
)
from storekeeper.pagination import newest_first

MAX_LINES = 100
MAX_QUANTITY = 1_000_000
DEFAULT_OPTIMISTIC_RETRIES = 8

skus = cast(Table, Sku.__table__)


@dataclass(frozen=True)
class StockLine:
    """One line of an allocation requested by another domain."""

    sku_id: int
    quantity: int
    location_id: int | None = None


@dataclass(frozen=True)
class _Line:
    """A validated line: the SKU exists and is live, the location exists."""

    sku_id: int
    sku: str
    quantity: int
    location_id: int | None


@dataclass(frozen=True)
class LineView:
    sku_id: int
    sku: str
    quantity: int
    location_id: int
    location: str


@dataclass(frozen=True)
class ReservationView:
    """A hold or allocation with its lines, as the API shows it."""

    reservation: Reservation
    lines: list[LineView]
    created: bool = False


@contextmanager
def _lock_conflicts_are_retryable() -> Iterator[None]:
    """A deadlock or serialization failure aborts the transaction; report it as the
    retryable conflict it is rather than as an unexpected error."""
    try:
        yield
    except DBAPIError as exc:
        if is_retryable(exc):
            raise RetryableError(
                "The stock changed concurrently and this request lost; retry it."
            ) from exc
        raise


# --- resolving input ---------------------------------------------------------------------


def _check_shape(count: int, quantities: Sequence[int], sku_keys: Sequence[object]) -> None:
    if count == 0:
        raise ValidationFailed.field(["items"], "at least one line is required")
    if count > MAX_LINES:
        raise ValidationFailed.field(["items"], f"at most {MAX_LINES} lines per request")
    for index, quantity in enumerate(quantities):
        if not 1 <= quantity <= MAX_QUANTITY:
            raise ValidationFailed.field(
                ["items", index, "quantity"], f"quantity must be 1 to {MAX_QUANTITY}"
            )
    seen: set[object] = set()
    for index, key in enumerate(sku_keys):
        if key in seen:
            raise ValidationFailed.field(
                ["items", index, "sku"], "the same SKU appears twice in one request"
            )
        seen.add(key)


async def _locations_by_code(session: AsyncSession, codes: set[str]) -> dict[str, int]:
    if not codes:
        return {}
    rows = await session.execute(select(Location.code, Location.id).where(Location.code.in_(codes)))
    return {row.code: row.id for row in rows}


async def resolve_location(session: AsyncSession, code: str, loc: Sequence[str | int]) -> int:
    found = await _locations_by_code(session, {code.upper()})
    if code.upper() not in found:
        raise ValidationFailed.field(loc, f"unknown location {code.upper()!r}")
    return found[code.upper()]


# Built once: every hold and allocation runs it, and building and cache-keying a statement
# costs more CPU than running it.
_SKUS_BY_CODE = select(skus.c.code, skus.c.id, skus.c.is_deleted).where(
    skus.c.code.in_(bindparam("codes", expanding=True))
)


async def resolve_items(
    session: AsyncSession, items: Sequence[tuple[str, int, str | None]]
) -> list[_Line]:
    """Validate `(sku code, quantity, location code)` lines; the result is in SKU-id order."""
    codes = [code.upper() for code, _, _ in items]
    _check_shape(len(items), [quantity for _, quantity, _ in items], codes)
    rows = await session.execute(_SKUS_BY_CODE, {"codes": codes})
    found = {row.code: row for row in rows}
    location_ids = await _locations_by_code(
        session, {location.upper() for _, _, location in items if location is not None}
    )
    lines = []
    for index, (code, quantity, location) in enumerate(items):
        sku = found.get(code.upper())
        if sku is None or sku.is_deleted:
            state = "deleted" if sku is not None else "unknown"
            raise ValidationFailed.field(["items", index, "sku"], f"{state} SKU {code.upper()!r}")
        location_id = None
        if location is not None:
            location_id = location_ids.get(location.upper())
            if location_id is None:
                raise ValidationFailed.field(
                    ["items", index, "location"], f"unknown location {location.upper()!r}"
                )
        lines.append(_Line(sku.id, sku.code, quantity, location_id))
    return sorted(lines, key=lambda line: line.sku_id)


async def _resolve_stock_lines(session: AsyncSession, lines: Sequence[StockLine]) -> list[_Line]:
    _check_shape(len(lines), [line.quantity for line in lines], [line.sku_id for line in lines])
    rows = await session.execute(
        select(skus.c.id, skus.c.code, skus.c.is_deleted).where(
            skus.c.id.in_([line.sku_id for line in lines])
        )
    )
    found = {row.id: row for row in rows}
    wanted_locations = {line.location_id for line in lines if line.location_id is not None}
    known_locations = set()
    if wanted_locations:
        known_locations = set(
            (
                await session.execute(select(Location.id).where(Location.id.in_(wanted_locations)))
            ).scalars()
        )
    resolved = []
    for index, line in enumerate(lines):
        sku = found.get(line.sku_id)
        if sku is None or sku.is_deleted:
            state = "deleted" if sku is not None else "unknown"
            raise ValidationFailed.field(["items", index, "sku"], f"{state} SKU {line.sku_id}")
        if line.location_id is not None and line.location_id not in known_locations:
            raise ValidationFailed.field(
                ["items", index, "location"], f"unknown location {line.location_id}"
            )
        resolved.append(_Line(sku.id, sku.code, line.quantity, line.location_id))
    return sorted(resolved, key=lambda line: line.sku_id)


# --- reading reservations ----------------------------------------------------------------


async def _line_views(
    session: AsyncSession, reservation_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[LineView]]:
    """The lines of several reservations, in one statement."""
    views: dict[uuid.UUID, list[LineView]] = {rid: [] for rid in reservation_ids}
    if not reservation_ids:
        return views
    rows = await session.execute(
        select(
            ReservationLine.reservation_id,
            ReservationLine.sku_id,
            skus.c.code,
            ReservationLine.quantity,
            ReservationLine.location_id,
            Location.code,
        )
        .join(skus, skus.c.id == ReservationLine.sku_id)
        .join(Location, Location.id == ReservationLine.location_id)
        .where(ReservationLine.reservation_id.in_(reservation_ids))
        .order_by(ReservationLine.reservation_id, ReservationLine.sku_id)
    )
    for rid, sku_id, sku_code, quantity, location_id, location_code in rows:
        views[rid].append(LineView(sku_id, sku_code, quantity, location_id, location_code))
    return views


async def get_reservation(session: AsyncSession, reservation_id: uuid.UUID) -> ReservationView:
    reservation = await session.get(Reservation, reservation_id)
    if reservation is None:
        raise NotFound("No such hold or allocation.")
    lines = await _line_views(session, [reservation_id])
    return ReservationView(reservation, lines[reservation_id])


async def views_of(
    session: AsyncSession, reservations: Sequence[Reservation]
) -> list[ReservationView]:
    lines = await _line_views(session, [reservation.id for reservation in reservations])
    return [ReservationView(reservation, lines[reservation.id]) for reservation in reservations]


# --- creating holds and allocations ------------------------------------------------------


async def _reserve(
    session: AsyncSession,
    lines: Sequence[_Line],
    *,
    status: ReservationStatus,
    expires_at: datetime | None,
    locking: LockingStrategy,
    client_token: str,
    request_fingerprint: str,
    reference: str | None,
    actor_id: int | None,
    optimistic_retries: int,
    managed_by: str | None = None,
) -> ReservationView:
    now = utcnow()
    reservation_id = uuid.uuid4()
    # The unique client token decides between concurrent duplicates: the loser's insert
    # does nothing (after waiting for the winner to commit) and it returns the winner's.
    insert = (
        stock.dialect_insert(session, Reservation)
        .values(
            id=reservation_id,
            client_token=client_token,
            request_fingerprint=request_fingerprint,
            status=status.value,
            expires_at=expires_at,
            reference=reference,
            managed_by=managed_by,
            created_by=actor_id,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["client_token"])
        .returning(Reservation)
    )
    reservation = (await session.scalars(insert)).one_or_none()
    if reservation is None:
        existing = (
            await session.scalars(
                select(Reservation).where(Reservation.client_token == client_token)
            )
        ).one()
        if existing.request_fingerprint != request_fingerprint:
            raise IdempotencyKeyReused(
                "This client_token was already used with a different request body."
            )
        existing_lines = await _line_views(session, [existing.id])
        return ReservationView(existing, existing_lines[existing.id], created=False)

    is_hold = status is ReservationStatus.HELD
    kind = MovementKind.HOLD if is_hold else MovementKind.ALLOCATE
    entry = stock.Entry(
        kind=kind.value, created_at=now, reference=str(reservation_id), actor_id=actor_id
    )
    requests = [
        stock.ClaimRequest(
            stock.Claim(
                line.sku_id,
                line.quantity,
                stock.Deltas(reserved=line.quantity)
                if is_hold
                else stock.Deltas(allocated=line.quantity),
                line.location_id,
            ),
            entry,
            reservation_id,
        )
        for line in lines
    ]
    written = await _claim_reclaiming_expired(
        session, requests, locking, now=now, optimistic_retries=optimistic_retries
    )
    codes = {line.sku_id: line.sku for line in lines}
    shortages = [result for result in written if isinstance(result, stock.Shortage)]
    if shortages:
        INSUFFICIENT_STOCK.inc()
        raise InsufficientStock(
            [
                {
                    "sku": codes[short.sku_id],
                    "requested": short.requested,
                    "available": short.available,
                }
                for short in shortages
            ]
        )
    (HOLDS_CREATED if is_hold else ALLOCATIONS_CREATED).inc()
    views = [
        LineView(w.sku_id, codes[w.sku_id], line.quantity, w.location_id, w.location_code)
        for w, line in zip(written, lines, strict=True)
        if isinstance(w, stock.Written)
    ]
    return ReservationView(reservation, views, created=True)


async def _claim_reclaiming_expired(
    session: AsyncSession,
    requests: Sequence[stock.ClaimRequest],
    locking: LockingStrategy,
    *,
    now: datetime,
    optimistic_retries: int,
) -> list[stock.Written | stock.Shortage]:
    """Claim every line; lines that come up short get a second try after the expired holds
    on their SKUs are reclaimed in this same transaction.

    The second try runs even when this transaction reclaimed nothing: the reclaim may have
    waited for a sweeper that was expiring those very holds, and once it committed their
    stock is free for this request too."""
    results = await stock.claim_all(
        session, requests, locking, optimistic_retries=optimistic_retries
    )
    short = [i for i, result in enumerate(results) if isinstance(result, stock.Shortage)]
    if not short:
        return results
    reclaimed = await expire_due_holds(
        session, now=now, sku_ids=sorted({requests[i].claim.sku_id for i in short})
    )
    if reclaimed:
        HOLDS_EXPIRED.inc(reclaimed)
    retried = await stock.claim_all(
        session, [requests[i] for i in short], locking, optimistic_retries=optimistic_retries
    )
    for i, result in zip(short, retried, strict=True):
        results[i] = result
    return results


async def create_hold(
    session: AsyncSession,
    items: Sequence[tuple[str, int, str | None]],
    *,
    ttl_seconds: int,
    locking: LockingStrategy,
    client_token: str,
    request_fingerprint: str,
    reference: str | None = None,
    actor_id: int | None = None,
    optimistic_retries: int = DEFAULT_OPTIMISTIC_RETRIES,
) -> ReservationView:
    """Hold every `(sku code, quantity, location code)` line or none; idempotent by
    `client_token` (`created` tells a new hold from a replayed one)."""
    with _lock_conflicts_are_retryable():
        lines = await resolve_items(session, items)
        return await _reserve(
            session,
            lines,
            status=ReservationStatus.HELD,
            expires_at=utcnow() + timedelta(seconds=ttl_seconds),
            locking=locking,
            client_token=client_token,
            request_fingerprint=request_fingerprint,
            reference=reference,
            actor_id=actor_id,
            optimistic_retries=optimistic_retries,
        )


async def hold_in_one_statement(
    db: Database,
    items: Sequence[tuple[str, int, str | None]],
    *,
    locking: LockingStrategy,
    ttl_seconds: int,
    client_token: str,
    request_fingerprint: str,
    reference: str | None,
    actor_id: int,
) -> ReservationView | None:
    """Make a one-line hold as a single statement that commits as it ends (PostgreSQL,
    `atomic` locking), the fast path of a flash sale: one round trip, and the hot row is
    locked only while the database writes and commits.

    None when it wrote nothing: the request has several lines, the strategy is not
    `atomic` or the database is SQLite; the stock is short (perhaps only until expired
    holds are reclaimed), the SKU or location is unknown or deleted, the caller may not
    hold, the quantity is out of range or the client_token was used before. `create_hold`
    in a unit of work then makes the hold or gives the answer for each of those cases.
    """
    if len(items) != 1 or locking is not LockingStrategy.ATOMIC or db.is_sqlite:
        return None
    ((code, quantity, location),) = items
    if not 1 <= quantity <= MAX_QUANTITY:
        return None
    now = utcnow()
    hold = stock.OneLineHold(
        reservation_id=uuid.uuid4(),
        client_token=client_token,
        request_fingerprint=request_fingerprint,
        sku_code=code.upper(),
        quantity=quantity,
        location_code=location.upper() if location is not None else None,
        expires_at=now + timedelta(seconds=ttl_seconds),
        reference=reference,
        actor_id=actor_id,
        now=now,
    )
    statement, params = stock.hold_one_line_statement(hold)
    try:
        rows = await db.run_alone(statement, params)
    except DBAPIError as exc:
        # A used client_token (unique violation) or a lost deadlock undid the whole
        # statement; the unit-of-work path answers the replay or re-runs the hold.
        if sqlstate_of(exc) == _UNIQUE_VIOLATION or is_retryable(exc):
            return None
        raise
    if not rows:
        return None
    HOLDS_CREATED.inc()
    sku_id, location_id, location_code = tuple(rows[0])
    reservation = Reservation(
        id=hold.reservation_id,
        client_token=client_token,
        request_fingerprint=request_fingerprint,
        status=ReservationStatus.HELD.value,
        expires_at=hold.expires_at,
        reference=reference,
        managed_by=None,
        created_by=actor_id,
        created_at=now,
        updated_at=now,
    )
    line = LineView(sku_id, hold.sku_code, quantity, location_id, location_code)
    return ReservationView(reservation, [line], created=True)


_UNIQUE_VIOLATION = "23505"


async def create_allocation(
    session: AsyncSession,
    items: Sequence[tuple[str, int, str | None]],
    *,
    locking: LockingStrategy,
    client_token: str,
    request_fingerprint: str,
    reference: str | None = None,
    actor_id: int | None = None,
    optimistic_retries: int = DEFAULT_OPTIMISTIC_RETRIES,
) -> ReservationView:
    """Like `create_hold`, straight to `allocated` and without expiry."""
    with _lock_conflicts_are_retryable():
        lines = await resolve_items(session, items)
        return await _reserve(
            session,
            lines,
            status=ReservationStatus.ALLOCATED,
            expires_at=None,
            locking=locking,
            client_token=client_token,
            request_fingerprint=request_fingerprint,
            reference=reference,
            actor_id=actor_id,
            optimistic_retries=optimistic_retries,
        )


async def allocate_stock(
    session: AsyncSession,
    lines: Sequence[StockLine],
    *,
    locking: LockingStrategy,
    client_token: str,
    request_fingerprint: str,
    reference: str | None = None,
    actor_id: int | None = None,
    optimistic_retries: int = DEFAULT_OPTIMISTIC_RETRIES,
    managed_by: str | None = None,
) -> Reservation:
    """Allocate every line or none (status `allocated`), for orders and checkout.

    `managed_by` names the domain that alone may fulfil or cancel the allocation later.

    Raises `InsufficientStock` listing every short line (by SKU code), `ValidationFailed`
    for unknown or deleted SKUs, and `IdempotencyKeyReused` when `client_token` was used
    with another fingerprint; the same token and fingerprint return the existing one.
    """
    with _lock_conflicts_are_retryable():
        resolved = await _resolve_stock_lines(session, lines)
        view = await _reserve(
            session,
            resolved,
            status=ReservationStatus.ALLOCATED,
            expires_at=None,
            locking=locking,
            client_token=client_token,
            request_fingerprint=request_fingerprint,
            reference=reference,
            actor_id=actor_id,
            optimistic_retries=optimistic_retries,
            managed_by=managed_by,
        )
        return view.reservation


# --- status changes ----------------------------------------------------------------------


async def _transition(
    session: AsyncSession,
    reservation_id: uuid.UUID,
    *,
    source: ReservationStatus,
    target: ReservationStatus,
    kind: MovementKind,
    deltas_per_unit: stock.Deltas,
    actor_id: int | None,
    reason: str | None = None,
    now: datetime | None = None,
    unexpired: bool = False,
    managed_by: str | None = None,
) -> Reservation | None:
    """Move a reservation from `source` to `target` and its stock with it.

    The conditional status update is what serialises concurrent changes of one
    reservation: only one of them matches. None when the reservation was not in `source`
    (or, with `unexpired`, had expired, or is managed by another domain than `managed_by`)."""
    now = now or utcnow()
    owner = (
        Reservation.managed_by.is_(None)
        if managed_by is None
        else Reservation.managed_by == managed_by
    )
    change = (
        update(Reservation)
        .where(Reservation.id == reservation_id, Reservation.status == source.value, owner)
        .values(status=target.value, updated_at=now)
        .returning(Reservation)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    if unexpired:
        change = change.where(Reservation.expires_at > now)
    reservation = (await session.scalars(change)).one_or_none()
    if reservation is None:
        return None
    lines = (
        await session.execute(
            select(ReservationLine.sku_id, ReservationLine.location_id, ReservationLine.quantity)
            .where(ReservationLine.reservation_id == reservation_id)
            .order_by(ReservationLine.sku_id, ReservationLine.location_id)
        )
    ).all()
    entry = stock.Entry(
        kind=kind.value,
        created_at=now,
        reason=reason,
        reference=str(reservation_id),
        actor_id=actor_id,
    )
    for sku_id, location_id, quantity in lines:
        deltas = stock.Deltas(
            on_hand=deltas_per_unit.on_hand * quantity,
            reserved=deltas_per_unit.reserved * quantity,
            allocated=deltas_per_unit.allocated * quantity,
        )
        await stock.shift(session, sku_id, location_id, deltas, entry)
    return reservation


async def _current(session: AsyncSession, reservation_id: uuid.UUID) -> Reservation:
    reservation = (
        await session.scalars(
            select(Reservation)
            .where(Reservation.id == reservation_id)
            .execution_options(populate_existing=True)
        )
    ).one_or_none()
    if reservation is None:
        raise NotFound("No such hold or allocation.")
    return reservation


def _check_manager(reservation: Reservation, managed_by: str | None) -> None:
    if reservation.managed_by != managed_by:
        raise Conflict(
            "This allocation belongs to an order: ship or cancel the order instead."
            if reservation.managed_by == "order"
            else f"This allocation is managed by {reservation.managed_by or 'the inventory API'}."
        )


def _refuse(reservation: Reservation, action: str) -> InvalidTransition:
    return InvalidTransition(f"Cannot {action} a reservation that is {reservation.status}.")


async def convert_hold(
    session: AsyncSession, reservation_id: uuid.UUID, *, actor_id: int | None = None
) -> Reservation:
    """Turn a live hold into an allocation (same id). A hold past `expires_at` is expired
    instead and its stock returned: the result then has status `expired`, and the caller
    commits that and answers 409 `hold_expired`."""
    with _lock_conflicts_are_retryable():
        now = utcnow()
        converted = await _transition(
            session,
            reservation_id,
            source=ReservationStatus.HELD,
            target=ReservationStatus.ALLOCATED,
            kind=MovementKind.CONVERT,
            deltas_per_unit=stock.Deltas(reserved=-1, allocated=1),
            actor_id=actor_id,
            now=now,
            unexpired=True,
        )
        if converted is not None:
            HOLDS_CONVERTED.inc()
            return converted
        expired = await _transition(
            session,
            reservation_id,
            source=ReservationStatus.HELD,
            target=ReservationStatus.EXPIRED,
            kind=MovementKind.EXPIRE,
            deltas_per_unit=stock.Deltas(reserved=-1),
            actor_id=actor_id,
            reason="expired",
            now=now,
        )
        if expired is not None:
            HOLDS_EXPIRED.inc()
            return expired
        current = await _current(session, reservation_id)
        if current.status in (ReservationStatus.ALLOCATED, ReservationStatus.EXPIRED):
            return current
        raise _refuse(current, "convert")


async def _move(
    session: AsyncSession,
    reservation_id: uuid.UUID,
    *,
    source: ReservationStatus,
    target: ReservationStatus,
    kind: MovementKind,
    deltas_per_unit: stock.Deltas,
    action: str,
    actor_id: int | None,
    managed_by: str | None = None,
) -> tuple[Reservation, bool]:
    """`source` → `target` with its stock, or the reservation unchanged when it already is
    in `target` (False); from any other status: InvalidTransition."""
    moved = await _transition(
        session,
        reservation_id,
        source=source,
        target=target,
        kind=kind,
        deltas_per_unit=deltas_per_unit,
        actor_id=actor_id,
        managed_by=managed_by,
    )
    if moved is not None:
        return moved, True
    current = await _current(session, reservation_id)
    _check_manager(current, managed_by)
    if current.status == target:
        return current, False
    raise _refuse(current, action)


async def release_hold(
    session: AsyncSession, reservation_id: uuid.UUID, *, actor_id: int | None = None
) -> Reservation:
    """Give a held reservation's stock back (status `released`)."""
    with _lock_conflicts_are_retryable():
        released, moved = await _move(
            session,
            reservation_id,
            source=ReservationStatus.HELD,
            target=ReservationStatus.RELEASED,
            kind=MovementKind.RELEASE,
            deltas_per_unit=stock.Deltas(reserved=-1),
            action="release",
            actor_id=actor_id,
        )
        if moved:
            HOLDS_RELEASED.inc()
        return released


async def fulfil_allocation(
    session: AsyncSession,
    reservation_id: uuid.UUID,
    *,
    actor_id: int | None = None,
    managed_by: str | None = None,
) -> Reservation:
    """Ship an allocation: `on_hand` and `allocated` drop (status `fulfilled`). Fulfilling
    a fulfilled allocation returns it unchanged; from any other status: InvalidTransition."""
    with _lock_conflicts_are_retryable():
        fulfilled, _ = await _move(
            session,
            reservation_id,
            source=ReservationStatus.ALLOCATED,
            target=ReservationStatus.FULFILLED,
            kind=MovementKind.FULFIL,
            deltas_per_unit=stock.Deltas(on_hand=-1, allocated=-1),
            action="fulfil",
            actor_id=actor_id,
            managed_by=managed_by,
        )
        return fulfilled


async def cancel_allocation(
    session: AsyncSession,
    reservation_id: uuid.UUID,
    *,
    actor_id: int | None = None,
    managed_by: str | None = None,
) -> Reservation:
    """Return an allocation's stock to `available` (status `cancelled`). Cancelling a
    cancelled allocation returns it unchanged; from any other status: InvalidTransition."""
    with _lock_conflicts_are_retryable():
        cancelled, _ = await _move(
            session,
            reservation_id,
            source=ReservationStatus.ALLOCATED,
            target=ReservationStatus.CANCELLED,
            kind=MovementKind.CANCEL,
            deltas_per_unit=stock.Deltas(allocated=-1),
            action="cancel",
            actor_id=actor_id,
            managed_by=managed_by,
        )
        return cancelled


# --- adjustments and locations -----------------------------------------------------------


@dataclass(frozen=True)
class Adjustment:
    written: stock.Written
    sku: str
    entry: stock.Entry
    deltas: stock.Deltas


RECEIVING_REASONS = frozenset({"receive"})


async def adjust_stock(
    session: AsyncSession,
    sku_code: str,
    *,
    delta: int,
    reason: str,
    location_code: str | None = None,
    note: str | None = None,
    actor_id: int | None = None,
    locking: LockingStrategy,
    optimistic_retries: int = DEFAULT_OPTIMISTIC_RETRIES,
) -> Adjustment:
    """Add (`delta` > 0) or remove stock. Without a location, stock is received at the
    highest-priority location and removed from the highest-priority one that has enough.
    A removal that would take `available` below zero raises InsufficientStock."""
    with _lock_conflicts_are_retryable():
        sku = (
            await session.execute(
                select(skus.c.id, skus.c.code).where(skus.c.code == sku_code.upper())
            )
        ).one_or_none()
        if sku is None:
            raise NotFound(f"No SKU {sku_code.upper()!r}.")
        location_id = (
            await resolve_location(session, location_code, ["body", "location"])
            if location_code is not None
            else None
        )
        now = utcnow()
        kind = (
            MovementKind.RECEIVE
            if reason in RECEIVING_REASONS and delta > 0
            else MovementKind.ADJUST
        )
        entry = stock.Entry(
            kind=kind.value, created_at=now, reason=reason, note=note, actor_id=actor_id
        )
        deltas = stock.Deltas(on_hand=delta)
        if delta > 0:
            if location_id is None:
                location_id = await default_location_id(session)
            written = await stock.receive(session, sku.id, location_id, delta, entry)
            return Adjustment(written, sku.code, entry, deltas)
        request = stock.ClaimRequest(stock.Claim(sku.id, -delta, deltas, location_id), entry)
        (result,) = await _claim_reclaiming_expired(
            session, [request], locking, now=now, optimistic_retries=optimistic_retries
        )
        if isinstance(result, stock.Shortage):
            INSUFFICIENT_STOCK.inc()
            raise InsufficientStock(
                [{"sku": sku.code, "requested": result.requested, "available": result.available}],
                detail="The removal would take available stock below zero.",
            )
        return Adjustment(result, sku.code, entry, deltas)


async def default_location_id(session: AsyncSession) -> int:
    """Where stock goes when no location is named: the highest-priority active one."""
    location_id = (
        await session.execute(
            select(Location.id)
            .where(Location.is_active)
            .order_by(Location.priority.desc(), Location.id)
            .limit(1)
        )
    ).scalar_one_or_none()
    if location_id is None:
        raise Conflict("There is no active location to receive stock into.")
    return location_id


async def create_location(
    session: AsyncSession, *, code: str, name: str, priority: int
) -> Location:
    insert: Any = (
        stock.dialect_insert(session, Location)
        .values(code=code.upper(), name=name, priority=priority, is_active=True)
        .on_conflict_do_nothing(index_elements=["code"])
        .returning(Location)
    )
    location = (await session.scalars(insert)).one_or_none()
    if location is None:
        raise Conflict(f"A location with code {code.upper()!r} already exists.")
    return location


async def list_locations(session: AsyncSession) -> list[Location]:
    return list(
        (
            await session.scalars(select(Location).order_by(Location.priority.desc(), Location.id))
        ).all()
    )


# --- reading stock and the ledger --------------------------------------------------------


@dataclass(frozen=True)
class LocationFigures:
    location: str
    on_hand: int
    reserved: int
    allocated: int

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved - self.allocated


@dataclass(frozen=True)
class SkuStock:
    sku_id: int
    sku: str
    locations: list[LocationFigures]

    @property
    def on_hand(self) -> int:
        return sum(level.on_hand for level in self.locations)

    @property
    def reserved(self) -> int:
        return sum(level.reserved for level in self.locations)

    @property
    def allocated(self) -> int:
        return sum(level.allocated for level in self.locations)

    @property
    def available(self) -> int:
        return sum(level.available for level in self.locations)


async def sku_by_code(session: AsyncSession, code: str) -> tuple[int, str]:
    row = (
        await session.execute(select(skus.c.id, skus.c.code).where(skus.c.code == code.upper()))
    ).one_or_none()
    if row is None:
        raise NotFound(f"No SKU {code.upper()!r}.")
    return row.id, row.code


async def _stock_of(session: AsyncSession, sku_rows: Sequence[Any]) -> list[SkuStock]:
    """Figures of the given (id, code) SKUs, per location, in one statement."""
    figures: dict[int, list[LocationFigures]] = {row.id: [] for row in sku_rows}
    if figures:
        level_rows = await session.execute(
            select(
                stock.levels.c.sku_id,
                stock.locations.c.code,
                stock.levels.c.on_hand,
                stock.levels.c.reserved,
                stock.levels.c.allocated,
            )
            .join(stock.locations, stock.locations.c.id == stock.levels.c.location_id)
            .where(stock.levels.c.sku_id.in_(list(figures)))
            .order_by(
                stock.levels.c.sku_id, stock.locations.c.priority.desc(), stock.locations.c.id
            )
        )
        for sku_id, location, on_hand, reserved, allocated in level_rows:
            figures[sku_id].append(LocationFigures(location, on_hand, reserved, allocated))
    return [SkuStock(row.id, row.code, figures[row.id]) for row in sku_rows]


async def stock_by_codes(session: AsyncSession, codes: Sequence[str]) -> list[SkuStock]:
    """Stock of the named SKUs (deleted ones included), in the order asked."""
    wanted = list(dict.fromkeys(code.upper() for code in codes))
    rows = (
        await session.execute(select(skus.c.id, skus.c.code).where(skus.c.code.in_(wanted)))
    ).all()
    by_code = {row.code: row for row in rows}
    missing = [code for code in wanted if code not in by_code]
    if missing:
        raise NotFound(f"No SKU {', '.join(repr(code) for code in missing)}.")
    return await _stock_of(session, [by_code[code] for code in wanted])


async def stock_page(
    session: AsyncSession, *, after_sku_id: int | None, limit: int
) -> list[SkuStock]:
    """Stock of live SKUs by id, `limit` of them after `after_sku_id` (keyset)."""
    query = select(skus.c.id, skus.c.code).where(~skus.c.is_deleted)
    if after_sku_id is not None:
        query = query.where(skus.c.id > after_sku_id)
    rows = (await session.execute(query.order_by(skus.c.id).limit(limit))).all()
    return await _stock_of(session, rows)


@dataclass(frozen=True)
class MovementView:
    id: int
    sku: str
    location: str
    kind: str
    on_hand_delta: int
    reserved_delta: int
    allocated_delta: int
    reason: str | None
    reference: str | None
    note: str | None
    actor_id: int | None
    created_at: datetime


def _movement_query() -> Any:
    m = stock.movements
    return (
        select(
            m.c.id,
            skus.c.code,
            stock.locations.c.code,
            m.c.kind,
            m.c.on_hand_delta,
            m.c.reserved_delta,
            m.c.allocated_delta,
            m.c.reason,
            m.c.reference,
            m.c.note,
            m.c.actor_id,
            m.c.created_at,
        )
        .join(skus, skus.c.id == m.c.sku_id)
        .join(stock.locations, stock.locations.c.id == m.c.location_id)
    )


async def movements_of_sku(
    session: AsyncSession, sku_id: int, *, before_id: int | None, limit: int
) -> list[MovementView]:
    """The SKU's ledger, newest first."""
    m = stock.movements
    query = _movement_query().where(m.c.sku_id == sku_id)
    if before_id is not None:
        query = query.where(m.c.id < before_id)
    rows = await session.execute(query.order_by(m.c.id.desc()).limit(limit))
    return [MovementView(*row) for row in rows]


async def movement_feed(
    session: AsyncSession, *, after_id: int | None, limit: int
) -> list[MovementView]:
    """Every movement, oldest first."""
    m = stock.movements
    query = _movement_query()
    if after_id is not None:
        query = query.where(m.c.id > after_id)
    rows = await session.execute(query.order_by(m.c.id).limit(limit))
    return [MovementView(*row) for row in rows]


HOLD_STATUSES = frozenset(status.value for status in ReservationStatus)
ALLOCATION_STATUSES = frozenset(
    {
        ReservationStatus.ALLOCATED.value,
        ReservationStatus.FULFILLED.value,
        ReservationStatus.CANCELLED.value,
    }
)


async def list_reservations(
    session: AsyncSession,
    *,
    holds: bool,
    status: str | None,
    sku_code: str | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[ReservationView]:
    """Holds (reservations created with an expiry) or allocations (reservations in an
    allocation status), newest first, keyset on (created_at, id)."""
    query = select(Reservation)
    if holds:
        query = query.where(Reservation.expires_at.is_not(None))
    else:
        query = query.where(Reservation.status.in_(ALLOCATION_STATUSES))
    if status is not None:
        query = query.where(Reservation.status == status)
    if sku_code is not None:
        query = query.where(
            select(ReservationLine.id)
            .join(skus, skus.c.id == ReservationLine.sku_id)
            .where(
                ReservationLine.reservation_id == Reservation.id,
                skus.c.code == sku_code.upper(),
            )
            .exists()
        )
    query = newest_first(query, Reservation.created_at, Reservation.id, after).limit(limit)
    return await views_of(session, list((await session.scalars(query)).all()))
