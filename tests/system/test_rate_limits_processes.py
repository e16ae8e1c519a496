"""General rate limits across real server processes: one budget shared through Redis."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio

from storekeeper.db import Database
from tests.system.conftest import ServerRunner

REDIS_URL = os.environ.get("STOREKEEPER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# Counted, and answered without the database or a caller.
COUNTED = "/api/v1/no-such-thing"


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


async def test_two_processes_sharing_redis_give_one_budget(
    run_servers: ServerRunner, system_db: Database, redis_prefix: str
) -> None:
    async with (
        run_servers(
            count=2,
            background_tasks=False,
            rate_limit_enabled="true",
            rate_limit_anonymous="10/hour",  # an hour: no window ends during the test,
            redis_url=REDIS_URL,
            rate_limit_key_prefix=redis_prefix,
        ) as cluster,
        httpx.AsyncClient(timeout=30) as client,
    ):
        answers = [await client.get(f"{cluster.url(i)}{COUNTED}") for i in range(20)]
        statuses = [answer.status_code for answer in answers]
        # Ten answers in all, both servers taking part, then refusals from both.
        assert statuses.count(404) == 10, (statuses, cluster.output())
        assert statuses.count(429) == 10
        counted = [a for a in answers if a.status_code == 404]
        assert sorted(int(a.headers["ratelimit-remaining"]) for a in counted) == list(range(10))
        assert {str(a.url).split("/api")[0] for a in counted} == set(cluster.urls)
        refused = [a for a in answers if a.status_code == 429]
        assert {str(a.url).split("/api")[0] for a in refused} == set(cluster.urls)
        for answer in refused:
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.json()["code"] == "rate_limited"
            assert 1 <= int(answer.headers["retry-after"]) <= 3600
        for url in cluster.urls:
            ready = (await client.get(f"{url}/health/ready")).json()
            assert ready["rate_limits"] == {"enabled": True, "store": "redis"}
