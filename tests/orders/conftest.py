"""Fixtures of the orders tests: priced SKUs with stock, stock figures, customers."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import event, insert, select

from storekeeper.accounts.models import Role
from storekeeper.catalog.models import Category, Product, Sku
from storekeeper.config import LockingStrategy, Settings, StockPolicy
from storekeeper.db import Database
from storekeeper.events.models import Event
from storekeeper.inventory import stock as inventory_stock
from tests.catalog.conftest import StatementCounter
from tests.conftest import UserFactory, bearer

API = "/api/v1"

SkuMaker = Callable[..., Awaitable[int]]
Figures = Callable[[str], Awaitable[tuple[int, int, int, int]]]
HeadersMaker = Callable[[], Awaitable[dict[str, str]]]


@pytest.fixture
def make_sku(db: Database) -> SkuMaker:
    """A SKU under its own product, with `stock` units received at MAIN; returns its id."""

    async def _make(
        code: str,
        *,
        price_cents: int = 1000,
        stock: int = 0,
        product_name: str | None = None,
        currency: str = "USD",
        deleted: bool = False,
    ) -> int:
        async with db.transaction() as session:
            category_id = (
                await session.execute(
                    insert(Category)
                    .values(name=f"Shop {uuid.uuid4().hex[:8]}", path="/", depth=0)
                    .returning(Category.id)
                )
            ).scalar_one()
            product_id = (
                await session.execute(
                    insert(Product)
                    .values(name=product_name or f"Product {code}", category_id=category_id)
                    .returning(Product.id)
                )
            ).scalar_one()
            sku_id: int = (
                await session.execute(
                    insert(Sku)
                    .values(
                        code=code.upper(),
                        product_id=product_id,
                        price_cents=price_cents,
                        currency=currency,
                        is_deleted=deleted,
                    )
                    .returning(Sku.id)
                )
            ).scalar_one()
        if stock:
            async with db.transaction() as session:
                await inventory_stock.adjust_stock(
                    session,
                    code,
                    delta=stock,
                    reason="receive",
                    policy=StockPolicy(LockingStrategy.ATOMIC),
                )
        return sku_id

    return _make


@pytest.fixture(params=[strategy.value for strategy in LockingStrategy])
def locking(request: pytest.FixtureRequest, settings: Settings) -> LockingStrategy:
    """Runs the test once per locking strategy (the app reads the same settings object)."""
    settings.locking = LockingStrategy(request.param)
    return settings.locking


@pytest.fixture
def statement_counter(db: Database) -> StatementCounter:
    counter = StatementCounter()
    event.listen(db.engine.sync_engine, "before_cursor_execute", counter)
    return counter


@pytest.fixture
def figures(client: httpx.AsyncClient, staff_headers: dict[str, str]) -> Figures:
    """(on_hand, reserved, allocated, available) of a SKU, as the inventory API reports."""

    async def _figures(code: str) -> tuple[int, int, int, int]:
        response = await client.get(f"{API}/inventory/{code}", headers=staff_headers)
        assert response.status_code == 200, response.text
        body = response.json()
        return body["on_hand"], body["reserved"], body["allocated"], body["available"]

    return _figures


@pytest.fixture
def make_customer(make_user: UserFactory, settings: Settings) -> HeadersMaker:
    """Another customer; returns their bearer headers."""

    async def _make() -> dict[str, str]:
        return bearer(settings, await make_user(Role.CUSTOMER))

    return _make


async def add_to_cart(
    client: httpx.AsyncClient, headers: dict[str, str], sku: str, quantity: int
) -> dict[str, Any]:
    response = await client.post(
        f"{API}/carts/me/items", headers=headers, json={"sku": sku, "quantity": quantity}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def consistency_issues(client: httpx.AsyncClient, staff: dict[str, str]) -> list[Any]:
    report = (await client.get(f"{API}/inventory/consistency", headers=staff)).json()
    issues: list[Any] = report["issues"]
    return issues


async def written_events(db: Database) -> list[tuple[str, dict[str, Any]]]:
    """Every order and hold event written so far, in write order: (type, data). Stock
    announcements, which the same changes write, are left out (tests/inventory/
    test_stock_events.py holds them)."""
    async with db.transaction(write=False) as session:
        rows = await session.execute(
            select(Event.type, Event.data).where(Event.type.not_like("stock.%")).order_by(Event.seq)
        )
        return [(row.type, row.data) for row in rows]
