"""Login throttling: per client address and per account, in memory or shared in Redis."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import pytest
import redis.asyncio
from fastapi import FastAPI

from storekeeper.accounts.models import User
from storekeeper.app import create_app
from storekeeper.config import Settings
from tests.accounts.conftest import PROBLEM, TOKEN_URL
from tests.conftest import TEST_PASSWORD

REDIS_URL = os.environ.get("STOREKEEPER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

AppFactory = Callable[..., AbstractAsyncContextManager[FastAPI]]


@pytest.fixture
def throttled_app(settings: Settings) -> AppFactory:
    """A started app instance (as one server process would be) with throttling on."""

    @asynccontextmanager
    async def _app(**overrides: object) -> AsyncIterator[FastAPI]:
        app_settings = settings.model_copy(
            update={"rate_limit_enabled": True, "login_rate_limit": "3/minute", **overrides}
        )
        app = create_app(app_settings)
        async with app.router.lifespan_context(app):
            yield app

    return _app


def client_from(app: FastAPI, address: str = "198.51.100.7") -> httpx.AsyncClient:
    """A client whose requests reach `app` from peer `address`."""
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def _sign_in(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post(TOKEN_URL, data={"username": email, "password": password})


def _assert_throttled(response: httpx.Response) -> None:
    assert response.status_code == 429
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "rate_limited"
    assert 1 <= int(response.headers["retry-after"]) <= 60


async def test_failed_sign_ins_are_throttled_per_address(
    throttled_app: AppFactory, customer_user: User, staff_user: User
) -> None:
    async with throttled_app() as app, client_from(app) as client:
        for _ in range(3):
            assert (await _sign_in(client, customer_user.email, "wrong")).status_code == 401
        _assert_throttled(await _sign_in(client, customer_user.email, "wrong"))
        # Once throttled, even the right password waits, and so does any other account
        # tried from the same address.
        _assert_throttled(await _sign_in(client, customer_user.email, TEST_PASSWORD))
        _assert_throttled(await _sign_in(client, staff_user.email, TEST_PASSWORD))


async def test_failed_sign_ins_are_throttled_per_account_past_the_account_limit(
    throttled_app: AppFactory, customer_user: User, staff_user: User
) -> None:
    # The account's own budget (STOREKEEPER_LOGIN_ACCOUNT_RATE_LIMIT) is set as low as the
    # per-address one here, to see it work.
    async with (
        throttled_app(login_account_rate_limit="3/minute") as app,
        client_from(app, "198.51.100.1") as first,
        client_from(app, "203.0.113.9") as elsewhere,
    ):
        for _ in range(3):
            assert (await _sign_in(first, customer_user.email, "wrong")).status_code == 401
        _assert_throttled(await _sign_in(elsewhere, customer_user.email.upper(), TEST_PASSWORD))
        assert (await _sign_in(elsewhere, staff_user.email, TEST_PASSWORD)).status_code == 200


async def test_successful_sign_ins_are_not_counted(
    throttled_app: AppFactory, customer_user: User
) -> None:
    async with throttled_app() as app, client_from(app) as client:
        for _ in range(6):
            assert (await _sign_in(client, customer_user.email, TEST_PASSWORD)).status_code == 200


async def test_throttling_off_when_disabled(client: httpx.AsyncClient, customer_user: User) -> None:
    for _ in range(12):
        assert (await _sign_in(client, customer_user.email, "wrong")).status_code == 401


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix unique to this test, removed afterwards; skips without Redis."""
    connection = redis.asyncio.Redis.from_url(REDIS_URL)
    try:
        await connection.ping()
    except (OSError, redis.RedisError) as exc:
        await connection.aclose()
        pytest.skip(f"Redis is not reachable at {REDIS_URL}: {exc}")
    prefix = f"storekeeper-test-{uuid.uuid4().hex}"
    try:
        yield prefix
    finally:
        keys = [key async for key in connection.scan_iter(match=f"{prefix}*")]
        if keys:
            await connection.delete(*keys)
        await connection.aclose()


async def test_throttle_is_shared_across_processes_through_redis(
    throttled_app: AppFactory, redis_prefix: str, customer_user: User
) -> None:
    shared = {"redis_url": REDIS_URL, "rate_limit_key_prefix": redis_prefix}
    async with (
        throttled_app(**shared) as first_app,
        throttled_app(**shared) as second_app,
        client_from(first_app) as first_process,
        client_from(second_app) as second_process,
    ):
        assert (await _sign_in(first_process, customer_user.email, "wrong")).status_code == 401
        assert (await _sign_in(second_process, customer_user.email, "wrong")).status_code == 401
        assert (await _sign_in(first_process, customer_user.email, "wrong")).status_code == 401
        _assert_throttled(await _sign_in(second_process, customer_user.email, TEST_PASSWORD))
        _assert_throttled(await _sign_in(first_process, customer_user.email, TEST_PASSWORD))


async def test_memory_counters_are_per_process(
    throttled_app: AppFactory, customer_user: User
) -> None:
    async with (
        throttled_app() as first_app,
        throttled_app() as second_app,
        client_from(first_app) as first_process,
        client_from(second_app) as second_process,
    ):
        for _ in range(3):
            assert (await _sign_in(first_process, customer_user.email, "wrong")).status_code == 401
        _assert_throttled(await _sign_in(first_process, customer_user.email, "wrong"))
        assert (await _sign_in(second_process, customer_user.email, "wrong")).status_code == 401


async def test_unreachable_redis_does_not_block_sign_in(
    throttled_app: AppFactory, customer_user: User
) -> None:
    async with throttled_app(redis_url="redis://127.0.0.1:1/0") as app, client_from(app) as client:
        assert (await _sign_in(client, customer_user.email, "wrong")).status_code == 401
        assert (await _sign_in(client, customer_user.email, TEST_PASSWORD)).status_code == 200
