"""Seed data: what `storekeeper seed [--demo]` puts in the database. Every part is
idempotent, so seeding twice changes nothing."""

from __future__ import annotations

from functools import partial

from storekeeper.accounts.service import ensure_bootstrap_admin, seed_demo_users
from storekeeper.catalog.demo import seed_demo_catalog
from storekeeper.config import Settings
from storekeeper.db import Database
from storekeeper.inventory.demo import seed_demo_stock
from storekeeper.orders.demo import seed_demo_orders


async def seed(db: Database, settings: Settings, *, demo: bool) -> None:
    await ensure_bootstrap_admin(db, settings)
    if demo:
        await db.run(seed_demo_users)
        catalog = await db.run(seed_demo_catalog)
        await db.run(partial(seed_demo_stock, skus=catalog.skus))
        await db.run(partial(seed_demo_orders, skus=catalog.skus))
