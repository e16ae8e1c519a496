"""Database access: the declarative base, the engine, units of work and column types.

Every request or background job runs its work as units of work, and there is one way to
open one: `UnitOfWork.run(service_function, *args)` (a request gets its `UnitOfWork` from
the `UnitOfWorkDep` dependency; jobs and commands build one from their `Database`). A unit
is one transaction (`Database.transaction`): it commits when the service function returns
and rolls back on any error, and a retryable conflict (optimistic version clash,
serialization failure, deadlock) re-runs the whole unit. Services take the session, flush
and never commit; what must happen only once the work is committed (metrics) is registered
with `after_commit`, and what must be the unit's last work before its commit (stock
announcements, which read the totals a unit's stock changes left) with `before_commit`.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, Concatenate, ParamSpec, TypeVar, cast

from fastapi import Depends, Request
from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Integer, MetaData, Uuid, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection
from sqlalchemy.engine import Row
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.types import TypeDecorator

from storekeeper.config import Settings
from storekeeper.errors import RetryableError, sqlstate_of

T = TypeVar("T")
P = ParamSpec("P")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# PostgreSQL error classes worth re-running a whole unit of work for.
_RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization_failure, deadlock_detected


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite stores no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments INTEGER PRIMARY KEY columns; PostgreSQL gets a real bigint.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSONType,
        uuid.UUID: Uuid(),
    }


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


def create_engine(settings: Settings) -> AsyncEngine:
    if settings.is_sqlite:
        engine = create_async_engine(
            settings.database_url,
            echo=settings.db_echo,
            connect_args={"timeout": 30},
        )
        _configure_sqlite(engine)
        return engine
    server_settings = {"application_name": "storekeeper", "timezone": "UTC"}
    if not settings.db_pgbouncer:
        # PgBouncer refuses startup parameters it does not track; behind it the timeout
        # is the role's or database's setting (ALTER ROLE ... SET statement_timeout).
        server_settings["statement_timeout"] = str(settings.db_statement_timeout_ms)
    connect_args: dict[str, Any] = {
        "server_settings": server_settings,
        # The driver's own limit, a little above the server's; none when that is off (0).
        "command_timeout": settings.db_statement_timeout_ms / 1000 + 5
        if settings.db_statement_timeout_ms
        else None,
    }
    if settings.db_pgbouncer:
        # PgBouncer in transaction mode hands each transaction whichever server connection
        # is free, and (1.18) keeps no prepared statements: a statement prepared in one
        # transaction must never be reused in another (no cache, in SQLAlchemy or in
        # asyncpg), and names must not collide with a statement another client left
        # behind on the same server connection (a unique name each time).
        connect_args |= {
            "prepared_statement_cache_size": 0,
            "prepared_statement_name_func": _unique_statement_name,
            "statement_cache_size": 0,
        }
    return create_async_engine(
        settings.database_url,
        echo=settings.db_echo,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        # No ping on checkout: on asyncpg it costs three round trips (BEGIN, ping,
        # ROLLBACK) per unit of work. A connection the server dropped fails its first
        # statement instead; SQLAlchemy then recognises the disconnect and discards the
        # pool's connections, that one request gets 503 and the next ones reconnect.
        pool_pre_ping=False,
        pool_recycle=1800,
        connect_args=connect_args,
    )


def _unique_statement_name() -> str:
    return f"__asyncpg_{uuid.uuid4()}__"


def _configure_sqlite(engine: AsyncEngine) -> None:
    """WAL, foreign keys, a busy timeout, and BEGIN IMMEDIATE for writers.

    The driver's own implicit BEGIN is switched off so that we decide: a unit of work that
    will write starts with BEGIN IMMEDIATE and takes the write lock up front, so concurrent
    writers queue on the busy timeout instead of failing with "database is locked" when a
    read lock cannot be upgraded.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get("sqlite_write", False):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, RetryableError):
        return True
    if isinstance(exc, DBAPIError):
        return sqlstate_of(exc) in _RETRYABLE_SQLSTATES
    return False


def is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def dialect_insert(session: AsyncSession, table: Any) -> Any:
    """The dialect's INSERT construct (both support ON CONFLICT)."""
    if is_postgres(session):
        return postgresql.insert(table)
    return sqlite.insert(table)


def after_commit(session: AsyncSession, action: Callable[[], None]) -> None:
    """Run `action` once this session's transaction commits, never on rollback: a unit of
    work that is rolled back or re-run must not count (metrics) twice or at all."""

    def _committed(_session: Session) -> None:
        action()

    event.listen(session.sync_session, "after_commit", _committed, once=True)


BeforeCommit = Callable[[AsyncSession], Awaitable[None]]
_BEFORE_COMMIT = "storekeeper.before_commit"
_SETTINGS = "storekeeper.settings"


def before_commit(session: AsyncSession, key: str, action: BeforeCommit) -> None:
    """Run `action(session)` as the last work of this unit of work, just before it commits
    (once per `key`, however often it is registered). An error in it rolls the unit back
    like any other."""
    actions: dict[str, BeforeCommit] = session.info.setdefault(_BEFORE_COMMIT, {})
    actions.setdefault(key, action)


async def _run_before_commit(session: AsyncSession) -> None:
    actions: dict[str, BeforeCommit] = session.info.get(_BEFORE_COMMIT, {})
    while actions:
        key = next(iter(actions))
        await actions.pop(key)(session)


def settings_of(session: AsyncSession) -> Settings:
    """The settings of the database this unit of work runs on."""
    settings: Settings = session.info[_SETTINGS]
    return settings


