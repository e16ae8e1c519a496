"""Stock adjustments (receipts, removals, corrections) and locations.

An adjustment adds to a level through `ledger.receive` or takes from it as a claim
(`claims`), so a removal can never take `available` below zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper.config import StockPolicy
from storekeeper.db import dialect_insert, utcnow
from storekeeper.errors import Conflict, NotFound
from storekeeper.inventory import claims, ledger
from storekeeper.inventory.lines import resolve_location, skus
from storekeeper.inventory.models import Location, MovementKind
from storekeeper.inventory.service import (
    DEFAULT_POLICY,
    claim_reclaiming_expired,
    lock_conflicts_are_retryable,
    refuse_short,
)


@dataclass(frozen=True)
class Adjustment:
    written: ledger.Written
    sku: str
    entry: ledger.Entry
    deltas: ledger.Deltas


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
    policy: StockPolicy = DEFAULT_POLICY,
) -> Adjustment:
    """Add (`delta` > 0) or remove stock. Without a location, stock is received at the
    highest-priority location and removed from the highest-priority one that has enough.
    A removal that would take `available` below zero raises InsufficientStock."""
    with lock_conflicts_are_retryable():
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
        entry = ledger.Entry(
            kind=kind.value, created_at=now, reason=reason, note=note, actor_id=actor_id
        )
        deltas = ledger.Deltas(on_hand=delta)
        if delta > 0:
            if location_id is None:
                location_id = await default_location_id(session)
            written = await ledger.receive(session, sku.id, location_id, delta, entry)
            return Adjustment(written, sku.code, entry, deltas)
        request = ledger.ClaimRequest(ledger.Claim(sku.id, -delta, deltas, location_id), entry)
        (result,) = await claim_reclaiming_expired(session, [request], policy, now=now)
        if isinstance(result, claims.Shortage):
            refuse_short(
                [{"sku": sku.code, "requested": result.requested, "available": result.available}],
                detail="The removal would take available stock below zero.",
            )
        return Adjustment(result, sku.code, entry, deltas)


async def receive_first_stock(
    session: AsyncSession,
    sku_id: int,
    on_hand: int,
    location_code: str | None,
    *,
    actor_id: int | None,
    loc: Sequence[str | int],
) -> None:
    """A new SKU's first stock: a `receive` adjustment of `on_hand` at `location_code` (the
    highest-priority location when None), in the caller's unit of work, so the SKU and its
    stock commit together. A named location is checked even for 0 units, which write
    nothing (an adjustment is never of 0)."""
    location_id = (
        await resolve_location(session, location_code, loc) if location_code is not None else None
    )
    if on_hand == 0:
        return
    if location_id is None:
        location_id = await default_location_id(session)
    entry = ledger.Entry(
        kind=MovementKind.RECEIVE.value,
        created_at=utcnow(),
        reason="receive",
        note="first stock",
        actor_id=actor_id,
    )
    await ledger.receive(session, sku_id, location_id, on_hand, entry)


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
        dialect_insert(session, Location)
        .values(code=code.upper(), name=name, priority=priority, is_active=True)
        .on_conflict_do_nothing(index_elements=["code"])
        .returning(Location)
    )
    location = (await session.scalars(insert)).one_or_none()
    if location is None:
        raise Conflict(f"A location with code {code.upper()!r} already exists.")
    return location


async def locations_page(
    session: AsyncSession, *, after: tuple[int, int] | None, limit: int
) -> list[Location]:
    """Up to `limit` locations, highest priority first (then by id), after the
    (priority, id) key of the last one seen: keyset pagination like every list."""
    query = select(Location)
    if after is not None:
        priority, location_id = after
        query = query.where(
            or_(
                Location.priority < priority,
                and_(Location.priority == priority, Location.id > location_id),
            )
        )
    query = query.order_by(Location.priority.desc(), Location.id).limit(limit)
    return list((await session.scalars(query)).all())


async def list_locations(session: AsyncSession) -> list[Location]:
    """Every location, highest priority first (a warehouse has a handful; the staff pages
    offer them all in a choice)."""
    return list(
        (
            await session.scalars(select(Location).order_by(Location.priority.desc(), Location.id))
        ).all()
    )
