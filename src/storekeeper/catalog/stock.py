"""What the catalog reads of stock (each SKU's availability) and the one thing it asks of it
(a new SKU's first stock).

The catalog shows availability (`ProductView`, `SkuView`, the `in_stock` filter of
`list_products`) but does not own stock and never imports the inventory domain, which sits
above it. The inventory domain provides a `StockFigures` (`STOCK_FIGURES` in its `queries`
module, built on its one definition of `available`); the application wires it in
(`create_app` keeps it on `app.state.stock_figures`, routes get it through
`storekeeper.catalog.dependencies.StockFiguresDep`), and the service functions that show
availability take it as their `stock` argument. A SKU created with `on_hand` gets its
first stock through the same object (`receive_first_stock`), which writes it through the
inventory's ledger in the caller's unit of work.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

from sqlalchemy import ColumnElement, ColumnExpressionArgument
from sqlalchemy.ext.asyncio import AsyncSession


class StockFigures(Protocol):
    """Availability of SKUs: a level's on hand less what is held and allocated, summed over
    every location of the SKU, 0 for a SKU without stock."""

    def sku_available(self, sku_id: ColumnExpressionArgument[int]) -> ColumnElement[int]:
        """A scalar SQL expression: the availability of the SKU whose id is `sku_id` (a
        column of the enclosing statement, such as `Sku.id`, which the expression is
        correlated to), 0 when it has no stock."""
        ...

    async def available_by_sku(
        self, session: AsyncSession, sku_ids: Collection[int]
    ) -> dict[int, int]:
        """Each of `sku_ids`' availability (0 for a SKU without stock), in one statement
        whatever the number of SKUs."""
        ...

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
        """Receive `on_hand` units of the new SKU at `location` (the highest-priority
        location when None) as a `receive` adjustment in the session's transaction; nothing
        is written for 0. An unknown `location` is a 422 on the field at `loc`."""
        ...
