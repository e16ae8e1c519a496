"""Purchase limits: the most units of a SKU one customer may have in orders that are not
cancelled (`skus.max_per_customer`).

The count lives in the database, one `customer_purchases` row per (customer, SKU), kept
only for SKUs that have a limit. Placing an order raises it with one conditional upsert
per limited SKU, in the order's unit of work and before any stock is allocated (stock
levels are the hot rows, locked last): the row is created from the customer's orders so
far, or raised only if it stays within the limit, and a row it does not return is a
refusal. Concurrent orders of one customer queue on that row (PostgreSQL re-checks the
condition against the committed count), so they cannot both slip under the limit; nothing
is read and compared in Python. The count is the larger of the row and the customer's
committed orders, so orders placed while the SKU had no limit (which kept no row) count
when a limit is set again. Cancelling an order (by anyone, or the payment timeout)
lowers the rows of its SKUs in the cancellation's unit of work.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Integer, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import Uuid

from storekeeper.errors import PurchaseLimitExceeded


@dataclass(frozen=True)
class LimitedLine:
    """A line of an order about to be placed, of a SKU with a `max_per_customer`."""

    sku_id: int
    sku: str
    quantity: int
    limit: int


# The customer's units of the SKU in orders that are not cancelled: what a new counter row
# starts from (a limit set on a SKU that was already sold counts what was sold).
_ORDERED_SO_FAR = """
    SELECT COALESCE(SUM(order_lines.quantity), 0) AS units
    FROM order_lines JOIN orders ON orders.id = order_lines.order_id
    WHERE orders.user_id = CAST(:user_id AS INTEGER)
      AND order_lines.sku_id = CAST(:sku_id AS INTEGER)
      AND orders.status <> 'cancelled'
"""

# The larger of the row and the customer's committed orders so far (`excluded.units` less
# the line): the row counts orders of this customer still in flight, which waited for it;
# the orders count those placed while the SKU had no limit, which the row missed.
_KEPT_OR_ORDERED = """CASE
    WHEN customer_purchases.units >= excluded.units - CAST(:quantity AS INTEGER)
    THEN customer_purchases.units
    ELSE excluded.units - CAST(:quantity AS INTEGER) END"""

# Create the row (if the customer's orders so far leave room) or raise it (if it stays
# within the limit); RETURNING nothing means the limit refuses the line. The WHERE of the
# SELECT is also what SQLite needs to parse an upsert of an INSERT ... SELECT.
_CLAIM = text(
    f"""
INSERT INTO customer_purchases (user_id, sku_id, units)
SELECT CAST(:user_id AS INTEGER), CAST(:sku_id AS INTEGER),
       prior.units + CAST(:quantity AS INTEGER)
FROM ({_ORDERED_SO_FAR}) AS prior
WHERE prior.units + CAST(:quantity AS INTEGER) <= CAST(:limit AS INTEGER)
ON CONFLICT (user_id, sku_id) DO UPDATE
SET units = {_KEPT_OR_ORDERED} + CAST(:quantity AS INTEGER)
WHERE {_KEPT_OR_ORDERED} + CAST(:quantity AS INTEGER) <= CAST(:limit AS INTEGER)
RETURNING units
"""
)

# What a refused customer already has: the larger of the row and the orders so far.
_ALREADY_ORDERED = text(
    f"""
SELECT CASE WHEN kept.units IS NOT NULL AND kept.units > prior.units
            THEN kept.units ELSE prior.units END
FROM ({_ORDERED_SO_FAR}) AS prior
LEFT JOIN customer_purchases AS kept
  ON kept.user_id = CAST(:user_id AS INTEGER) AND kept.sku_id = CAST(:sku_id AS INTEGER)
"""
)

# Lower the rows of an order's SKUs by its units (never below zero); SKUs without a row
# (never limited) are untouched. One statement whatever the order.
_GIVE_BACK_ORDER = text(
    """
UPDATE customer_purchases
SET units = CASE WHEN customer_purchases.units > ordered.quantity
                 THEN customer_purchases.units - ordered.quantity ELSE 0 END
FROM (
    SELECT sku_id, SUM(quantity) AS quantity FROM order_lines
    WHERE order_id = :order_id GROUP BY sku_id
) AS ordered
WHERE customer_purchases.user_id = :user_id AND customer_purchases.sku_id = ordered.sku_id
"""
).bindparams(bindparam("order_id", type_=Uuid()), bindparam("user_id", type_=Integer()))

_GIVE_BACK = text(
    """
UPDATE customer_purchases
SET units = CASE WHEN units > CAST(:quantity AS INTEGER)
                 THEN units - CAST(:quantity AS INTEGER) ELSE 0 END
WHERE user_id = CAST(:user_id AS INTEGER) AND sku_id = CAST(:sku_id AS INTEGER)
"""
)


@dataclass(frozen=True)
class Claimed:
    """What `claim` counted, and the refusal of the first line the limit refused (None when
    every line fitted). A refused claim leaves the lines before it counted: the caller
    raises the refusal (its unit rolls back) or gives them back."""

    counted: list[LimitedLine]
    refused: PurchaseLimitExceeded | None


async def claim(session: AsyncSession, user_id: int, lines: Sequence[LimitedLine]) -> Claimed:
    """Count the limited lines against the customer's rows, in SKU order (so two orders
    of one customer lock the rows in the same order); stop at the first refused one."""
    counted: list[LimitedLine] = []
    for line in sorted(lines, key=lambda line: line.sku_id):
        params = {
            "user_id": user_id,
            "sku_id": line.sku_id,
            "quantity": line.quantity,
            "limit": line.limit,
        }
        if (await session.execute(_CLAIM, params)).first() is None:
            already = (
                await session.execute(_ALREADY_ORDERED, {"user_id": user_id, "sku_id": line.sku_id})
            ).scalar_one()
            refusal = PurchaseLimitExceeded(
                sku=line.sku,
                limit=line.limit,
                already_ordered=int(already),
                requested=line.quantity,
            )
            return Claimed(counted, refusal)
        counted.append(line)
    return Claimed(counted, None)


async def give_back(session: AsyncSession, user_id: int, lines: Sequence[LimitedLine]) -> None:
    """Undo `claim` of these lines in the same unit (an order that was not made after all)."""
    for line in lines:
        await session.execute(
            _GIVE_BACK, {"user_id": user_id, "sku_id": line.sku_id, "quantity": line.quantity}
        )


async def give_back_order(session: AsyncSession, order_id: uuid.UUID, user_id: int) -> None:
    """A cancelled order's units no longer count against its customer."""
    await session.execute(_GIVE_BACK_ORDER, {"order_id": order_id, "user_id": user_id})
