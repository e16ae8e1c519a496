"""Read-only stock queries: availability, stock figures per SKU and location, the ledger.

Other domains (catalog, orders, the staff pages) read stock through here, the catalog only
through `STOCK_FIGURES`, which the application hands it; writes to stock stay in `ledger`.
A ledger row is read as one record type, `MovementView`, wherever it is shown.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any, cast

import orjson
from sqlalchemy import (
    ColumnElement,
    ColumnExpressionArgument,
    Integer,
    Select,
    Subquery,
    Table,
    and_,
    any_,
    bindparam,
    case,
    column,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper.catalog.models import Product
from storekeeper.catalog.stock import StockFigures
from storekeeper.db import is_postgres
from storekeeper.errors import NotFound
from storekeeper.inventory import signals, stock
from storekeeper.inventory.lines import skus
from storekeeper.inventory.models import (
    Location,
    MovementKind,
    ReservationStatus,
    StockLevel,
    available_of,
    available_units,
    levels,
    locations,
    movements,
    reservations,
)


async def available_by_sku(session: AsyncSession, sku_ids: Collection[int]) -> dict[int, int]:
    """Each SKU's `available` summed over its locations, 0 for a SKU without stock, in one
    statement whatever the number of SKUs.

    The ids travel as one array parameter (PostgreSQL) or one JSON parameter (SQLite), so
    a large page never runs into the drivers' bind-parameter limits.
    """
    ids = sorted(set(sku_ids))
    if not ids:
        return {}
    if is_postgres(session):
        wanted = StockLevel.sku_id == any_(bindparam("sku_ids", ids, type_=ARRAY(Integer)))
    else:
        id_list: Select[tuple[Any]] = select(column("value")).select_from(
            func.json_each(bindparam("sku_ids", orjson.dumps(ids).decode()))
        )
        wanted = StockLevel.sku_id.in_(id_list)
    rows = await session.execute(
        select(levels.c.sku_id, func.sum(available_of(levels)))
        .where(wanted)
        .group_by(levels.c.sku_id)
    )
    result = dict.fromkeys(ids, 0)
    for sku_id, amount in rows:
        result[sku_id] = int(amount)
    return result


# The product's name on the stock list: read here, with the SKUs it belongs to.
products = cast(Table, Product.__table__)


# --- stock figures -----------------------------------------------------------------------


@dataclass(frozen=True)
class LocationFigures:
    location: str
    on_hand: int
    reserved: int
    allocated: int

    @property
    def available(self) -> int:
        figure: int = available_units(self.on_hand, self.reserved, self.allocated)
        return figure


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


async def _figures_of(
    session: AsyncSession, sku_ids: Sequence[int], location_code: str | None = None
) -> dict[int, list[LocationFigures]]:
    """Figures of the given SKUs per location (only the location `location_code` when
    given), in one statement."""
    figures: dict[int, list[LocationFigures]] = {sku_id: [] for sku_id in sku_ids}
    if figures:
        query = (
            select(
                levels.c.sku_id,
                locations.c.code,
                levels.c.on_hand,
                levels.c.reserved,
                levels.c.allocated,
            )
            .join(locations, locations.c.id == levels.c.location_id)
            .where(levels.c.sku_id.in_(list(figures)))
        )
        if location_code is not None:
            query = query.where(locations.c.code == location_code)
        level_rows = await session.execute(
            query.order_by(levels.c.sku_id, locations.c.priority.desc(), locations.c.id)
        )
        for sku_id, location, on_hand, reserved, allocated in level_rows:
            figures[sku_id].append(LocationFigures(location, on_hand, reserved, allocated))
    return figures


async def _stock_of(session: AsyncSession, sku_rows: Sequence[Any]) -> list[SkuStock]:
    """Figures of the given (id, code) SKUs, per location, in one statement."""
    figures = await _figures_of(session, [row.id for row in sku_rows])
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


async def stock_as_of(session: AsyncSession, code: str, as_of: datetime) -> SkuStock:
    """The SKU's figures as they stood at `as_of`, from the ledger: per location, the sums
    of the deltas of its rows written up to then (one range of the ledger's (sku_id,
    created_at) index). A location the SKU had no row at by then is left out."""
    sku_id, sku_code = await sku_by_code(session, code)
    m = movements
    rows = await session.execute(
        select(
            locations.c.code,
            func.sum(m.c.on_hand_delta),
            func.sum(m.c.reserved_delta),
            func.sum(m.c.allocated_delta),
        )
        .select_from(m)
        .join(locations, locations.c.id == m.c.location_id)
        .where(m.c.sku_id == sku_id, m.c.created_at <= as_of)
        .group_by(m.c.location_id, locations.c.code, locations.c.priority)
        .order_by(locations.c.priority.desc(), m.c.location_id)
    )
    figures = [
        LocationFigures(location, int(on_hand), int(reserved), int(allocated))
        for location, on_hand, reserved, allocated in rows
    ]
    return SkuStock(sku_id, sku_code, figures)


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
class ListedSkuStock(SkuStock):
    """A SKU's figures on the stock list, with the name of its product."""

    product: str


