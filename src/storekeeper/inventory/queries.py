"""Read-only stock queries other domains may use (writes to stock stay in the inventory
service)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import orjson
from sqlalchemy import Integer, Select, any_, bindparam, column, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper.inventory.models import StockLevel


async def available_by_sku(session: AsyncSession, sku_ids: Collection[int]) -> dict[int, int]:
    """Each SKU's `available` (on_hand - reserved - allocated summed over its locations),
    0 for a SKU without stock, in one statement whatever the number of SKUs.

    The ids travel as one array parameter (PostgreSQL) or one JSON parameter (SQLite), so
    a large page never runs into the drivers' bind-parameter limits.
    """
    ids = sorted(set(sku_ids))
    if not ids:
        return {}
    if session.get_bind().dialect.name == "postgresql":
        wanted = StockLevel.sku_id == any_(bindparam("sku_ids", ids, type_=ARRAY(Integer)))
    else:
        id_list: Select[tuple[Any]] = select(column("value")).select_from(
            func.json_each(bindparam("sku_ids", orjson.dumps(ids).decode()))
        )
        wanted = StockLevel.sku_id.in_(id_list)
    available = func.sum(StockLevel.on_hand - StockLevel.reserved - StockLevel.allocated)
    rows = await session.execute(
        select(StockLevel.sku_id, available).where(wanted).group_by(StockLevel.sku_id)
    )
    result = dict.fromkeys(ids, 0)
    for sku_id, amount in rows:
        result[sku_id] = int(amount)
    return result
