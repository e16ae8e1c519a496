"""`seed --demo` places the demo customer's orders once, one in each status."""

from __future__ import annotations

from sqlalchemy import select

from storekeeper.catalog.models import Sku
from storekeeper.db import Database
from storekeeper.inventory.consistency import check_consistency
from storekeeper.orders.demo import seed_demo_orders
from storekeeper.orders.models import Order
from storekeeper.seed import seed


async def test_demo_seed_places_orders_in_every_status_once(db: Database) -> None:
    await seed(db, db.settings, demo=True)
    async with db.transaction() as session:
        skus = (await session.scalars(select(Sku).order_by(Sku.id))).all()
        assert await seed_demo_orders(session, skus) == 0
    async with db.transaction(write=False) as session:
        orders = (
            await session.execute(
                select(Order.idempotency_key, Order.status).order_by(Order.idempotency_key)
            )
        ).all()
        report = await check_consistency(session)
    assert [tuple(row) for row in orders] == [
        ("demo-order-1", "pending"),
        ("demo-order-2", "paid"),
        ("demo-order-3", "shipped"),
        ("demo-order-4", "cancelled"),
        ("demo-order-5", "pending"),
    ]
    assert report.is_consistent