async def stock_list(
    session: AsyncSession, *, after_sku_id: int | None, limit: int, location_code: str | None
) -> list[ListedSkuStock]:
    """Live SKUs by id with their product's name, `limit` of them after `after_sku_id`
    (keyset), and their figures per location; with `location_code`, only the SKUs with a
    level at that location and only its figures. Two statements whatever the page size or
    filter (an unknown code simply matches nothing)."""
    query = (
        select(skus.c.id, skus.c.code, products.c.name)
        .join(products, products.c.id == skus.c.product_id)
        .where(~skus.c.is_deleted)
    )
    if location_code is not None:
        query = query.where(
            select(levels.c.sku_id)
            .join(locations, locations.c.id == levels.c.location_id)
            .where(levels.c.sku_id == skus.c.id, locations.c.code == location_code)
            .exists()
        )
    if after_sku_id is not None:
        query = query.where(skus.c.id > after_sku_id)
    rows = (await session.execute(query.order_by(skus.c.id).limit(limit))).all()
    figures = await _figures_of(session, [row.id for row in rows], location_code)
    return [ListedSkuStock(row.id, row.code, figures[row.id], row.name) for row in rows]


async def availability(
    session: AsyncSession, *, codes: Sequence[str] | None, after_sku_id: int | None, limit: int
) -> list[SkuStock]:
    """Stock of the named SKUs (all of them), or else a keyset page of every live SKU."""
    if codes:
        return await stock_by_codes(session, codes)
    return await stock_page(session, after_sku_id=after_sku_id, limit=limit)


# --- the ledger --------------------------------------------------------------------------


@dataclass(frozen=True)
class MovementView:
    """One ledger row as every reader shows it."""

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

    @property
    def reservation_id(self) -> uuid.UUID | None:
        """The hold or allocation the movement belongs to: holds, allocations and their
        changes put the reservation's id in `reference`; other movements carry none."""
        if not self.reference:
            return None
        try:
            return uuid.UUID(self.reference)
        except ValueError:
            return None


