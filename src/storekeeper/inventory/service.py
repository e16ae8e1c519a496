"""Holds and allocations: creating them, changing their status, reading them.

Every stock write goes through `storekeeper.inventory.ledger` (claims through
`storekeeper.inventory.claims`). Orders and checkout call `allocate_stock`,
`fulfil_allocation` and `cancel_allocation` inside their own unit of work; the API's
flash-sale hold first tries `fast_hold`. Functions flush, never commit, and count their
metrics after the commit. Under `optimistic` locking, and when PostgreSQL picks this
transaction as a deadlock victim, they raise `RetryableError`: the unit of work re-runs the
whole unit, and HTTP callers who still lose see 409 `concurrent_update`.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, NoReturn

from prometheus_client import Counter
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper.accounts.policy import require_staff
from storekeeper.accounts.service import get_active_user
from storekeeper.config import StockPolicy
from storekeeper.db import after_commit, dialect_insert, is_retryable, utcnow
from storekeeper.errors import (
    Conflict,
    HoldExpired,
    IdempotencyKeyReused,
    InsufficientStock,
    InvalidTransition,
    NotFound,
    RetryableError,
)
from storekeeper.events import outbox
from storekeeper.inventory import claims, ledger
from storekeeper.inventory.expiry import EXPIRY_REASON, expire_due_holds, expired_hold_data
from storekeeper.inventory.lines import (
    RequestedLine,
    ResolvedLine,
    StockLine,
    check_shape,
    requested,
    resolve_lines,
    skus,
)
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

__all__ = ["StockLine"]

DEFAULT_POLICY = StockPolicy()


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
def lock_conflicts_are_retryable() -> Iterator[None]:
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


def refuse_short(shortages: list[dict[str, object]], detail: str | None = None) -> NoReturn:
    """Refuse the request with 409 `insufficient_stock`. Counted when raised: a refusal
    always ends its unit of work (it is not retried), so it is counted exactly once."""
    INSUFFICIENT_STOCK.inc()
    raise InsufficientStock(shortages, detail=detail)


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


# --- creating holds and allocations ------------------------------------------------------


@dataclass(frozen=True)
class _Kind:
    """What distinguishes a hold from an allocation when it is created."""

    status: ReservationStatus
    movement: MovementKind
    created: Counter

    def deltas(self, quantity: int) -> ledger.Deltas:
        if self.status is ReservationStatus.HELD:
            return ledger.Deltas(reserved=quantity)
        return ledger.Deltas(allocated=quantity)


_HOLD = _Kind(ReservationStatus.HELD, MovementKind.HOLD, HOLDS_CREATED)
_ALLOCATION = _Kind(ReservationStatus.ALLOCATED, MovementKind.ALLOCATE, ALLOCATIONS_CREATED)


@dataclass(frozen=True)
class ReservationRequest:
    """What a client asks to reserve: the lines, the idempotency token with the request's
    fingerprint, a free reference, and for a hold its time to live."""

    items: Sequence[RequestedLine]
    client_token: str
    request_fingerprint: str
    reference: str | None = None
    ttl_seconds: int | None = None


async def _reserve(
    session: AsyncSession,
    request: ReservationRequest,
    kind: _Kind,
    *,
    policy: StockPolicy,
    actor_id: int | None,
    managed_by: str | None = None,
    known: Sequence[ResolvedLine] | None = None,
) -> ReservationView:
    """Make the reservation and claim every line, or none; a replayed `client_token`
    returns the reservation it made. `known` lines were resolved by the caller in its
    unit of work (their SKUs are not looked up again)."""
    with lock_conflicts_are_retryable():
        lines = await resolve_lines(session, request.items) if known is None else known
        return await _claim_reservation(
            session, lines, request, kind, policy=policy, actor_id=actor_id, managed_by=managed_by
        )


async def _claim_reservation(
    session: AsyncSession,
    lines: Sequence[ResolvedLine],
    request: ReservationRequest,
    kind: _Kind,
    *,
    policy: StockPolicy,
    actor_id: int | None,
    managed_by: str | None,
) -> ReservationView:
    client_token, request_fingerprint = request.client_token, request.request_fingerprint
    expires_at = (
        utcnow() + timedelta(seconds=request.ttl_seconds)
        if request.ttl_seconds is not None
        else None
    )
    now = utcnow()
    reservation_id = uuid.uuid4()
    # The client token, unique per creator, decides between concurrent duplicates of one
    # caller: the loser's insert does nothing (after waiting for the winner to commit) and
    # it returns the winner's. Another caller's identical token is another reservation.
    insert = (
        dialect_insert(session, Reservation)
        .values(
            id=reservation_id,
            client_token=client_token,
            request_fingerprint=request_fingerprint,
            status=kind.status.value,
            expires_at=expires_at,
            reference=request.reference,
            managed_by=managed_by,
            created_by=actor_id,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(**_token_conflict(actor_id))
        .returning(Reservation)
    )
    reservation = (await session.scalars(insert)).one_or_none()
    if reservation is None:
        existing = await find_by_token(session, client_token, actor_id)
        assert existing is not None
        if existing.request_fingerprint != request_fingerprint:
            raise IdempotencyKeyReused(
                "This client_token was already used with a different request body."
            )
        existing_lines = await _line_views(session, [existing.id])
        return ReservationView(existing, existing_lines[existing.id], created=False)

    entry = ledger.Entry(
        kind=kind.movement.value, created_at=now, reference=str(reservation_id), actor_id=actor_id
    )
    requests = [
        ledger.ClaimRequest(
            ledger.Claim(line.sku_id, line.quantity, kind.deltas(line.quantity), line.location_id),
            entry,
            reservation_id,
        )
        for line in lines
    ]
    written = await claim_reclaiming_expired(session, requests, policy, now=now)
    codes = {line.sku_id: line.sku for line in lines}
    shortages = [result for result in written if isinstance(result, claims.Shortage)]
    if shortages:
        refuse_short(
            [
                {
                    "sku": codes[short.sku_id],
                    "requested": short.requested,
                    "available": short.available,
                }
                for short in shortages
            ]
        )
    after_commit(session, kind.created.inc)
    views = [
        LineView(w.sku_id, codes[w.sku_id], line.quantity, w.location_id, w.location_code)
        for w, line in zip(written, lines, strict=True)
        if isinstance(w, ledger.Written)
    ]
    return ReservationView(reservation, views, created=True)


def _token_conflict(actor_id: int | None) -> dict[str, Any]:
    """The unique index a reservation's client token is checked against: per creator, or
    the one of reservations without a creator."""
    if actor_id is None:
        return {"index_elements": ["client_token"], "index_where": Reservation.created_by.is_(None)}
    return {"index_elements": ["created_by", "client_token"]}


async def find_by_token(
    session: AsyncSession, client_token: str, created_by: int | None
) -> Reservation | None:
    """The reservation `created_by` made with `client_token` (client tokens are scoped per
    creator: another caller's identical token is never found)."""
    creator = (
        Reservation.created_by.is_(None)
        if created_by is None
        else Reservation.created_by == created_by
    )
    found: Reservation | None = (
        await session.scalars(
            select(Reservation).where(Reservation.client_token == client_token, creator)
        )
    ).one_or_none()
    return found


async def claim_reclaiming_expired(
    session: AsyncSession,
    requests: Sequence[ledger.ClaimRequest],
    policy: StockPolicy,
    *,
    now: datetime,
) -> list[ledger.Written | claims.Shortage]:
    """Claim every line; lines that come up short get a second try after the expired holds
    on their SKUs are reclaimed in this same transaction.

    The second try runs even when this transaction reclaimed nothing: the reclaim may have
    waited for a sweeper that was expiring those very holds, and once it committed their
    stock is free for this request too."""
    results = await claims.claim_all(session, requests, policy)
    short = [i for i, result in enumerate(results) if isinstance(result, claims.Shortage)]
    if not short:
        return results
    reclaimed = await expire_due_holds(
        session, now=now, sku_ids=sorted({requests[i].claim.sku_id for i in short})
    )
    if reclaimed:
        after_commit(session, lambda: HOLDS_EXPIRED.inc(reclaimed))
    retried = await claims.claim_all(session, [requests[i] for i in short], policy)
    for i, result in zip(short, retried, strict=True):
        results[i] = result
    return results


async def create_hold(
    session: AsyncSession,
    items: Sequence[RequestedLine],
    *,
    ttl_seconds: int,
    client_token: str,
    request_fingerprint: str,
    reference: str | None = None,
    actor_id: int | None = None,
    policy: StockPolicy = DEFAULT_POLICY,
) -> ReservationView:
    """Hold every `(sku code, quantity, location code)` line or none; idempotent by
    `client_token` (`created` tells a new hold from a replayed one)."""
    request = ReservationRequest(items, client_token, request_fingerprint, reference, ttl_seconds)
    return await _reserve(session, request, _HOLD, policy=policy, actor_id=actor_id)


async def create_hold_for_caller(
    session: AsyncSession, caller_id: int, request: ReservationRequest, policy: StockPolicy
) -> ReservationView:
    """A hold for the account behind a verified token, which must be active staff
    (checked in this same unit of work, before anything else is read)."""
    caller = require_staff(await get_active_user(session, caller_id))
    return await _reserve(session, request, _HOLD, policy=policy, actor_id=caller.id)


async def create_allocation(
    session: AsyncSession,
    items: Sequence[RequestedLine],
    *,
    client_token: str,
    request_fingerprint: str,
    reference: str | None = None,
    actor_id: int | None = None,
    policy: StockPolicy = DEFAULT_POLICY,
) -> ReservationView:
    """Like `create_hold`, straight to `allocated` and without expiry."""
    request = ReservationRequest(items, client_token, request_fingerprint, reference)
    return await _reserve(session, request, _ALLOCATION, policy=policy, actor_id=actor_id)


async def allocate_stock(
    session: AsyncSession,
    lines: Sequence[StockLine],
    *,
    client_token: str,
    request_fingerprint: str,
    reference: str | None = None,
    actor_id: int | None = None,
    policy: StockPolicy = DEFAULT_POLICY,
    managed_by: str | None = None,
) -> Reservation:
    """Allocate every line or none (status `allocated`), for orders and checkout.

    `managed_by` names the domain that alone may fulfil or cancel the allocation later.

    Raises `InsufficientStock` listing every short line (by SKU code), `ValidationFailed`
    for unknown or deleted SKUs, and `IdempotencyKeyReused` when `client_token` was used
    with another fingerprint; the same token and fingerprint return the existing one.
    """
    request = ReservationRequest(requested(lines), client_token, request_fingerprint, reference)
    view = await _reserve(
        session, request, _ALLOCATION, policy=policy, actor_id=actor_id, managed_by=managed_by
    )
    return view.reservation


async def allocate_known_stock(
    session: AsyncSession,
    lines: Sequence[ResolvedLine],
    *,
    client_token: str,
    request_fingerprint: str,
    reference: str | None = None,
    actor_id: int | None = None,
    policy: StockPolicy = DEFAULT_POLICY,
    managed_by: str | None = None,
) -> Reservation:
    """`allocate_stock` for lines whose SKUs the caller read, live, in this same unit of
    work (checkout reads them with the cart): the SKU lookup is not repeated, the shape
    of the lines is still checked."""
    check_shape(len(lines), [line.quantity for line in lines], [line.sku_id for line in lines])
    items = [(line.sku_id, line.quantity, line.location_id) for line in lines]
    request = ReservationRequest(items, client_token, request_fingerprint, reference)
    view = await _reserve(
        session,
        request,
        _ALLOCATION,
        policy=policy,
        actor_id=actor_id,
        managed_by=managed_by,
        known=sorted(lines, key=lambda line: line.sku_id),
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
    deltas_per_unit: ledger.Deltas,
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
    entry = ledger.Entry(
        kind=kind.value,
        created_at=now,
        reason=reason,
        reference=str(reservation_id),
        actor_id=actor_id,
    )
    for sku_id, location_id, quantity in lines:
        deltas = ledger.Deltas(
            on_hand=deltas_per_unit.on_hand * quantity,
            reserved=deltas_per_unit.reserved * quantity,
            allocated=deltas_per_unit.allocated * quantity,
        )
        await ledger.shift(session, sku_id, location_id, deltas, entry)
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
    instead, its stock returned and its `hold.expired` event written: the result then has
    status `expired`, and the caller commits that and answers 409 `hold_expired`."""
    with lock_conflicts_are_retryable():
        now = utcnow()
        converted = await _transition(
            session,
            reservation_id,
            source=ReservationStatus.HELD,
            target=ReservationStatus.ALLOCATED,
            kind=MovementKind.CONVERT,
            deltas_per_unit=ledger.Deltas(reserved=-1, allocated=1),
            actor_id=actor_id,
            now=now,
            unexpired=True,
        )
        if converted is not None:
            after_commit(session, HOLDS_CONVERTED.inc)
            return converted
        expired = await _transition(
            session,
            reservation_id,
            source=ReservationStatus.HELD,
            target=ReservationStatus.EXPIRED,
            kind=MovementKind.EXPIRE,
            deltas_per_unit=ledger.Deltas(reserved=-1),
            actor_id=actor_id,
            reason=EXPIRY_REASON,
            now=now,
        )
        if expired is not None:
            lines = await _line_views(session, [expired.id])
            await outbox.record(
                session,
                outbox.HOLD_EXPIRED,
                expired_hold_data(
                    expired,
                    [(line.sku, line.quantity, line.location) for line in lines[expired.id]],
                ),
                occurred_at=now,
            )
            after_commit(session, HOLDS_EXPIRED.inc)
            return expired
        current = await _current(session, reservation_id)
        if current.status in (ReservationStatus.ALLOCATED, ReservationStatus.EXPIRED):
            return current
        raise _refuse(current, "convert")


@dataclass(frozen=True)
class _Move:
    """A status change that moves a reservation's stock between buckets."""

    source: ReservationStatus
    target: ReservationStatus
    kind: MovementKind
    deltas_per_unit: ledger.Deltas
    action: str


_RELEASE = _Move(
    ReservationStatus.HELD,
    ReservationStatus.RELEASED,
    MovementKind.RELEASE,
    ledger.Deltas(reserved=-1),
    "release",
)
_FULFIL = _Move(
    ReservationStatus.ALLOCATED,
    ReservationStatus.FULFILLED,
    MovementKind.FULFIL,
    ledger.Deltas(on_hand=-1, allocated=-1),
    "fulfil",
)
_CANCEL = _Move(
    ReservationStatus.ALLOCATED,
    ReservationStatus.CANCELLED,
    MovementKind.CANCEL,
    ledger.Deltas(allocated=-1),
    "cancel",
)


async def _move(
    session: AsyncSession,
    reservation_id: uuid.UUID,
    move: _Move,
    *,
    actor_id: int | None,
    managed_by: str | None = None,
) -> tuple[Reservation, bool]:
    """`move.source` → `move.target` with its stock, or the reservation unchanged when it
    already is in the target status (False); from any other status: InvalidTransition."""
    with lock_conflicts_are_retryable():
        moved = await _transition(
            session,
            reservation_id,
            source=move.source,
            target=move.target,
            kind=move.kind,
            deltas_per_unit=move.deltas_per_unit,
            actor_id=actor_id,
            managed_by=managed_by,
        )
        if moved is not None:
            return moved, True
        current = await _current(session, reservation_id)
        _check_manager(current, managed_by)
        if current.status == move.target:
            return current, False
        raise _refuse(current, move.action)


async def release_hold(
    session: AsyncSession, reservation_id: uuid.UUID, *, actor_id: int | None = None
) -> Reservation:
    """Give a held reservation's stock back (status `released`)."""
    released, moved = await _move(session, reservation_id, _RELEASE, actor_id=actor_id)
    if moved:
        after_commit(session, HOLDS_RELEASED.inc)
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
    fulfilled, _ = await _move(
        session, reservation_id, _FULFIL, actor_id=actor_id, managed_by=managed_by
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
    cancelled, _ = await _move(
        session, reservation_id, _CANCEL, actor_id=actor_id, managed_by=managed_by
    )
    return cancelled


async def extend_hold(
    session: AsyncSession, reservation_id: uuid.UUID, *, ttl_seconds: int
) -> ReservationView:
    """Give a live hold `ttl_seconds` from now. One conditional UPDATE decides: only a hold
    that is `held`, not past `expires_at` and of the inventory API matches it, so an extend
    racing the sweep or a convert either lands before them or finds the hold gone. A hold
    past its expiry (swept or not) raises HoldExpired; any other status InvalidTransition."""
    now = utcnow()
    extended = (
        await session.scalars(
            update(Reservation)
            .where(
                Reservation.id == reservation_id,
                Reservation.status == ReservationStatus.HELD.value,
                Reservation.expires_at > now,
                Reservation.managed_by.is_(None),
            )
            .values(expires_at=now + timedelta(seconds=ttl_seconds), updated_at=now)
            .returning(Reservation)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
    ).one_or_none()
    if extended is None:
        current = await _current(session, reservation_id)
        _check_manager(current, None)
        if current.status in (ReservationStatus.HELD, ReservationStatus.EXPIRED):
            raise HoldExpired("The hold has expired; make a new one.")
        raise _refuse(current, "extend")
    (view,) = await views_of(session, [extended])
    return view


ReservationAction = Literal["convert", "release", "fulfil", "cancel"]

_ACTIONS: dict[str, Callable[..., Awaitable[Reservation]]] = {
    "convert": convert_hold,
    "release": release_hold,
    "fulfil": fulfil_allocation,
    "cancel": cancel_allocation,
}


async def change_reservation(
    session: AsyncSession,
    reservation_id: uuid.UUID,
    action: ReservationAction,
    *,
    actor_id: int,
) -> ReservationView:
    """Apply `action` to a hold or allocation of the inventory API, as the API shows the
    result (a convert of a hold past its expiry answers it `expired`)."""
    reservation = await _ACTIONS[action](session, reservation_id, actor_id=actor_id)
    (view,) = await views_of(session, [reservation])
    return view
