"""Test harness.

Every database test runs on SQLite and, when STOREKEEPER_TEST_DATABASE_URL points at a
PostgreSQL server, again on PostgreSQL. Each run gets a fresh database built by the
migrations; each test starts from the freshly migrated state.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Uuid, make_url, text
from sqlalchemy import bindparam as sa_bindparam
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from storekeeper import migrate
from storekeeper.accounts.models import Role, User
from storekeeper.accounts.security import create_access_token, hash_password
from storekeeper.app import create_app
from storekeeper.config import Environment, Settings
from storekeeper.db import Database, UTCDateTime, utcnow

POSTGRES_URL = os.environ.get("STOREKEEPER_TEST_DATABASE_URL")
REQUIRE_POSTGRES = os.environ.get("STOREKEEPER_TEST_REQUIRE_POSTGRES") == "1"
BACKENDS = ["sqlite", "postgresql"]

# One argon2 hash for every test user: hashing is deliberately slow.
TEST_PASSWORD = "correct horse battery"
_TEST_PASSWORD_HASH = hash_password(TEST_PASSWORD)


@dataclass
class TestDatabase:
    """A migrated database for one test run and the way to reset it between tests."""

    backend: str
    url: str
    reset: Callable[[], Awaitable[None]]
    teardown: Callable[[], Awaitable[None]]


async def _make_sqlite(tmp: Path) -> TestDatabase:
    template = tmp / "template.db"
    await asyncio.to_thread(migrate.upgrade, f"sqlite+aiosqlite:///{template}")
    live = tmp / "test.db"

    async def reset() -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{live}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(template, live)

    async def teardown() -> None:
        shutil.rmtree(tmp, ignore_errors=True)

    await reset()
    return TestDatabase("sqlite", f"sqlite+aiosqlite:///{live}", reset, teardown)


async def _make_postgres(base_url: str) -> TestDatabase:
    url = make_url(base_url)
    name = f"storekeeper_test_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(url, isolation_level="AUTOCOMMIT", pool_size=1)
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    test_url = url.set(database=name).render_as_string(hide_password=False)
    await asyncio.to_thread(migrate.upgrade, test_url)

    engine = create_async_engine(test_url, pool_size=1)
    async with engine.connect() as conn:
        tables = [
            row[0]
            for row in await conn.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                    "AND tablename <> 'alembic_version'"
                )
            )
        ]
        # Rows the migrations themselves wrote (the MAIN location) are put back after
        # each test's truncate.
        seeded: dict[str, list[dict[str, Any]]] = {}
        for table in tables:
            rows = (await conn.execute(text(f'SELECT * FROM "{table}"'))).mappings().all()
            if rows:
                seeded[table] = [dict(row) for row in rows]

    async def reset() -> None:
        async with engine.begin() as conn:
            joined = ", ".join(f'"{t}"' for t in tables)
            await conn.execute(text(f"TRUNCATE {joined} RESTART IDENTITY CASCADE"))
            for table, rows in seeded.items():
                columns = list(rows[0])
                cols = ", ".join(f'"{c}"' for c in columns)
                params = ", ".join(f":{c}" for c in columns)
                await conn.execute(text(f'INSERT INTO "{table}" ({cols}) VALUES ({params})'), rows)
                await conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), "
                        f'(SELECT MAX(id) FROM "{table}"))'
                    )
                )

    async def teardown() -> None:
        await engine.dispose()
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()

    return TestDatabase("postgresql", test_url, reset, teardown)


def _postgres_unavailable(reason: str) -> None:
    if REQUIRE_POSTGRES:
        pytest.fail(f"PostgreSQL is required for this run but {reason}")
    pytest.skip(f"PostgreSQL tests skipped: {reason}")


@pytest.fixture(scope="session", params=BACKENDS)
async def test_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[TestDatabase]:
    if request.param == "sqlite":
        database = await _make_sqlite(tmp_path_factory.mktemp("sqlite"))
    else:
        if not POSTGRES_URL:
            _postgres_unavailable("STOREKEEPER_TEST_DATABASE_URL is not set")
        try:
            database = await _make_postgres(POSTGRES_URL or "")
        except (OSError, ConnectionError) as exc:
            _postgres_unavailable(f"the server is unreachable ({exc})")
    try:
        yield database
    finally:
        await database.teardown()


@pytest.fixture
def backend(test_database: TestDatabase) -> str:
    return test_database.backend


@pytest.fixture
def settings(test_database: TestDatabase) -> Settings:
    return Settings(
        database_url=test_database.url,
        env=Environment.TEST,
        run_background_tasks=False,
        rate_limit_enabled=False,
        log_format="console",
        log_level="WARNING",
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture
async def app(test_database: TestDatabase, settings: Settings) -> AsyncIterator[Any]:
    await test_database.reset()
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def db(app: Any) -> Database:
    database: Database = app.state.db
    return database


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


UserFactory = Callable[..., Awaitable[User]]


@pytest.fixture
def make_user(db: Database) -> UserFactory:
    """Create a user directly in the database (password: TEST_PASSWORD)."""
    counter = iter(range(1, 1_000_000))

    async def _make(role: Role = Role.CUSTOMER, email: str | None = None, **fields: Any) -> User:
        email = email or f"{role.value}{next(counter)}@example.com"
        async with db.transaction() as session:
            user = User(
                email=email,
                password_hash=_TEST_PASSWORD_HASH,
                role=role.value,
                full_name=fields.pop("full_name", f"Test {role.value.title()}"),
                **fields,
            )
            session.add(user)
            await session.flush()
        return user

    return _make


def _record_sign_in(database_url: str, user_id: int, sign_in_id: uuid.UUID) -> None:
    """Insert a live API sign-in row on a connection of its own (in a thread with its own
    event loop, so that the synchronous `bearer` can be called from async tests)."""

    async def _insert() -> None:
        engine = create_async_engine(database_url, poolclass=NullPool)
        now = utcnow()
        try:
            async with engine.begin() as conn:
                await conn.execute(
                    text(
                        "INSERT INTO sign_ins (id, user_id, kind, created_at, expires_at) "
                        "VALUES (:id, :user_id, 'api', :now, :expires_at)"
                    ).bindparams(
                        sa_bindparam("id", type_=Uuid()),
                        sa_bindparam("now", type_=UTCDateTime()),
                        sa_bindparam("expires_at", type_=UTCDateTime()),
                    ),
                    {
                        "id": sign_in_id,
                        "user_id": user_id,
                        "now": now,
                        "expires_at": now + timedelta(days=1),
                    },
                )
        finally:
            await engine.dispose()

    failure: list[BaseException] = []

    def _run() -> None:
        try:
            asyncio.run(_insert())
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    worker = threading.Thread(target=_run)
    worker.start()
    worker.join()
    if failure:
        raise failure[0]


def access_token_for(settings: Settings, user: User) -> str:
    """An access token of a new, live API sign-in of `user` (recorded in the database)."""
    sign_in_id = uuid.uuid4()
    _record_sign_in(settings.database_url, user.id, sign_in_id)
    return create_access_token(settings, user_id=user.id, role=user.role, sign_in_id=sign_in_id)


def bearer(settings: Settings, user: User) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token_for(settings, user)}"}


@pytest.fixture
async def admin_user(make_user: UserFactory) -> User:
    return await make_user(Role.ADMIN, email="admin@example.com")


@pytest.fixture
async def staff_user(make_user: UserFactory) -> User:
    return await make_user(Role.STAFF, email="staff@example.com")


@pytest.fixture
async def customer_user(make_user: UserFactory) -> User:
    return await make_user(Role.CUSTOMER, email="customer@example.com")


@pytest.fixture
def admin_headers(settings: Settings, admin_user: User) -> dict[str, str]:
    return bearer(settings, admin_user)


@pytest.fixture
def staff_headers(settings: Settings, staff_user: User) -> dict[str, str]:
    return bearer(settings, staff_user)


@pytest.fixture
def customer_headers(settings: Settings, customer_user: User) -> dict[str, str]:
    return bearer(settings, customer_user)


@pytest.fixture
def postgres_only(backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("PostgreSQL only")
