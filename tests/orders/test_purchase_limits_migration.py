"""Migration 0013 (purchase limits, client tokens per creator) on a database of its own, on
SQLite and PostgreSQL: the upgrade keeps reservations, their lines and the orders on them
(SQLite rebuilds the table), scopes client tokens per creator, adds
`skus.max_per_customer` and `customer_purchases`; the tables match the models; the
downgrade restores global tokens; upgrading again works."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import make_url, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from storekeeper.db import Base
from storekeeper.migrate import alembic_config
from tests import conftest

BEFORE = "0012"
OURS = ("reservations", "customer_purchases", "skus")


@pytest.fixture
async def scratch_url(test_database: conftest.TestDatabase, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database on the backend of this run, dropped afterwards."""
    if test_database.backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'scratch.db'}"
        return
    url = make_url(test_database.url)
    name = f"storekeeper_mig_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(url, isolation_level="AUTOCOMMIT", pool_size=1)
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


async def _migrate(url: str, action: str, revision: str) -> None:
    await asyncio.to_thread(getattr(command, action), alembic_config(url), revision)


async def _run(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.begin() as conn:
        result = await conn.execute(text(sql), params)
        return list(result.all()) if result.returns_rows else []


async def _refused(engine: AsyncEngine, sql: str, **params: Any) -> bool:
    try:
        await _run(engine, sql, **params)
    except IntegrityError:
        return True
    return False


def _ours(name: str | None, type_: str, *_: Any) -> bool:
    return type_ != "table" or name in OURS


def _ours_in_metadata(item: Any, name: str | None, type_: str, *_: Any) -> bool:
    table = item if type_ == "table" else getattr(item, "table", None)
    return table is None or table.name in OURS


async def _model_differences(engine: AsyncEngine) -> list[Any]:
    options = {"compare_type": True, "include_name": _ours, "include_object": _ours_in_metadata}
    async with engine.connect() as conn:
        diffs: list[Any] = await conn.run_sync(
            lambda sync: compare_metadata(
                MigrationContext.configure(sync, opts=options), Base.metadata
            )
        )
    return diffs


NOW = "CURRENT_TIMESTAMP"
RESERVATION = (
    "INSERT INTO reservations (id, client_token, request_fingerprint, status, created_by, "
    f"created_at, updated_at) VALUES (:id, :token, 'f', 'allocated', :by, {NOW}, {NOW})"
)


class Ids:
    """UUIDs as each backend stores them through plain SQL."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.sqlite = engine.dialect.name == "sqlite"

    def new(self) -> Any:
        value = uuid.uuid4()
        return value.hex if self.sqlite else value


async def _arrange(engine: AsyncEngine, ids: Ids) -> Any:
    """Two users, a SKU with stock, an order on an allocation with one line."""
    for n in (1, 2):
        await _run(
            engine,
            "INSERT INTO users (id, email, password_hash, role, is_active, created_at, "
            f"updated_at) VALUES (:id, :email, 'x', 'staff', true, {NOW}, {NOW})",
            id=n,
            email=f"user{n}@example.com",
        )
    await _run(
        engine,
        "INSERT INTO categories (id, name, path, depth, attributes, version, created_at, "
        f"updated_at) VALUES (1, 'C', '/', 0, '{{}}', 1, {NOW}, {NOW})",
    )
    await _run(
        engine,
        "INSERT INTO products (id, name, category_id, attributes, version, created_at, "
        f"updated_at) VALUES (1, 'P', 1, '{{}}', 1, {NOW}, {NOW})",
    )
    await _run(
        engine,
        "INSERT INTO skus (id, code, product_id, price_cents, currency, attributes, version, "
        f"created_at, updated_at) VALUES (1, 'A', 1, 100, 'USD', '{{}}', 1, {NOW}, {NOW})",
    )
    await _run(
        engine,
        "INSERT INTO stock_levels (id, sku_id, location_id, on_hand, reserved, allocated, "
        f"version, updated_at) VALUES (1, 1, 1, 10, 0, 2, 1, {NOW})",
    )
    allocation = ids.new()
    await _run(engine, RESERVATION, id=allocation, token="order-token", by=1)
    await _run(
        engine,
        "INSERT INTO reservation_lines (reservation_id, sku_id, location_id, quantity) "
        "VALUES (:id, 1, 1, 2)",
        id=allocation,
    )
    await _run(
        engine,
        "INSERT INTO orders (id, user_id, created_by, status, currency, total_cents, "
        f"allocation_id, version, created_at, updated_at) VALUES (:id, 1, 1, 'pending', 'USD', "
        f"200, :allocation, 1, {NOW}, {NOW})",
        id=ids.new(),
        allocation=allocation,
    )
    return allocation


async def _kept(engine: AsyncEngine) -> None:
    assert await _run(engine, "SELECT sku_id, quantity FROM reservation_lines") == [(1, 2)]
    assert await _run(engine, "SELECT count(*) FROM orders") == [(1,)]
    assert await _run(engine, "SELECT client_token, created_by FROM reservations") == [
        ("order-token", 1)
    ]


async def test_upgrade_and_downgrade_round_trip(scratch_url: str) -> None:
    await _migrate(scratch_url, "upgrade", BEFORE)
    engine = create_async_engine(scratch_url)
    try:
        ids = Ids(engine)
        await _arrange(engine, ids)
        assert await _refused(engine, RESERVATION, id=ids.new(), token="order-token", by=2)

        await _migrate(scratch_url, "upgrade", "0013")
        await _kept(engine)
        assert await _model_differences(engine) == []
        # Per creator: another creator's token is fine, the same creator's is refused.
        await _run(engine, RESERVATION, id=ids.new(), token="order-token", by=2)
        assert await _refused(engine, RESERVATION, id=ids.new(), token="order-token", by=1)
        # Reservations without a creator share one namespace.
        await _run(engine, RESERVATION, id=ids.new(), token="system", by=None)
        assert await _refused(engine, RESERVATION, id=ids.new(), token="system", by=None)
        # The limit and its counter.
        assert await _refused(engine, "UPDATE skus SET max_per_customer = 0")
        await _run(engine, "UPDATE skus SET max_per_customer = 3")
        await _run(
            engine, "INSERT INTO customer_purchases (user_id, sku_id, units) VALUES (1, 1, 2)"
        )
        assert await _refused(
            engine, "INSERT INTO customer_purchases (user_id, sku_id, units) VALUES (2, 1, -1)"
        )

        await _run(engine, "DELETE FROM reservations WHERE created_by IS NULL OR created_by = 2")
        await _migrate(scratch_url, "downgrade", BEFORE)
        await _kept(engine)
        assert await _refused(engine, RESERVATION, id=ids.new(), token="order-token", by=2)

        await _migrate(scratch_url, "upgrade", "0013")
        await _kept(engine)
        assert await _model_differences(engine) == []
    finally:
        await engine.dispose()
