"""Migration 0011 (the waitlist) on a database of its own, on SQLite and PostgreSQL: the
upgrade keeps the emails there are, makes emails unique per (event, kind, recipient) and
knows `back_in_stock`; the tables match the models; the downgrade removes the back-in-stock
emails and restores the old rules; upgrading again works."""

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

BEFORE = "0010"
OURS = ("emails", "waitlist_entries")


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


EMAIL = (
    "INSERT INTO emails (event_id, kind, to_address, subject, body_text, body_html, status, "
    "attempts, created_at) VALUES (1, :kind, :to, 'subject', 'text', 'html', 'skipped', 0, "
    "CURRENT_TIMESTAMP)"
)


async def _refused(engine: AsyncEngine, sql: str, **params: Any) -> bool:
    try:
        await _run(engine, sql, **params)
    except IntegrityError:
        return True
    return False


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda sync: sync.dialect.get_table_names(sync))
    return set(names)


def _ours(name: str | None, type_: str, *_: Any) -> bool:
    return type_ != "table" or name in OURS


def _ours_in_metadata(item: Any, name: str | None, type_: str, *_: Any) -> bool:
    table = item if type_ == "table" else getattr(item, "table", None)
    return table is None or table.name in OURS


async def _model_differences(engine: AsyncEngine) -> list[Any]:
    """What autogenerate would change in our tables to match the models (nothing)."""
    options = {"compare_type": True, "include_name": _ours, "include_object": _ours_in_metadata}
    async with engine.connect() as conn:
        diffs: list[Any] = await conn.run_sync(
            lambda sync: compare_metadata(
                MigrationContext.configure(sync, opts=options), Base.metadata
            )
        )
    return diffs


async def _due_index_is_partial(engine: AsyncEngine) -> None:
    """The senders' work list (a partial index) survives SQLite's rebuild of the table."""
    if engine.dialect.name == "sqlite":
        query = "SELECT sql FROM sqlite_master WHERE name = 'ix_emails_due'"
    else:
        query = "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_emails_due'"
    [(sql,)] = await _run(engine, query)
    assert "WHERE" in sql and "pending" in sql and "failed" in sql


async def test_upgrade_and_downgrade_round_trip(scratch_url: str) -> None:
    await _migrate(scratch_url, "upgrade", BEFORE)
    engine = create_async_engine(scratch_url)
    try:
        await _run(
            engine,
            "INSERT INTO events (id, type, occurred_at, data, published_at) "
            "VALUES (1, 'order.created', CURRENT_TIMESTAMP, '{}', CURRENT_TIMESTAMP)",
        )
        await _run(engine, EMAIL, kind="order_confirmation", to="ann@example.com")
        assert await _refused(engine, EMAIL, kind="back_in_stock", to="bob@example.com")

        await _migrate(scratch_url, "upgrade", "head")
        assert {"waitlist_entries", "emails"} <= await _tables(engine)
        assert await _model_differences(engine) == []
        assert await _run(engine, "SELECT kind, to_address FROM emails") == [
            ("order_confirmation", "ann@example.com")
        ]
        # One event, one kind, several recipients; never the same recipient twice.
        await _run(engine, EMAIL, kind="back_in_stock", to="ann@example.com")
        await _run(engine, EMAIL, kind="back_in_stock", to="bob@example.com")
        assert await _refused(engine, EMAIL, kind="back_in_stock", to="bob@example.com")
        assert await _refused(engine, EMAIL, kind="newsletter", to="cat@example.com")
        await _due_index_is_partial(engine)

        await _migrate(scratch_url, "downgrade", BEFORE)
        assert "waitlist_entries" not in await _tables(engine)
        assert await _run(engine, "SELECT kind, to_address FROM emails") == [
            ("order_confirmation", "ann@example.com")
        ]
        assert await _refused(engine, EMAIL, kind="back_in_stock", to="bob@example.com")
        assert await _refused(engine, EMAIL, kind="order_confirmation", to="bob@example.com")
        await _due_index_is_partial(engine)

        await _migrate(scratch_url, "upgrade", "head")
        assert await _model_differences(engine) == []
        await _run(engine, EMAIL, kind="back_in_stock", to="bob@example.com")
    finally:
        await engine.dispose()
