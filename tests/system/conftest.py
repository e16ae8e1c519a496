"""System-test harness: real `uvicorn` server processes against a PostgreSQL database.

`run_servers(count=2, locking="atomic", ...)` starts `count` processes serving the same
database (each on its own port, background jobs on unless told otherwise), waits until each
answers `/health/ready`, and stops them all on exit. `system_database` is one migrated
PostgreSQL database for the whole run, emptied before each test; `staff_headers` is a bearer
token for a staff user in it. Tests here are marked `system` and need PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from storekeeper.accounts.models import Role, SignInKind, User
from storekeeper.accounts.security import create_access_token
from storekeeper.accounts.service import start_sign_in
from storekeeper.config import Environment, Settings
from storekeeper.db import Database
from tests.conftest import _TEST_PASSWORD_HASH, POSTGRES_URL, TestDatabase, _make_postgres

SECRET_KEY = "system-test-secret-key-long-enough-for-hs256"
READY_TIMEOUT_SECONDS = 30.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.system)


@dataclass
class Cluster:
    """Running server processes sharing one database."""

    urls: list[str]
    database_url: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def url(self, index: int) -> str:
        """The base URL of server `index % count`: spreads requests over the servers."""
        return self.urls[index % len(self.urls)]

    def output(self) -> str:
        return "\n".join(log.read_text(errors="replace")[-4000:] for log in self.logs)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
async def system_database() -> AsyncIterator[TestDatabase]:
    if not POSTGRES_URL:
        if os.environ.get("STOREKEEPER_TEST_REQUIRE_POSTGRES") == "1":
            pytest.fail("system tests need STOREKEEPER_TEST_DATABASE_URL")
        pytest.skip("system tests need PostgreSQL (STOREKEEPER_TEST_DATABASE_URL)")
    database = await _make_postgres(POSTGRES_URL)
    try:
        yield database
    finally:
        await database.teardown()


@pytest.fixture
async def system_db(system_database: TestDatabase) -> AsyncIterator[Database]:
    """The emptied system database, for arranging data and checking figures directly."""
    await system_database.reset()
    settings = Settings(
        database_url=system_database.url,
        env=Environment.TEST,
        secret_key=SECRET_KEY,
        _env_file=None,  # type: ignore[call-arg]
    )
    database = Database(settings)
    try:
        yield database
    finally:
        await database.dispose()


async def make_system_user(db: Database, role: Role, email: str) -> dict[str, str]:
    """Create a user in the system database; returns its bearer headers."""
    async with db.transaction() as session:
        user = User(
            email=email, password_hash=_TEST_PASSWORD_HASH, role=role.value, full_name=email
        )
        session.add(user)
        await session.flush()
        # Every access token belongs to a recorded sign-in.
        sign_in_id = await start_sign_in(session, user.id, SignInKind.API, timedelta(days=1))
        token = create_access_token(
            db.settings, user_id=user.id, role=user.role, sign_in_id=sign_in_id
        )
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def staff_headers(system_db: Database) -> dict[str, str]:
    return await make_system_user(system_db, Role.STAFF, "staff@example.com")


ServerRunner = Callable[..., AbstractAsyncContextManager[Cluster]]


@pytest.fixture
def run_servers(system_db: Database) -> ServerRunner:
    database_url = system_db.settings.database_url

    @asynccontextmanager
    async def _run(
        count: int = 2,
        *,
        locking: str = "atomic",
        expiry_interval_seconds: float = 1.0,
        background_tasks: bool = True,
        **extra_env: Any,
    ) -> AsyncIterator[Cluster]:
        env = {
            **os.environ,
            "STOREKEEPER_DATABASE_URL": database_url,
            "STOREKEEPER_ENV": "test",
            "STOREKEEPER_SECRET_KEY": SECRET_KEY,
            "STOREKEEPER_LOCKING": locking,
            "STOREKEEPER_EXPIRY_INTERVAL_SECONDS": str(expiry_interval_seconds),
            "STOREKEEPER_RUN_BACKGROUND_TASKS": "true" if background_tasks else "false",
            "STOREKEEPER_RATE_LIMIT_ENABLED": "false",
            "STOREKEEPER_LOG_LEVEL": "WARNING",
            "STOREKEEPER_LOG_FORMAT": "json",
            # The test machine may be busy: these tests judge correctness, not latency, so
            # a request may queue for a connection longer than in production.
            "STOREKEEPER_DB_POOL_TIMEOUT_SECONDS": "60",
            **{f"STOREKEEPER_{key.upper()}": str(value) for key, value in extra_env.items()},
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        ports = [_free_port() for _ in range(count)]
        cluster = Cluster([f"http://127.0.0.1:{port}" for port in ports], database_url)
        log_dir = Path(tempfile.mkdtemp(prefix="storekeeper-system-"))
        try:
            for port in ports:
                log = log_dir / f"server-{port}.log"
                cluster.logs.append(log)
                with log.open("wb") as sink:
                    cluster.processes.append(
                        subprocess.Popen(
                            [
                                sys.executable,
                                "-m",
                                "uvicorn",
                                "storekeeper.main:app",
                                "--host",
                                "127.0.0.1",
                                "--port",
                                str(port),
                                "--loop",
                                "uvloop",
                                "--http",
                                "httptools",
                                "--no-access-log",
                            ],
                            env=env,
                            stdout=sink,
                            stderr=subprocess.STDOUT,
                        )
                    )
            await _wait_until_ready(cluster)
            yield cluster
        finally:
            for process in cluster.processes:
                process.terminate()
            for process in cluster.processes:
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()

    return _run


async def _wait_until_ready(cluster: Cluster) -> None:
    deadline = asyncio.get_running_loop().time() + READY_TIMEOUT_SECONDS
    async with httpx.AsyncClient(timeout=2.0) as client:
        for url, process in zip(cluster.urls, cluster.processes, strict=True):
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"server {url} exited:\n{cluster.output()}")
                try:
                    if (await client.get(f"{url}/health/ready")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if asyncio.get_running_loop().time() > deadline:
                    raise RuntimeError(f"server {url} did not become ready:\n{cluster.output()}")
                await asyncio.sleep(0.1)
