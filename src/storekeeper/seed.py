"""Seed data: what `storekeeper seed [--demo]` puts in the database. Every part is
idempotent, so seeding twice changes nothing."""

from __future__ import annotations

from storekeeper.accounts.service import (
    bootstrap_admin_of,
    ensure_bootstrap_admin,
    seed_demo_users,
)
from storekeeper.catalog.demo import seed_demo_catalog
from storekeeper.config import Settings
from storekeeper.db import Database, UnitOfWork
from storekeeper.inventory.demo import seed_demo_stock
from storekeeper.orders.demo import seed_demo_orders


async def seed(db: Database, settings: Settings, *, demo: bool) -> None:
    """The bootstrap admin (when the settings name one), and with `demo` the demo users,
    catalog, stock and orders, each part in a unit of work of its own."""
    uow = UnitOfWork(db)
    admin = bootstrap_admin_of(settings)
    if admin is not None:
        await uow.run(ensure_bootstrap_admin, admin)
    if demo:
        await uow.run(seed_demo_users)
        catalog = await uow.run(seed_demo_catalog)
        await uow.run(seed_demo_stock, skus=catalog.skus)
        await uow.run(seed_demo_orders, skus=catalog.skus)
