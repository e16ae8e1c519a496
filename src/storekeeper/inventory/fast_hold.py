"""The flash-sale path: placing a hold, in one statement when it can be.

A one-line hold under `atomic` locking on PostgreSQL is written by
`ledger.hold_one_line_statement` as a single statement that commits as it ends: one round
trip, and the hot row is locked only while the database writes and commits. Every case it
cannot serve (several lines, another strategy or SQLite; stock that is short, perhaps only
until expired holds are reclaimed; a hold that would leave its level at or below the SKU's
low-stock threshold, which may have to announce `stock.low` or `stock.out`; an unknown or
deleted SKU or location; a caller who may not hold or whose sign-in has ended; a quantity
out of range; a client_token used before) falls back to `service.create_hold_for_caller` in
a unit of work, after the caller's sign-in is checked in that same unit, which gives each of
those its answer.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper.accounts.security import TokenCaller
from storekeeper.accounts.service import get_signed_in_user
from storekeeper.config import LockingStrategy, StockPolicy
from storekeeper.db import UnitOfWork, is_retryable, utcnow
from storekeeper.errors import sqlstate_of
from storekeeper.inventory import ledger, service
from storekeeper.inventory.lines import MAX_QUANTITY
from storekeeper.inventory.metrics import HOLDS_CREATED
from storekeeper.inventory.models import Reservation, ReservationStatus

_UNIQUE_VIOLATION = "23505"


async def place_hold(
    uow: UnitOfWork, policy: StockPolicy, caller: TokenCaller, request: service.ReservationRequest
) -> service.ReservationView:
    """Hold every line of `request` or none for `caller` (a verified token's subject, which
    must be active staff with a live sign-in); idempotent by its `client_token`."""
    held = await _hold_in_one_statement(uow, policy, caller, request)
    if held is not None:
        return held
    return await uow.run(_hold_for_signed_in_caller, caller, request, policy)


async def _hold_for_signed_in_caller(
    session: AsyncSession,
    caller: TokenCaller,
    request: service.ReservationRequest,
    policy: StockPolicy,
) -> service.ReservationView:
    # The account and its sign-in in one statement (401 when it has ended); the service
    # then finds the account in the session and checks its role.
    await get_signed_in_user(session, caller.user_id, caller.sign_in_id)
    return await service.create_hold_for_caller(session, caller.user_id, request, policy)


async def _hold_in_one_statement(
    uow: UnitOfWork, policy: StockPolicy, caller: TokenCaller, request: service.ReservationRequest
) -> service.ReservationView | None:
    """The hold written by one self-committing statement, or None when it wrote nothing."""
    items, ttl_seconds = request.items, request.ttl_seconds
    if len(items) != 1 or policy.locking is not LockingStrategy.ATOMIC or uow.is_sqlite:
        return None
    if ttl_seconds is None:
        return None
    ((code, quantity, location),) = items
    if not isinstance(code, str) or not 1 <= quantity <= MAX_QUANTITY:
        return None
    if location is not None and not isinstance(location, str):
        return None
    now = utcnow()
    hold = ledger.OneLineHold(
        reservation_id=uuid.uuid4(),
        client_token=request.client_token,
        request_fingerprint=request.request_fingerprint,
        sku_code=code.upper(),
        quantity=quantity,
        location_code=location.upper() if location is not None else None,
        expires_at=now + timedelta(seconds=ttl_seconds),
        reference=request.reference,
        actor_id=caller.user_id,
        sign_in_id=caller.sign_in_id,
        now=now,
        default_threshold=uow.db.settings.low_stock_threshold,
    )
    try:
        rows = await uow.run_alone(*ledger.hold_one_line_statement(hold))
    except DBAPIError as exc:
        # A used client_token (unique violation) or a lost deadlock undid the whole
        # statement; the unit-of-work path answers the replay or re-runs the hold.
        if sqlstate_of(exc) == _UNIQUE_VIOLATION or is_retryable(exc):
            return None
        raise
    if not rows:
        return None
    # The statement committed as it ended: count it now.
    HOLDS_CREATED.inc()
    sku_id, location_id, location_code = tuple(rows[0])
    reservation = Reservation(
        id=hold.reservation_id,
        client_token=request.client_token,
        request_fingerprint=request.request_fingerprint,
        status=ReservationStatus.HELD.value,
        expires_at=hold.expires_at,
        reference=request.reference,
        managed_by=None,
        created_by=caller.user_id,
        created_at=now,
        updated_at=now,
    )
    line = service.LineView(sku_id, hold.sku_code, quantity, location_id, location_code)
    return service.ReservationView(reservation, [line], created=True)
