"""Concurrent tree changes on PostgreSQL: moves never build a cycle, and a child created
while its ancestor moves gets the new path."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from storekeeper.catalog import service
from storekeeper.catalog.models import Category
from storekeeper.catalog.schemas import CategoryCreate, CategoryUpdate
from storekeeper.db import Database
from storekeeper.errors import Conflict

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
