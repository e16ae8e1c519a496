"""Catalog test helpers: create categories, products and SKUs through the API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine import Connection

from storekeeper.catalog.models import Category, Product, Sku
from storekeeper.db import Database

API = "/api/v1"

Maker = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def make_category(client: httpx.AsyncClient, staff_headers: dict[str, str]) -> Maker:
    async def _make(name: str, parent_id: int | None = None, **fields: Any) -> dict[str, Any]:
        body = {"name": name, "parent_id": parent_id, **fields}
        response = await client.post(f"{API}/categories", json=body, headers=staff_headers)
        assert response.status_code == 201, response.text
        return response.json()

    return _make


@pytest.fixture
def make_product(client: httpx.AsyncClient, staff_headers: dict[str, str]) -> Maker:
    async def _make(name: str, category_id: int, **fields: Any) -> dict[str, Any]:
        body = {"name": name, "category_id": category_id, **fields}
        response = await client.post(f"{API}/products", json=body, headers=staff_headers)
        assert response.status_code == 201, response.text
        return response.json()

    return _make


class StatementCounter:
    """Counts the SQL statements the engine sends while active."""

    def __init__(self) -> None:
        self.count = 0
        self.active = False

    def __call__(self, _conn: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        if self.active:
            self.count += 1


@pytest.fixture
def statement_counter(db: Database) -> StatementCounter:
    counter = StatementCounter()
    event.listen(db.engine.sync_engine, "before_cursor_execute", counter)
    return counter


async def catalog_row_counts(db: Database) -> tuple[int, int, int]:
    """(categories, products, skus) rows, deleted ones included."""
    async with db.transaction(write=False) as session:
        counts = await session.execute(
            select(
                select(func.count()).select_from(Category).scalar_subquery(),
                select(func.count()).select_from(Product).scalar_subquery(),
                select(func.count()).select_from(Sku).scalar_subquery(),
            )
        )
        categories, products, skus = counts.one()
    return categories, products, skus
