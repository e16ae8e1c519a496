"""The figures of the dashboard, gathered in one read-only unit of work through the
domains' own queries (stock and the ledger from `storekeeper.inventory.queries`, orders
from `storekeeper.orders.queries`), and the days its charts cover. Each figure is one SQL
statement whatever the size of the shop."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper.db import utcnow
from storekeeper.inventory import queries as stock
from storekeeper.orders import queries as orders

CHART_DAYS = 30
LOW_STOCK_ROWS = 20
RECENT_MOVEMENTS = 10


@dataclass(frozen=True)
class Summary:
    skus: int
    units_on_hand: int
    active_holds: int
    orders_by_status: dict[str, int]


@dataclass(frozen=True)
class Dashboard:
    """Everything the dashboard shows: the figures, the levels with little stock left, the
    latest ledger rows and the received/shipped flow of the chart."""

    summary: Summary
    low_stock: stock.LowStock
    movements: list[stock.MovementView]
    flow: stock.DailyFlow


def chart_days(today: date, count: int = CHART_DAYS) -> list[date]:
    """The `count` days ending with `today`, oldest first."""
    return [today - timedelta(days=offset) for offset in range(count - 1, -1, -1)]


async def dashboard_figures(
    session: AsyncSession, *, threshold: int | None, default_threshold: int, today: date
) -> Dashboard:
    """The dashboard: the first `LOW_STOCK_ROWS` levels with at most `threshold` units
    available (each SKU's own threshold when None) and how many there are, and the flow of
    the `CHART_DAYS` days ending with `today`."""
    figures = await stock.stock_summary(session, now=utcnow())
    return Dashboard(
        summary=Summary(
            skus=figures.skus,
            units_on_hand=figures.units_on_hand,
            active_holds=figures.active_holds,
            orders_by_status=await orders.counts_by_status(session),
        ),
        low_stock=await stock.low_stock(
            session, threshold, default_threshold=default_threshold, limit=LOW_STOCK_ROWS
        ),
        movements=await stock.recent_movements(session, limit=RECENT_MOVEMENTS),
        flow=await stock.daily_flow(session, chart_days(today)),
    )
