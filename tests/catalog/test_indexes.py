"""The PostgreSQL plans of the catalog's hot predicates use their indexes."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from storekeeper.catalog.models import SEARCH_VECTOR_SQL
from storekeeper.db import Database

pytestmark = pytest.mark.usefixtures("postgres_only")

PLANS = {
    "ix_products_search": (
        f"SELECT id FROM products WHERE {SEARCH_VECTOR_SQL} "
        "@@ websearch_to_tsquery('english'::regconfig, 'cotton shirt')"
    ),
    "ix_categories_path": "SELECT id FROM categories WHERE path >= '/1/' AND path < '/10'",
    "ix_products_category_id_id": (
        "SELECT id FROM products WHERE category_id = 3 AND id > 10 ORDER BY id LIMIT 51"
    ),
    "ix_categories_parent_id_id": (
        "SELECT id FROM categories WHERE parent_id = 3 AND id > 10 ORDER BY id LIMIT 51"
    ),
    "ix_skus_product_id_id": (
        "SELECT id FROM skus WHERE product_id = 3 AND id > 10 ORDER BY id LIMIT 51"
    ),
}


@pytest.mark.parametrize("index", PLANS)
async def test_predicate_is_served_by_its_index(db: Database, index: str) -> None:
    async with db.transaction(write=False) as session:
        # The tables are tiny in tests; take sequential scans off the table so the plan
        # shows whether the index can serve the predicate at all.
        await session.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join((await session.scalars(text(f"EXPLAIN {PLANS[index]}"))).all())
    assert index in plan
