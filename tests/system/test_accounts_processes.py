"""Accounts across real server processes: one bootstrap admin, throttling shared in Redis."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio
from sqlalchemy import select

from storekeeper.accounts.models import Role, User
from storekeeper.db import Database
from tests.conftest import TEST_PASSWORD
from tests.system.conftest import ServerRunner, make_system_user

TOKEN = "/api/v1/auth/token"
REDIS_URL = os.environ.get("STOREKEEPER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def test_two_processes_starting_together_create_one_bootstrap_admin(
    run_servers: ServerRunner, system_db: Database
) -> None:
    email, password = "root@shop.example", "bootstrap-password-1"
    async with (
        run_servers(
            count=2,
            background_tasks=False,
            bootstrap_admin_email=email,
            bootstrap_admin_password=password,
        ) as cluster,
        httpx.AsyncClient(timeout=30) as client,
    ):
        for url in cluster.urls:
            signed_in = await client.post(
                f"{url}{TOKEN}", data={"username": email, "password": password}
            )
            assert signed_in.status_code == 200, cluster.output()
    async with system_db.transaction(write=False) as session:
        admins = (
            await session.execute(select(User.role, User.is_active).where(User.email == email))
        ).all()
    assert [tuple(admin) for admin in admins] == [(Role.ADMIN.value, True)]


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix unique to this test, removed afterwards; skips without Redis."""
    connection = redis.asyncio.Redis.from_url(REDIS_URL)
    try:
        await connection.ping()
    except (OSError, redis.RedisError) as exc:
        await connection.aclose()
        pytest.skip(f"Redis is not reachable at {REDIS_URL}: {exc}")
    prefix = f"storekeeper-system-{uuid.uuid4().hex}"
    try:
        yield prefix
    finally:
        keys = [key async for key in connection.scan_iter(match=f"{prefix}*")]
        if keys:
            await connection.delete(*keys)
        await connection.aclose()


async def test_failed_sign_ins_are_counted_across_processes_in_redis(
    run_servers: ServerRunner, system_db: Database, redis_prefix: str
) -> None:
    email = "shopper@example.com"
    await make_system_user(system_db, Role.CUSTOMER, email)
    async with (
        run_servers(
            count=2,
            background_tasks=False,
            rate_limit_enabled="true",
            login_rate_limit="3/minute",
            redis_url=REDIS_URL,
            rate_limit_key_prefix=redis_prefix,
        ) as cluster,
        httpx.AsyncClient(timeout=30) as client,
    ):

        async def sign_in(index: int, password: str) -> httpx.Response:
            return await client.post(
                f"{cluster.url(index)}{TOKEN}", data={"username": email, "password": password}
            )

        # Three failures spread over both processes use up the shared allowance...
        assert [(await sign_in(i, "wrong-password")).status_code for i in range(3)] == [
            401,
            401,
            401,
        ]
        # ...so both processes now refuse, even the right password.
        for index in (3, 4):
            throttled = await sign_in(index, TEST_PASSWORD)
            assert throttled.status_code == 429, cluster.output()
            assert throttled.headers["content-type"] == "application/problem+json"
            assert throttled.json()["code"] == "rate_limited"
            assert 1 <= int(throttled.headers["retry-after"]) <= 60
