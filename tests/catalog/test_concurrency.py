"""Concurrent catalog changes on PostgreSQL: moves never build a cycle, a child created while
its ancestor moves gets the new path, a category delete never misses a product being
created, and one SKU code is created once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper.catalog import service
from storekeeper.catalog.models import Category, Product
from storekeeper.catalog.schemas import CategoryCreate, CategoryUpdate, ProductCreate, SkuCreate
from storekeeper.db import Database
from storekeeper.errors import Conflict, StorekeeperError

pytestmark = pytest.mark.usefixtures("postgres_only")


async def _create(db: Database, name: str, parent_id: int | None = None) -> int:
    async with db.transaction() as session:
        category = await service.create_category(
            session, CategoryCreate(name=name, parent_id=parent_id)
        )
        return category.id


async def _move(db: Database, category_id: int, parent_id: int | None) -> str:
    try:
        async with db.transaction() as session:
            await service.update_category(session, category_id, CategoryUpdate(parent_id=parent_id))
    except Conflict:
        return "conflict"
    return "moved"


async def _assert_paths_follow_parents(db: Database) -> None:
    async with db.transaction(write=False) as session:
        rows = (await session.scalars(select(Category))).all()
    parents = {row.id: row.parent_id for row in rows}
    for row in rows:
        chain = [row.id]
        while (parent := parents[chain[-1]]) is not None:
            assert parent not in chain, "cycle"
            chain.append(parent)
        assert row.path == "/" + "".join(f"{node}/" for node in reversed(chain))
        assert row.depth == len(chain) - 1


async def test_crossing_moves_never_make_a_cycle(db: Database) -> None:
    for round_number in range(8):
        a = await _create(db, f"A{round_number}")
        b = await _create(db, f"B{round_number}")
        outcomes = await asyncio.gather(_move(db, a, b), _move(db, b, a))
        assert sorted(outcomes) == ["conflict", "moved"]
    await _assert_paths_follow_parents(db)


async def test_child_created_during_a_move_gets_the_new_path(db: Database) -> None:
    for round_number in range(8):
        top = await _create(db, f"Top{round_number}")
        middle = await _create(db, "Middle", top)
        target = await _create(db, f"Target{round_number}")
        moved, _child = await asyncio.gather(
            _move(db, top, target), _create(db, f"Child{round_number}", middle)
        )
        assert moved == "moved"
    await _assert_paths_follow_parents(db)


async def _outcome(db: Database, work: Any) -> str:
    try:
        async with db.transaction() as session:
            await work(session)
    except StorekeeperError as exc:
        return exc.code
    return "ok"


async def test_category_delete_never_misses_a_product_being_created(db: Database) -> None:
    for round_number in range(8):
        category_id = await _create(db, f"Shelf{round_number}")
        product = ProductCreate(name="Racing", category_id=category_id)

        async def create(session: AsyncSession, data: ProductCreate = product) -> None:
            await service.create_product(session, data, "USD")

        async def delete(session: AsyncSession, target: int = category_id) -> None:
            await service.delete_category(session, target)

        outcomes = await asyncio.gather(_outcome(db, create), _outcome(db, delete))
        assert sorted(outcomes) in (["conflict", "ok"], ["ok", "validation_error"])
    async with db.transaction(write=False) as session:
        orphans = await session.scalar(
            select(func.count())
            .select_from(Product)
            .join(Category, Category.id == Product.category_id)
            .where(Category.is_deleted.is_(True), Product.is_deleted.is_(False))
        )
    assert orphans == 0


async def test_concurrent_creates_of_one_sku_code_make_one_sku(db: Database) -> None:
    category_id = await _create(db, "Codes")
    async with db.transaction() as session:
        product = await service.create_product(
            session, ProductCreate(name="Coded", category_id=category_id), "USD"
        )
    for round_number in range(8):
        sku = SkuCreate(product_id=product.id, code=f"RACE-{round_number}", price_cents=1)

        async def create(session: AsyncSession, data: SkuCreate = sku) -> None:
            await service.create_sku(session, data, "USD")

        outcomes = await asyncio.gather(*(_outcome(db, create) for _ in range(3)))
        assert sorted(outcomes) == ["conflict", "conflict", "ok"]