class Database:
    """One engine per application, and the units of work that run on it."""

    def __init__(self, settings: Settings, engine: AsyncEngine | None = None) -> None:
        self.settings = settings
        self.engine = engine or create_engine(settings)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        # Same pool and driver; statements on it are each their own transaction.
        self.autocommit_engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @asynccontextmanager
    async def transaction(self, *, write: bool = True) -> AsyncIterator[AsyncSession]:
        """One unit of work: commit on success, roll back on any error."""
        async with self.sessionmaker(info={_SETTINGS: self.settings}) as session:
            if write and self.is_sqlite:
                await session.connection(execution_options={"sqlite_write": True})
            try:
                yield session
                await _run_before_commit(session)
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    async def run(
        self,
        work: Callable[[AsyncSession], Awaitable[T]],
        *,
        attempts: int = 5,
        write: bool = True,
    ) -> T:
        """Run `work` in its own unit of work, re-running the whole unit on a retryable
        conflict (optimistic version clash, serialization failure, deadlock)."""
        for attempt in range(1, attempts + 1):
            try:
                async with self.transaction(write=write) as session:
                    return await work(session)
            except Exception as exc:
                if attempt >= attempts or not is_retryable(exc):
                    raise
                # Jittered exponential backoff keeps the retries of a hot row from
                # colliding again in lock-step.
                await asyncio.sleep(random.uniform(0, 0.002 * (2**attempt)))
        raise AssertionError("unreachable")

    async def run_alone(self, statement: Executable, params: dict[str, Any]) -> list[Row[Any]]:
        """Run one statement as a whole unit of work, returning its rows.

        The database runs it in a transaction of its own and commits it as the statement
        ends: on PostgreSQL no lock it takes waits for another round trip to the
        application before the commit. Only for a statement that is complete on its own
        (all or nothing); work of several statements belongs in `transaction`.
        """
        async with self.autocommit_engine.connect() as conn:
            if self.settings.db_pgbouncer:
                return await _run_unnamed(conn, statement, params)
            result = await conn.execute(statement, params)
            return list(result.all())

    async def ping(self, within_seconds: float = 2.0) -> None:
        async with asyncio.timeout(within_seconds), self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


async def _run_unnamed(
    conn: AsyncConnection, statement: Executable, params: dict[str, Any]
) -> list[Any]:
    """Run `statement` outside a transaction as asyncpg's unnamed statement: Parse, Bind,
    Execute and Sync in one round trip.

    SQLAlchemy's driver adapter prepares a named statement in one round trip and runs it
    in a second; outside a transaction PgBouncer (transaction mode) may send the second to
    another server connection, where that statement does not exist. Errors are raised as
    SQLAlchemy's `DBAPIError`, like every other statement's, and a disconnect invalidates
    the connection so the pool does not hand it out again.
    """
    dialect = conn.dialect
    compiled: Any = cast(ClauseElement, statement).compile(dialect=dialect)
    values = compiled.construct_params(params)
    processors = compiled._bind_processors
    args = [
        processors[name](values[name]) if name in processors else values[name]
        for name in compiled.positiontup or ()
    ]
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    try:
        try:
            return list(await driver.fetch(compiled.string, *args))
        except Exception as error:
            AsyncAdapt_asyncpg_connection._handle_exception_no_connection(dialect.dbapi, error)
    except dialect.loaded_dbapi.Error as adapted:
        disconnect = dialect.is_disconnect(adapted, None, None)
        if disconnect:
            await conn.invalidate(adapted)
        raise DBAPIError.instance(
            compiled.string,
            args,
            adapted,
            dialect.loaded_dbapi.Error,
            connection_invalidated=disconnect,
            dialect=dialect,
        ) from adapted
    raise AssertionError("unreachable")


class UnitOfWork:
    """The one way to run work on the database, for requests and jobs alike.

    `run(service_function, *args, **kwargs)` calls `service_function(session, *args,
    **kwargs)` in a transaction of its own that commits when it returns and rolls back on
    any error; a retryable conflict re-runs the whole call. `write=False` marks read-only
    units (on SQLite they do not take the database's write lock). `run_alone` is for the
    rare statement that is a whole unit by itself (the one-statement flash-sale hold).
    """

    __slots__ = ("db", "write")

    def __init__(self, db: Database, *, write: bool = True) -> None:
        self.db = db
        self.write = write

    @property
    def is_sqlite(self) -> bool:
        return self.db.is_sqlite

    async def run(
        self,
        work: Callable[Concatenate[AsyncSession, P], Awaitable[T]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        return await self.db.run(lambda session: work(session, *args, **kwargs), write=self.write)

    async def run_alone(self, statement: Executable, params: dict[str, Any]) -> list[Row[Any]]:
        return await self.db.run_alone(statement, params)


def get_database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def _unit_of_work_for_request(request: Request) -> UnitOfWork:
    """The request's units of work. Read-only methods get plain transactions; others take
    the SQLite write lock up front. Each unit ends (commit or rollback) inside the route,
    before the response is sent, so a client never sees success for work that did not
    commit. A coroutine, so FastAPI calls it on the event loop (a plain `def` dependency
    would cost a thread hand-off per request)."""
    return UnitOfWork(get_database(request), write=request.method not in _READ_METHODS)


async def _writing_unit_of_work(request: Request) -> UnitOfWork:
    return UnitOfWork(get_database(request), write=True)


_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

UnitOfWorkDep = Annotated[UnitOfWork, Depends(_unit_of_work_for_request)]
# For a read method whose unit may write (a cart created on first view).
WritingUnitOfWorkDep = Annotated[UnitOfWork, Depends(_writing_unit_of_work)]