def movement_query() -> Select[Any]:
    """Ledger rows as `MovementView` columns; callers add the filter and the order."""
    m = movements
    return (
        select(
            m.c.id,
            skus.c.code,
            locations.c.code,
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
        .join(locations, locations.c.id == m.c.location_id)
    )


async def movements_of_sku(
    session: AsyncSession, sku_code: str, *, before_id: int | None, limit: int
) -> list[MovementView]:
    """The ledger of the SKU `sku_code` (404 when unknown), newest first."""
    sku_id, _code = await sku_by_code(session, sku_code)
    query = movement_query().where(movements.c.sku_id == sku_id)
    if before_id is not None:
        query = query.where(movements.c.id < before_id)
    rows = await session.execute(query.order_by(movements.c.id.desc()).limit(limit))
    return [MovementView(*row) for row in rows]


async def movement_feed(
    session: AsyncSession, *, after_id: int | None, limit: int
) -> list[MovementView]:
    """Every movement, oldest first."""
    query = movement_query()
    if after_id is not None:
        query = query.where(movements.c.id > after_id)
    rows = await session.execute(query.order_by(movements.c.id).limit(limit))
    return [MovementView(*row) for row in rows]


# --- the staff pages: the dashboard and a SKU's page -------------------------------------


@dataclass(frozen=True)
class StockSummary:
    skus: int
    units_on_hand: int
    active_holds: int


async def stock_summary(session: AsyncSession, *, now: datetime) -> StockSummary:
    """How many live SKUs there are, the units on hand over every level, and how many holds
    are still live at `now` (held and not yet expired)."""
    sku_count = await session.scalar(
        select(func.count()).select_from(skus).where(skus.c.is_deleted.is_(False))
    )
    units = await session.scalar(select(func.coalesce(func.sum(levels.c.on_hand), 0)))
    holds = await session.scalar(
        select(func.count())
        .select_from(reservations)
        .where(
            reservations.c.status == ReservationStatus.HELD.value,
            reservations.c.expires_at > now,
        )
    )
    return StockSummary(skus=sku_count or 0, units_on_hand=units or 0, active_holds=holds or 0)


@dataclass(frozen=True)
class SkuLevel(LocationFigures):
    """The figures of one SKU at one location, and the low-stock threshold it was held to."""

    sku: str
    threshold: int


@dataclass(frozen=True)
class LowStock:
    """One page of low levels and how many there are in all."""

    levels: list[SkuLevel]
    total: int


async def low_stock(
    session: AsyncSession,
    threshold: int | None,
    *,
    default_threshold: int,
    limit: int,
    offset: int = 0,
) -> LowStock:
    """Levels of live SKUs at active locations with at most `threshold` units available, or,
    when `threshold` is None, at most each SKU's own `low_stock_threshold` (`default_threshold`
    for a SKU without one); fewest available first (then by SKU and location code), `limit` of
    them from `offset`, with the number of all such levels (a window count in the same
    statement)."""
    available = available_of(levels)
    in_force = (
        literal(threshold)
        if threshold is not None
        else signals.threshold_in_force(default_threshold)
    )
    rows = (
        await session.execute(
            select(
                skus.c.code,
                locations.c.code,
                levels.c.on_hand,
                levels.c.reserved,
                levels.c.allocated,
                in_force,
                func.count().over(),
            )
            .select_from(levels)
            .join(skus, skus.c.id == levels.c.sku_id)
            .join(locations, locations.c.id == levels.c.location_id)
            .where(
                skus.c.is_deleted.is_(False),
                locations.c.is_active.is_(True),
                available <= in_force,
            )
            .order_by(available, skus.c.code, locations.c.code)
            .limit(limit)
            .offset(offset)
        )
    ).all()
    found = [
        SkuLevel(
            sku=sku,
            location=location,
            on_hand=on_hand,
            reserved=reserved,
            allocated=allocated,
            threshold=int(level_threshold),
        )
        for sku, location, on_hand, reserved, allocated, level_threshold, _total in rows
    ]
    return LowStock(found, int(rows[0][-1]) if rows else 0)


async def recent_movements(session: AsyncSession, *, limit: int) -> list[MovementView]:
    """The latest `limit` ledger rows of every SKU, newest first."""
    rows = await session.execute(movement_query().order_by(movements.c.id.desc()).limit(limit))
    return [MovementView(*row) for row in rows]


@dataclass(frozen=True)
class DailyFlow:
    """Units received and shipped on each of `days`, in the same order."""

    days: list[date]
    received: list[int]
    shipped: list[int]


def _day_of(column: ColumnElement[datetime]) -> ColumnElement[object]:
    """The UTC calendar day of a timestamp column: `date()` exists on SQLite (which stores
    UTC) and on PostgreSQL (whose sessions run in UTC)."""
    return func.date(column)


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _as_date(value: object) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


async def daily_flow(session: AsyncSession, days: Sequence[date]) -> DailyFlow:
    """Units received (stock added by a receipt: kind or reason `receive`) and shipped
    (allocations fulfilled) on each of `days` (consecutive UTC days, oldest first), from the
    ledger, in one statement."""
    m = movements
    day = _day_of(m.c.created_at)
    received_rows = and_(
        m.c.on_hand_delta > 0,
        or_(m.c.kind == MovementKind.RECEIVE.value, m.c.reason == "receive"),
    )
    shipped_rows = m.c.kind == MovementKind.FULFIL.value
    rows = await session.execute(
        select(
            day,
            func.sum(case((received_rows, m.c.on_hand_delta), else_=0)),
            func.sum(case((shipped_rows, -m.c.on_hand_delta), else_=0)),
        )
        .where(m.c.created_at >= _start_of(days[0]), or_(received_rows, shipped_rows))
        .group_by(day)
    )
    by_day = {_as_date(row[0]): (int(row[1] or 0), int(row[2] or 0)) for row in rows}
    return DailyFlow(
        days=list(days),
        received=[by_day.get(d, (0, 0))[0] for d in days],
        shipped=[by_day.get(d, (0, 0))[1] for d in days],
    )


async def on_hand_by_day(session: AsyncSession, sku_id: int, days: Sequence[date]) -> list[int]:
    """The SKU's units on hand (all locations) at the end of each of `days` (consecutive UTC
    days, oldest first), rebuilt from the ledger: the total before the first day plus each
    day's deltas."""
    m = movements
    since = _start_of(days[0])
    before = await session.scalar(
        select(func.coalesce(func.sum(m.c.on_hand_delta), 0)).where(
            m.c.sku_id == sku_id, m.c.created_at < since
        )
    )
    day = _day_of(m.c.created_at)
    rows = await session.execute(
        select(day, func.sum(m.c.on_hand_delta))
        .where(m.c.sku_id == sku_id, m.c.created_at >= since)
        .group_by(day)
    )
    deltas = {_as_date(row[0]): int(row[1] or 0) for row in rows}
    level = int(before or 0)
    values = []
    for d in days:
        level += deltas.get(d, 0)
        values.append(level)
    return values


@dataclass(frozen=True)
class SkuStockPage:
    """What the staff page of one SKU shows."""

    stock: SkuStock
    # Where stock can be adjusted: the active locations, highest priority first.
    locations: list[Location]
    movements: list[MovementView]
    on_hand_by_day: list[int]


async def sku_stock_page(
    session: AsyncSession,
    sku_code: str,
    *,
    before_id: int | None,
    limit: int,
    days: Sequence[date],
    as_of: datetime | None = None,
) -> SkuStockPage:
    """The SKU `sku_code` (404 when unknown): its figures per location (as they stood at
    `as_of` when given), the active locations, `limit` rows of its ledger before `before_id`
    (newest first) and its units on hand at the end of each of `days`."""
    if as_of is not None:
        figures = await stock_as_of(session, sku_code, as_of)
    else:
        (figures,) = await stock_by_codes(session, [sku_code])
    active = [location for location in await stock.list_locations(session) if location.is_active]
    ledger = await movements_of_sku(session, figures.sku, before_id=before_id, limit=limit)
    history = await on_hand_by_day(session, figures.sku_id, days)
    return SkuStockPage(figures, active, ledger, history)


# --- what the catalog shows of stock -----------------------------------------------------


class CatalogStockFigures:
    """The inventory's `StockFigures` (`storekeeper.catalog.stock`): the availability the
    catalog shows and filters by, from the one definition of `available` (`available_of`)
    and `available_by_sku`. The catalog never imports this; the application hands
    `STOCK_FIGURES` to it."""

    __slots__ = ()

    def sku_available(self, sku_id: ColumnExpressionArgument[int]) -> ColumnElement[int]:
        """The SKU's `available` summed over its locations, 0 without stock, as a scalar
        subquery correlated to `sku_id` (a column of the enclosing statement)."""
        return (
            select(func.coalesce(func.sum(available_of(levels)), 0))
            .where(levels.c.sku_id == sku_id)
            .scalar_subquery()
        )

    async def available_by_sku(
        self, session: AsyncSession, sku_ids: Collection[int]
    ) -> dict[int, int]:
        """The module's `available_by_sku`."""
        return await available_by_sku(session, sku_ids)

    async def receive_first_stock(
        self,
        session: AsyncSession,
        sku_id: int,
        on_hand: int,
        location: str | None,
        *,
        actor_id: int | None,
        loc: Sequence[str | int],
    ) -> None:
        """`stock.receive_first_stock`."""
        await stock.receive_first_stock(
            session, sku_id, on_hand, location, actor_id=actor_id, loc=loc
        )


STOCK_FIGURES: StockFigures = CatalogStockFigures()


def gauge_figures(*, default_low_threshold: int, now: datetime) -> Subquery:
    """The inventory's business gauges as one row, for the one statement a metrics scrape
    runs: `stock_out` (levels of live SKUs at active locations with nothing available),
    `stock_low` (something available, but at most the SKU's low-stock threshold or
    `default_low_threshold`), `holds_live` (held and not expired at `now`)."""
    available = available_of(levels)
    threshold = func.coalesce(skus.c.low_stock_threshold, default_low_threshold)
    holds = (
        select(func.count())
        .select_from(reservations)
        .where(
            reservations.c.status == ReservationStatus.HELD.value,
            reservations.c.expires_at > now,
        )
        .scalar_subquery()
    )
    return (
        select(
            func.coalesce(func.sum(case((available <= 0, 1), else_=0)), 0).label("stock_out"),
            func.coalesce(
                func.sum(case(((available > 0) & (available <= threshold), 1), else_=0)), 0
            ).label("stock_low"),
            holds.label("holds_live"),
        )
        .select_from(levels)
        .join(skus, skus.c.id == levels.c.sku_id)
        .join(locations, locations.c.id == levels.c.location_id)
        .where(skus.c.is_deleted.is_(False), locations.c.is_active.is_(True))
        .subquery("inventory_gauges")
    )
