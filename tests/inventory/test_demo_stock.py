"""`seed --demo` gives the demo SKUs stock, once, through the ledger."""

from __future__ import annotations

from sqlalchemy import func, select

from storekeeper.db import Database
from storekeeper.inventory.consistency import check_consistency
from storekeeper.inventory.models import StockLevel, StockMovement
from storekeeper.seed import seed


async def test_demo_seed_stocks_every_demo_sku_once(db: Database) -> None:
    await seed(db, db.settings, demo=True)
    await seed(db, db.settings, demo=True)
    async with db.transaction(write=False) as session:
        levels = (await session.execute(select(StockLevel.on_hand))).scalars().all()
        receipts = await session.scalar(
            select(func.count()).select_from(StockMovement).where(StockMovement.kind == "receive")
        )
        report = await check_consistency(session)
    assert len(levels) == 150
    assert receipts == 150
    assert min(levels) >= 1
    assert report.is_consistent
