"""The database itself refuses impossible stock levels, whatever code writes them."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from storekeeper.db import Database
from storekeeper.inventory.models import StockLevel
from tests.inventory.conftest import Receiver, SkuFactory

# Each write would leave (on_hand, reserved, allocated) = (10, 4, 3) in an impossible state.
IMPOSSIBLE = {
    "negative on_hand": {"on_hand": -1, "reserved": 0, "allocated": 0},
    "negative reserved": {"reserved": -1},
    "negative allocated": {"allocated": -1},
    "negative available via reserved": {"reserved": 8},
    "negative available via allocated": {"allocated": 7},
    "negative available via on_hand": {"on_hand": 6},
}


@pytest.mark.parametrize("case", IMPOSSIBLE)
async def test_check_constraints_refuse_impossible_levels(
    db: Database, make_sku: SkuFactory, receive: Receiver, case: str
) -> None:
    sku_id = await make_sku("CHECKED")
    await receive("CHECKED", 10)
    async with db.transaction() as session:
        await session.execute(
            update(StockLevel).where(StockLevel.sku_id == sku_id).values(reserved=4, allocated=3)
        )

    with pytest.raises(IntegrityError):
        async with db.transaction() as session:
            await session.execute(
                update(StockLevel).where(StockLevel.sku_id == sku_id).values(**IMPOSSIBLE[case])
            )

    async with db.transaction(write=False) as session:
        level = (
            await session.execute(select(StockLevel).where(StockLevel.sku_id == sku_id))
        ).scalar_one()
        assert (level.on_hand, level.reserved, level.allocated) == (10, 4, 3)
