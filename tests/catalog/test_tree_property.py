"""Property: random creates and moves never make a cycle, and every path stays equal to the
chain of parents (checked against the real database, both backends)."""

from __future__ import annotations

import asyncio
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from storekeeper.catalog import service
from storekeeper.catalog.models import Category
from storekeeper.catalog.schemas import CategoryCreate, CategoryUpdate
from storekeeper.config import Settings
from storekeeper.db import Database
from storekeeper.errors import Conflict

# An operation names nodes by their index among the nodes created so far in the example
# (taken modulo that count); None means "the top level".
Create = tuple[str, int | None]
Move = tuple[str, int, int | None]

operations = st.lists(
    st.one_of(
        st.tuples(st.just("create"), st.none() | st.integers(0, 30)),
        st.tuples(st.just("move"), st.integers(0, 30), st.none() | st.integers(0, 30)),
    ),
    min_size=1,
    max_size=14,
)


def _chain(parents: dict[int, int | None], node: int) -> list[int]:
    chain = [node]
    while (parent := parents[chain[-1]]) is not None:
        assert parent not in chain, f"cycle through {parent}"
        chain.append(parent)
    return list(reversed(chain))


async def _run(app_settings: Settings, ops: list[Create | Move]) -> None:
    db = Database(app_settings)
    prefix = uuid.uuid4().hex[:8]
    ids: list[int] = []
    expected_parent: dict[int, int | None] = {}
    try:
        for op in ops:
            if op[0] == "create" or not ids:
                parent = ids[op[1] % len(ids)] if ids and op[1] is not None else None
                async with db.transaction() as session:
                    data = CategoryCreate(name=f"{prefix}-{len(ids)}", parent_id=parent)
                    created = await service.create_category(session, data)
                ids.append(created.id)
                expected_parent[created.id] = parent
                continue
            node = ids[op[1] % len(ids)]
            target = ids[op[2] % len(ids)] if op[2] is not None else None
            makes_cycle = target is not None and node in _chain(expected_parent, target)
            try:
                async with db.transaction() as session:
                    await service.update_category(session, node, CategoryUpdate(parent_id=target))
            except Conflict:
                assert makes_cycle, f"move of {node} under {target} refused without a cycle"
            else:
                assert not makes_cycle, f"move of {node} under {target} made a cycle"
                expected_parent[node] = target

        async with db.transaction(write=False) as session:
            rows = (await session.scalars(select(Category).where(Category.id.in_(ids)))).all()
        parents = {row.id: row.parent_id for row in rows}
        assert parents == expected_parent
        for row in rows:
            chain = _chain(parents, row.id)
            assert row.path == "/" + "".join(f"{node}/" for node in chain)
            assert row.depth == len(chain) - 1
    finally:
        await db.dispose()


@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=operations)
def test_creates_and_moves_keep_the_tree_consistent(
    settings: Settings, ops: list[Create | Move]
) -> None:
    asyncio.run(_run(settings, ops))
