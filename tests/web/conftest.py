"""Fixtures of the staff-page tests: signing in through the form, like a browser does."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from storekeeper.accounts.models import Role, User
from storekeeper.accounts.security import hash_password
from storekeeper.config import Environment, Settings
from storekeeper.db import Database
from tests.catalog.conftest import StatementCounter
from tests.conftest import POSTGRES_URL, TEST_PASSWORD, bearer
from tests.conftest import _make_postgres as make_postgres
from tests.conftest import _make_sqlite as make_sqlite

CSRF_PATTERN = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')

SignIn = Callable[..., Awaitable[httpx.Response]]


def csrf_of(page: httpx.Response) -> str:
    """The CSRF token in the forms of a rendered page."""
    match = CSRF_PATTERN.search(page.text)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


@pytest.fixture
def sign_in(client: httpx.AsyncClient) -> SignIn:
    async def _sign_in(
        email: str, password: str = TEST_PASSWORD, next_path: str = "/admin"
    ) -> httpx.Response:
        form_page = await client.get("/admin/sign-in")
        assert form_page.status_code == 200
        return await client.post(
            "/admin/sign-in",
            data={
                "email": email,
                "password": password,
                "next": next_path,
                "csrf_token": csrf_of(form_page),
            },
        )

    return _sign_in


# ---------------------------------------------------------------------------------------
# Browser tests: a real server process and Debian's Chromium driven by Playwright.

CHROMIUM = Path("/usr/bin/chromium")
REQUIRE_BROWSER = os.environ.get("STOREKEEPER_TEST_REQUIRE_BROWSER") == "1"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
SERVER_SECRET = "browser-tests-secret-key-long-enough-for-hs256"
LAPTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


@dataclass
class LiveServer:
    """A `uvicorn` process serving a freshly migrated database, and who can sign in."""

    base_url: str
    settings: Settings
    admin: User
    customer: User
    password: str = TEST_PASSWORD

    def api_headers(self, user: User) -> dict[str, str]:
        return bearer(self.settings, user)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _create_users(url: str) -> tuple[User, User]:
    engine = create_async_engine(url)
    try:
        async with AsyncSession(engine, expire_on_commit=False) as session:
            admin = User(
                email="admin@example.com",
                password_hash=hash_password(TEST_PASSWORD),
                role=Role.ADMIN.value,
                full_name="Ada Admin",
            )
            customer = User(
                email="customer@example.com",
                password_hash=hash_password(TEST_PASSWORD),
                role=Role.CUSTOMER.value,
                full_name="Cleo Customer",
            )
            session.add_all([admin, customer])
            await session.commit()
    finally:
        await engine.dispose()
    return admin, customer


# Generous: on a busy 2-core machine a cold start (imports, migrations check) can take a while.
READY_TIMEOUT_S = 30.0


async def _wait_until_ready(base_url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    async with httpx.AsyncClient(base_url=base_url) as http:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise RuntimeError(f"the server exited with code {server.returncode}")
            with contextlib.suppress(httpx.TransportError):
                if (await http.get("/health/ready")).status_code == 200:
                    return
            await asyncio.sleep(0.05)
    raise RuntimeError(f"the server did not become ready within {READY_TIMEOUT_S:.0f} s")


@pytest.fixture(scope="session")
async def live_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    """One server for the whole browser session: PostgreSQL when the run has one, else a
    migrated SQLite file."""
    work_dir = tmp_path_factory.mktemp("live-server")
    if POSTGRES_URL:
        database = await make_postgres(POSTGRES_URL)
    else:
        database = await make_sqlite(tmp_path_factory.mktemp("live-db"))
    admin, customer = await _create_users(database.url)
    port = _free_port()
    env = {
        **os.environ,
        "STOREKEEPER_DATABASE_URL": database.url,
        "STOREKEEPER_SECRET_KEY": SERVER_SECRET,
        "STOREKEEPER_ENV": "test",
        "STOREKEEPER_RATE_LIMIT_ENABLED": "false",
        "STOREKEEPER_LOG_LEVEL": "WARNING",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "storekeeper.main:app", "--port", str(port)],
        cwd=work_dir,
        env=env,
    )
    base_url = f"http://127.0.0.1:{port}"
    settings = Settings(
        database_url=database.url,
        secret_key=SERVER_SECRET,
        env=Environment.TEST,
        _env_file=None,  # type: ignore[call-arg]
    )
    try:
        await _wait_until_ready(base_url, server)
        yield LiveServer(base_url, settings, admin, customer)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        await database.teardown()


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        reason = f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
        if REQUIRE_BROWSER:
            pytest.fail(reason)
        pytest.skip(reason)
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def page(browser: Browser, live_server: LiveServer) -> AsyncIterator[Page]:
    context = await browser.new_context(base_url=live_server.base_url, viewport=LAPTOP)
    context.set_default_timeout(5_000)
    try:
        yield await context.new_page()
    finally:
        await context.close()


async def screenshot(page: Page, name: str) -> None:
    """Keep a picture of the page as the test saw it (test-artifacts/screenshots/)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


async def sign_in_with_browser(page: Page, email: str, password: str = TEST_PASSWORD) -> None:
    await page.goto("/admin")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()


@pytest.fixture
def statement_counter(db: Database) -> StatementCounter:
    counter = StatementCounter()
    event.listen(db.engine.sync_engine, "before_cursor_execute", counter)
    return counter


async def count_statements(
    counter: StatementCounter, client: httpx.AsyncClient, path: str
) -> tuple[int, httpx.Response]:
    """How many SQL statements one page costs, and the page."""
    counter.count = 0
    counter.active = True
    try:
        response = await client.get(path)
    finally:
        counter.active = False
    assert response.status_code == 200, response.text
    return counter.count, response
