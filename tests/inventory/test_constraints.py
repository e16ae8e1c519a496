"""The database itself refuses impossible stock levels, whatever code writes them."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from storekeeper.db import Database, utcnow
from storekeeper.inventory.models import ReservationLine, StockLevel, StockMovement
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


async def test_ledger_rows_and_reservation_lines_need_their_stock_level(
    db: Database, make_sku: SkuFactory, receive: Receiver
) -> None:
    stocked = await make_sku("STOCKED")
    unstocked = await make_sku("UNSTOCKED")
    await receive("STOCKED", 1)
    async with db.transaction(write=False) as session:
        location_id = (
            await session.execute(
                select(StockLevel.location_id).where(StockLevel.sku_id == stocked)
            )
        ).scalar_one()
    movement = {
        "location_id": location_id,
        "kind": "adjust",
        "on_hand_delta": 1,
        "reserved_delta": 0,
        "allocated_delta": 0,
        "created_at": utcnow(),
    }
    async with db.transaction() as session:
        await session.execute(insert(StockMovement).values(sku_id=stocked, **movement))
    with pytest.raises(IntegrityError):
        async with db.transaction() as session:
            await session.execute(insert(StockMovement).values(sku_id=unstocked, **movement))
    with pytest.raises(IntegrityError):
        async with db.transaction() as session:
            await session.execute(
                insert(ReservationLine).values(
                    reservation_id=uuid.uuid4(),
                    sku_id=unstocked,
                    location_id=location_id,
                    quantity=1,
                )
            )
