"""The figures of the dashboard: read-only aggregates over the catalog, the stock levels,
the ledger, holds and orders. Each is one SQL statement whatever the size of the shop."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from storekeeper.catalog.models import Sku
from storekeeper.db import utcnow
from storekeeper.inventory.models import (
    Location,
    MovementKind,
    Reservation,
    ReservationStatus,
    StockLevel,
    StockMovement,
)
from storekeeper.orders.models import Order, OrderStatus

CHART_DAYS = 30
LOW_STOCK_ROWS = 20
RECENT_MOVEMENTS = 10


@dataclass(frozen=True)
class LowStockRow:
    sku: str
    location: str
    on_hand: int
    reserved: int
    allocated: int
    available: int


@dataclass(frozen=True)
class MovementRow:
    id: int
    created_at: datetime
    sku: str
    location: str
    kind: str
    on_hand_delta: int
    reserved_delta: int
    allocated_delta: int
    reason: str | None
    reference: str | None
    note: str | None


@dataclass(frozen=True)
class DailyFlow:
    days: list[date]
    received: list[int]
    shipped: list[int]


@dataclass(frozen=True)
class Summary:
    skus: int
    units_on_hand: int
    active_holds: int
    orders_by_status: dict[str, int]


def chart_days(today: date, count: int = CHART_DAYS) -> list[date]:
    return [today - timedelta(days=offset) for offset in range(count - 1, -1, -1)]


def day_of(
    column: ColumnElement[datetime] | InstrumentedAttribute[datetime],
) -> ColumnElement[object]:
    """The UTC calendar day of a timestamp column: `date()` exists on SQLite (which stores
    UTC) and on PostgreSQL (whose sessions run in UTC)."""
    return func.date(column)


async def summary(session: AsyncSession) -> Summary:
    skus = await session.scalar(select(func.count()).where(Sku.is_deleted.is_(False)))
    units = await session.scalar(select(func.coalesce(func.sum(StockLevel.on_hand), 0)))
    holds = await session.scalar(
        select(func.count())
        .select_from(Reservation)
        .where(Reservation.status == ReservationStatus.HELD.value)
        .where(Reservation.expires_at > utcnow())
    )
    rows = await session.execute(select(Order.status, func.count()).group_by(Order.status))
    counts: dict[str, int] = dict(rows.all())
    return Summary(
        skus=skus or 0,
        units_on_hand=units or 0,
        active_holds=holds or 0,
        orders_by_status={status.value: counts.get(status.value, 0) for status in OrderStatus},
    )


async def low_stock(session: AsyncSession, threshold: int) -> list[LowStockRow]:
    available = StockLevel.on_hand - StockLevel.reserved - StockLevel.allocated
    rows = await session.execute(
        select(
            Sku.code,
            Location.code,
            StockLevel.on_hand,
            StockLevel.reserved,
            StockLevel.allocated,
            available,
        )
        .join(Sku, Sku.id == StockLevel.sku_id)
        .join(Location, Location.id == StockLevel.location_id)
        .where(Sku.is_deleted.is_(False), Location.is_active.is_(True), available <= threshold)
        .order_by(available, Sku.code, Location.code)
        .limit(LOW_STOCK_ROWS)
    )
    return [LowStockRow(*row) for row in rows]


async def recent_movements(
    session: AsyncSession, *, sku_id: int | None = None, limit: int = RECENT_MOVEMENTS
) -> list[MovementRow]:
    query = (
        select(
            StockMovement.id,
            StockMovement.created_at,
            Sku.code,
            Location.code,
            StockMovement.kind,
            StockMovement.on_hand_delta,
            StockMovement.reserved_delta,
            StockMovement.allocated_delta,
            StockMovement.reason,
            StockMovement.reference,
            StockMovement.note,
        )
        .join(Sku, Sku.id == StockMovement.sku_id)
        .join(Location, Location.id == StockMovement.location_id)
        .order_by(StockMovement.id.desc())
        .limit(limit)
    )
    if sku_id is not None:
        query = query.where(StockMovement.sku_id == sku_id)
    return [MovementRow(*row) for row in (await session.execute(query))]


async def daily_flow(session: AsyncSession, today: date) -> DailyFlow:
    """Units received (stock added with reason `receive`) and shipped (allocations
    fulfilled) per day over the last 30 days, from the ledger."""
    days = chart_days(today)
    since = datetime.combine(days[0], datetime.min.time(), tzinfo=utcnow().tzinfo)
    day = day_of(StockMovement.created_at)
    received_rows = and_(
        StockMovement.on_hand_delta > 0,
        or_(
            StockMovement.kind == MovementKind.RECEIVE.value,
            StockMovement.reason == "receive",
        ),
    )
    shipped_rows = StockMovement.kind == MovementKind.FULFIL.value
    rows = await session.execute(
        select(
            day,
            func.sum(case((received_rows, StockMovement.on_hand_delta), else_=0)),
            func.sum(case((shipped_rows, -StockMovement.on_hand_delta), else_=0)),
        )
        .where(StockMovement.created_at >= since, or_(received_rows, shipped_rows))
        .group_by(day)
    )
    by_day = {_as_date(row[0]): (int(row[1] or 0), int(row[2] or 0)) for row in rows}
    return DailyFlow(
        days=days,
        received=[by_day.get(d, (0, 0))[0] for d in days],
        shipped=[by_day.get(d, (0, 0))[1] for d in days],
    )


async def on_hand_by_day(session: AsyncSession, sku_id: int, today: date) -> list[int]:
    """The SKU's units on hand (all locations) at the end of each of the last 30 days,
    rebuilt from the ledger: the total before the window plus each day's deltas."""
    days = chart_days(today)
    since = datetime.combine(days[0], datetime.min.time(), tzinfo=utcnow().tzinfo)
    before = await session.scalar(
        select(func.coalesce(func.sum(StockMovement.on_hand_delta), 0)).where(
            StockMovement.sku_id == sku_id, StockMovement.created_at < since
        )
    )
    day = day_of(StockMovement.created_at)
    rows = await session.execute(
        select(day, func.sum(StockMovement.on_hand_delta))
        .where(StockMovement.sku_id == sku_id, StockMovement.created_at >= since)
        .group_by(day)
    )
    deltas = {_as_date(row[0]): int(row[1] or 0) for row in rows}
    level = int(before or 0)
    values = []
    for d in days:
        level += deltas.get(d, 0)
        values.append(level)
    return values


def _as_date(value: object) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))
