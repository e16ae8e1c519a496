"""`storekeeper seed --demo` loads a realistic catalog, and a second run changes nothing."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from storekeeper.catalog import service
from storekeeper.catalog.demo import seed_demo_catalog
from storekeeper.catalog.models import Category
from storekeeper.catalog.schemas import ProductUpdate
from storekeeper.db import Database
from tests.catalog.conftest import API, catalog_row_counts


async def test_demo_catalog_is_idempotent(db: Database, client: httpx.AsyncClient) -> None:
    first = await db.run(seed_demo_catalog)
    counts = await catalog_row_counts(db)
    assert counts == (24, 50, 150)
    assert first.created == 24 + 50 + 150
    assert len(first.skus) == 150

    second = await db.run(seed_demo_catalog)
    assert second.created == 0
    assert await catalog_row_counts(db) == counts
    assert [sku.id for sku in second.skus] == [sku.id for sku in first.skus]
    async with db.transaction(write=False) as session:
        deepest = await session.scalar(select(func.max(Category.depth)))
        latest_update = await session.scalar(select(func.max(Category.updated_at)))
    assert deepest == 2
    assert latest_update == max(category.updated_at for category in first.categories)

    sizes = {sku.attributes["size"] for sku in first.skus}
    colours = {sku.attributes["colour"] for sku in first.skus}
    assert {"S", "M", "L", "42", "one size"} <= sizes
    assert len(colours) == 6
    footwear = next(c for c in first.categories if c.name == "Footwear")
    listed = await client.get(f"{API}/products", params={"category_id": footwear.id, "limit": 200})
    assert len(listed.json()["items"]) == 12


async def test_demo_seed_leaves_staff_edits_alone(db: Database) -> None:
    first = await db.run(seed_demo_catalog)
    renamed, removed = first.products[0], first.products[1]
    other_category = next(c for c in first.categories if c.name == "Footwear")
    async with db.transaction() as session:
        await service.update_product(
            session, renamed.id, ProductUpdate(name="Renamed tee", category_id=other_category.id)
        )
        await service.delete_product(session, removed.id)
    counts = await catalog_row_counts(db)

    second = await db.run(seed_demo_catalog)

    assert second.created == 0
    assert await catalog_row_counts(db) == counts
    assert removed.id not in {product.id for product in second.products}
    kept = next(product for product in second.products if product.id == renamed.id)
    assert (kept.name, kept.category_id) == ("Renamed tee", other_category.id)
    assert len(second.skus) == 147
