"""Fixtures of the inventory tests: SKUs to stock, and a shortcut to receive stock."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper.catalog.models import Category, Product, Sku
from storekeeper.config import LockingStrategy, Settings, StockPolicy
from storekeeper.db import Database
from storekeeper.inventory import stock

SkuFactory = Callable[..., Awaitable[int]]
Receiver = Callable[..., Awaitable[None]]


async def insert_skus(
    session: AsyncSession, codes: list[str], *, deleted: bool = False
) -> list[int]:
    """Insert SKUs (under a fresh category and product) straight into the catalog tables."""
    category_id = (
        await session.execute(
            insert(Category)
            .values(name=f"Stock {uuid.uuid4().hex[:8]}", path="/", depth=0)
            .returning(Category.id)
        )
    ).scalar_one()
    product_id = (
        await session.execute(
            insert(Product)
            .values(name="Stocked product", category_id=category_id)
            .returning(Product.id)
        )
    ).scalar_one()
    ids = []
    for code in codes:
        ids.append(
            (
                await session.execute(
                    insert(Sku)
                    .values(
                        code=code.upper(),
                        product_id=product_id,
                        price_cents=1000,
                        currency="USD",
                        is_deleted=deleted,
                    )
                    .returning(Sku.id)
                )
            ).scalar_one()
        )
    return ids


@pytest.fixture
def make_sku(db: Database) -> SkuFactory:
    """Create a SKU; returns its id."""

    async def _make(code: str, *, deleted: bool = False) -> int:
        async with db.transaction() as session:
            (sku_id,) = await insert_skus(session, [code], deleted=deleted)
            return sku_id

    return _make


@pytest.fixture
def receive(db: Database) -> Receiver:
    """Receive stock through the service (as a warehouse would)."""

    async def _receive(code: str, quantity: int, location: str | None = None) -> None:
        async with db.transaction() as session:
            await stock.adjust_stock(
                session,
                code,
                delta=quantity,
                reason="receive",
                location_code=location,
                policy=StockPolicy(LockingStrategy.ATOMIC),
            )

    return _receive


@pytest.fixture(params=[strategy.value for strategy in LockingStrategy])
def locking(request: pytest.FixtureRequest, settings: Settings) -> LockingStrategy:
    """Runs the test once per locking strategy (the app reads the same settings object)."""
    settings.locking = LockingStrategy(request.param)
    return settings.locking
