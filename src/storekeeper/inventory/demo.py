"""Demo stock for `storekeeper seed --demo`: every demo SKU is received once, as a
warehouse would, so its ledger explains its figures. Idempotent: SKUs that already have
stock are left alone."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper.catalog.models import Sku
from storekeeper.inventory import stock
from storekeeper.inventory.models import StockLevel

# A spread of quantities, a few of them low, so low-stock views have something to show.
DEMO_QUANTITIES = (40, 25, 12, 60, 3, 18, 90, 7, 33, 2, 50, 15)


async def seed_demo_stock(session: AsyncSession, skus: Sequence[Sku]) -> int:
    """Receive demo stock for every SKU in `skus` that has none yet; returns how many."""
    stocked = set(
        (
            await session.scalars(
                select(StockLevel.sku_id).where(StockLevel.sku_id.in_([sku.id for sku in skus]))
            )
        ).all()
    )
    received = 0
    for index, sku in enumerate(skus):
        if sku.id in stocked:
            continue
        await stock.adjust_stock(
            session,
            sku.code,
            delta=DEMO_QUANTITIES[index % len(DEMO_QUANTITIES)],
            reason="receive",
            note="Demo stock",
        )
        received += 1
    return received
