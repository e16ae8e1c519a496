"""A small shop for page tests, built through the domain services where they exist."""

from __future__ import annotations

from dataclasses import dataclass

from storekeeper.catalog.models import Category, Product, Sku
from storekeeper.config import LockingStrategy, StockPolicy
from storekeeper.db import Database
from storekeeper.inventory import stock as inventory_stock


@dataclass(frozen=True)
class Shop:
    category_id: int
    product_id: int
    sku_codes: tuple[str, ...]


async def stocked_shop(db: Database, stock: dict[str, int]) -> Shop:
    """One category and product with a SKU per entry of `stock`, received at MAIN."""
    async with db.transaction() as session:
        category = Category(name="Tools", path="/", depth=0)
        session.add(category)
        await session.flush()
        category.path = f"/{category.id}/"
        product = Product(name="Claw hammer", category_id=category.id)
        session.add(product)
        await session.flush()
        session.add_all(
            Sku(code=code, product_id=product.id, price_cents=1250, currency="USD")
            for code in stock
        )
        await session.flush()
        for code, units in stock.items():
            if units:
                await inventory_stock.adjust_stock(
                    session,
                    code,
                    delta=units,
                    reason="receive",
                    policy=StockPolicy(LockingStrategy.ATOMIC),
                )
    return Shop(category.id, product.id, tuple(stock))
