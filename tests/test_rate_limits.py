"""General rate limits: a budget per principal (API key, user, else client address), the
RateLimit-* headers, X-Forwarded-For from trusted proxies only, Redis and its fallback."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
import redis.asyncio
import structlog
from fastapi import FastAPI
from limits import parse
from structlog.testing import LogCapture

from storekeeper import ratelimit
from storekeeper.accounts.models import Role
from storekeeper.app import create_app
from storekeeper.config import Settings
from tests.conftest import TEST_PASSWORD, UserFactory
from tests.web.storefront import shop_sign_in

PROBLEM = "application/problem+json"
REDIS_URL = os.environ.get("STOREKEEPER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# Nothing listens here: a Redis that is down.
CLOSED_REDIS_URL = "redis://127.0.0.1:1/0"
NOW = 1_900_000_000.25
# A counted route that needs no database and no caller: its 404 is an answer like any other.
COUNTED = "/api/v1/no-such-thing"
ME = "/api/v1/users/me"
TOKEN = "/api/v1/auth/token"

AppFactory = Callable[..., AbstractAsyncContextManager[FastAPI]]


class _FrozenClock:
    """Stands in for the `time` module inside `storekeeper.ratelimit`."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[_FrozenClock]:
    frozen = _FrozenClock(NOW)
    monkeypatch.setattr(ratelimit, "time", frozen)
    yield frozen


@pytest.fixture
def limited_app(settings: Settings, test_database: Any) -> AppFactory:
    """A started app (one server process) with the general limits on."""

    @asynccontextmanager
    async def _app(**overrides: object) -> AsyncIterator[FastAPI]:
        app_settings = settings.model_copy(
            update={
                "rate_limit_enabled": True,
                "rate_limit_anonymous": "5/minute",
                "rate_limit_default": "3/minute",
                **overrides,
            }
        )
        app = create_app(app_settings)
        async with app.router.lifespan_context(app):
            yield app

    return _app


def client_from(app: FastAPI, address: str = "10.0.0.7") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


def expected_reset(limit: str, principal: str) -> int:
    """The seconds until the window of `principal`'s budget `limit` ends, at NOW."""
    item = parse(limit)
    _, end = ratelimit._window(item.key_for("requests", principal), item.get_expiry(), NOW)
    return int(-(-(end - NOW) // 1))


def assert_limited(response: httpx.Response, limit: int, reset: int | None = None) -> None:
    assert response.status_code == 429
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["code"] == "rate_limited"
    assert body["status"] == 429
    assert body["type"] == "urn:storekeeper:problem:rate_limited"
    assert response.headers["ratelimit-limit"] == str(limit)
    assert response.headers["ratelimit-remaining"] == "0"
    assert response.headers["retry-after"] == response.headers["ratelimit-reset"]
    assert 1 <= int(response.headers["retry-after"]) <= 60
    if reset is not None:
        assert int(response.headers["retry-after"]) == reset
    assert "x-request-id" in response.headers  # answered inside the request context


async def test_anonymous_budget_with_exact_headers(
    limited_app: AppFactory, clock: _FrozenClock
) -> None:
    reset = expected_reset("5/minute", "address:10.0.0.7")
    async with limited_app() as app, client_from(app) as client:
        answers = [await client.get(COUNTED) for _ in range(5)]
        refused = await client.get(COUNTED)
        assert [a.status_code for a in answers] == [404] * 5
        assert [a.headers["ratelimit-limit"] for a in answers] == ["5"] * 5
        assert [a.headers["ratelimit-remaining"] for a in answers] == ["4", "3", "2", "1", "0"]
        assert {a.headers["ratelimit-reset"] for a in answers} == {str(reset)}
        assert_limited(refused, 5, reset)

        # Another address has its own budget.
        async with client_from(app, "10.0.0.8") as other:
            assert (await other.get(COUNTED)).headers["ratelimit-remaining"] == "4"

        # A new window starts a new budget.
        clock.now += reset
        again = await client.get(COUNTED)
        assert again.status_code == 404
        assert again.headers["ratelimit-remaining"] == "4"
        assert again.headers["ratelimit-reset"] == "60"


async def signed_in(client: httpx.AsyncClient, make_user: UserFactory) -> dict[str, str]:
    """Bearer headers of a new customer, signed in through the API."""
    user = await make_user(Role.CUSTOMER)
    answer = await client.post(TOKEN, data={"username": user.email, "password": TEST_PASSWORD})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


async def test_users_are_counted_apart_from_their_address(
    limited_app: AppFactory,
    make_user: UserFactory,
    client: httpx.AsyncClient,
    clock: _FrozenClock,
) -> None:
    # Signed in on an app without limits, used on one with them (same database and key).
    first = await signed_in(client, make_user)
    second = await signed_in(client, make_user)
    async with limited_app() as app, client_from(app) as client:
        # Two users behind one address: a budget of 3 each, the address's own 5 untouched.
        for headers in (first, second):
            remaining = [
                (await client.get(ME, headers=headers)).headers["ratelimit-remaining"]
                for _ in range(3)
            ]
            assert remaining == ["2", "1", "0"]
            assert_limited(await client.get(ME, headers=headers), 3)
        anonymous = await client.get(COUNTED)
        assert anonymous.headers["ratelimit-limit"] == "5"
        assert anonymous.headers["ratelimit-remaining"] == "4"

        # A token that is not valid does not make a principal: the request is anonymous.
        forged = await client.get(ME, headers={"Authorization": "Bearer not.a.token"})
        assert forged.status_code == 401
        assert forged.headers["ratelimit-limit"] == "5"
        assert forged.headers["ratelimit-remaining"] == "3"


async def test_a_shop_session_is_counted_as_its_customer(
    limited_app: AppFactory,
    make_user: UserFactory,
    client: httpx.AsyncClient,
    clock: _FrozenClock,
) -> None:
    user = await make_user(Role.CUSTOMER)
    assert (await shop_sign_in(client, user.email)).status_code == 303
    async with limited_app() as app, client_from(app) as limited:
        limited.cookies = client.cookies
        remaining = [
            (await limited.get("/shop/account")).headers["ratelimit-remaining"] for _ in range(3)
        ]
        assert remaining == ["2", "1", "0"]
        assert (await limited.get("/shop/account")).status_code == 429
        limited.cookies.clear()
        anonymous = await limited.get(COUNTED)
        assert anonymous.headers["ratelimit-limit"] == "5"
        assert anonymous.headers["ratelimit-remaining"] == "4"


async def test_api_keys_are_counted_by_their_digest(
    limited_app: AppFactory, clock: _FrozenClock
) -> None:
    key_a = {"Authorization": "Bearer sk_" + "a" * 40}
    key_b = {"Authorization": "Bearer sk_" + "b" * 40}
    async with limited_app() as app, client_from(app) as client:
        for headers in (key_a, key_b):
            answers = [await client.get(COUNTED, headers=headers) for _ in range(3)]
            assert [a.headers["ratelimit-remaining"] for a in answers] == ["2", "1", "0"]
            assert [a.headers["ratelimit-limit"] for a in answers] == ["3"] * 3
            assert_limited(await client.get(COUNTED, headers=headers), 3)
        assert (await client.get(COUNTED)).headers["ratelimit-remaining"] == "4"


async def test_made_up_keys_spend_the_address_budget(
    limited_app: AppFactory, clock: _FrozenClock
) -> None:
    """Keys are told apart without a database read, so each made-up key would have a
    budget of its own: every refused key (401) also counts against the address."""
    async with limited_app() as app, client_from(app) as client:
        for _ in range(5):
            made_up = {"Authorization": f"Bearer sk_{uuid.uuid4().hex}{uuid.uuid4().hex}"}
            assert (await client.get(ME, headers=made_up)).status_code == 401
        another = {"Authorization": f"Bearer sk_{uuid.uuid4().hex}{uuid.uuid4().hex}"}
        assert_limited(await client.get(ME, headers=another), 5)
        assert_limited(await client.get(COUNTED), 5)
        # Other addresses are not affected.
        async with client_from(app, "10.0.0.9") as other:
            assert (await other.get(ME, headers=another)).status_code == 401


async def test_forwarded_for_is_believed_only_from_trusted_proxies(
    limited_app: AppFactory, clock: _FrozenClock
) -> None:
    async with limited_app(trusted_proxies=["10.1.0.0/16"]) as app:
        # An untrusted peer's X-Forwarded-For is ignored: spoofing it gains nothing.
        async with client_from(app, "10.0.0.7") as direct:
            spoofed = [
                await direct.get(COUNTED, headers={"X-Forwarded-For": f"203.0.113.{i}"})
                for i in range(6)
            ]
        assert [r.status_code for r in spoofed] == [404] * 5 + [429]

        # Behind the trusted proxy, each client (the first entry) has its own budget.
        async with client_from(app, "10.1.2.3") as proxy:
            for client_address in ("198.51.100.1", "198.51.100.2"):
                header = {"X-Forwarded-For": f"{client_address}, 10.1.9.9"}
                remaining = [
                    (await proxy.get(COUNTED, headers=header)).headers["ratelimit-remaining"]
                    for _ in range(5)
                ]
                assert remaining == ["4", "3", "2", "1", "0"]
                assert_limited(await proxy.get(COUNTED, headers=header), 5)
            # The proxy's own requests (no header) count against the proxy's address;
            # garbage in the header is not an address either.
            assert (await proxy.get(COUNTED)).headers["ratelimit-remaining"] == "4"
            garbage = await proxy.get(COUNTED, headers={"X-Forwarded-For": "not-an-ip"})
            assert garbage.headers["ratelimit-remaining"] == "3"


async def test_ipv6_clients_are_counted_by_their_64(
    limited_app: AppFactory, clock: _FrozenClock
) -> None:
    async with limited_app() as app:
        for suffix in ("1", "2", "3", "4", "5"):
            async with client_from(app, f"2001:db8:0:1::{suffix}") as client:
                assert (await client.get(COUNTED)).status_code == 404
        async with client_from(app, "2001:db8:0:1::ffff") as client:
            assert_limited(await client.get(COUNTED), 5)
        async with client_from(app, "2001:db8:0:2::1") as client:
            assert (await client.get(COUNTED)).status_code == 404


async def test_health_metrics_and_static_files_are_never_counted(
    limited_app: AppFactory, clock: _FrozenClock
) -> None:
    async with limited_app(rate_limit_anonymous="1/minute") as app, client_from(app) as client:
        static = ("/admin/static/app.css", "/shop/static/shop.css")
        for path in ("/health", "/health/ready", "/metrics", *static) * 3:
            response = await client.get(path)
            assert response.status_code != 429, path
            assert "ratelimit-limit" not in response.headers, path
        assert (await client.get(COUNTED)).status_code == 404
        assert_limited(await client.get(COUNTED), 1)


async def test_disabled_limits_send_no_headers_and_refuse_nothing(
    limited_app: AppFactory, clock: _FrozenClock
) -> None:
    async with limited_app(rate_limit_enabled=False) as app, client_from(app) as client:
        for _ in range(8):
            response = await client.get(COUNTED)
            assert response.status_code == 404
            assert not any(name.startswith("ratelimit-") for name in response.headers)


class captured_logs:
    """Collects structlog entries from when `listen` is called (after create_app configured
    logging, keeping its level filter) and restores the configuration afterwards."""

    def __enter__(self) -> captured_logs:
        self.previous = structlog.get_config()
        self.capture = LogCapture()
        return self

    def listen(self) -> None:
        structlog.configure(processors=[structlog.contextvars.merge_contextvars, self.capture])

    @property
    def entries(self) -> list[dict[str, Any]]:
        return self.capture.entries

    def __exit__(self, *exc: object) -> None:
        structlog.configure(**self.previous)


async def test_a_refusal_is_logged_and_counted_by_principal_kind(
    limited_app: AppFactory, clock: _FrozenClock
) -> None:
    before = ratelimit.RATE_LIMITED.labels("address")._value.get()
    with captured_logs() as capture:
        async with limited_app(rate_limit_anonymous="1/minute") as app, client_from(app) as c:
            capture.listen()
            await c.get(COUNTED)
            await c.get(COUNTED)
    [entry] = [e for e in capture.entries if e["event"] == "rate_limited"]
    assert entry["principal"] == "address:10.0.0.7"
    assert entry["principal_kind"] == "address"
    assert entry["path"] == COUNTED
    assert ratelimit.RATE_LIMITED.labels("address")._value.get() == before + 1


async def test_cors_answers_carry_the_rate_limit_headers(
    limited_app: AppFactory, clock: _FrozenClock
) -> None:
    origin = {"Origin": "https://shop.example"}
    async with (
        limited_app(cors_origins=["https://shop.example"], rate_limit_anonymous="1/minute") as app,
        client_from(app) as client,
    ):
        # A preflight is answered by CORS and not counted.
        preflight = await client.options(
            COUNTED, headers={**origin, "Access-Control-Request-Method": "GET"}
        )
        assert preflight.status_code == 200
        ok = await client.get(COUNTED, headers=origin)
        assert "ratelimit-remaining" in ok.headers["access-control-expose-headers"].lower()
        refused = await client.get(COUNTED, headers=origin)
        assert_limited(refused, 1)
        assert refused.headers["access-control-allow-origin"] == "https://shop.example"


async def test_the_limiter_serves_other_budgets(settings: Settings, clock: _FrozenClock) -> None:
    """`RequestLimiter.hit` is what an API key's own `rate_limit_per_minute` uses."""
    limiter = ratelimit.RequestLimiter(settings)
    states = [await limiter.hit("2/minute", "api-key", "7") for _ in range(3)]
    assert [(s.allowed, s.limit, s.remaining) for s in states] == [
        (True, 2, 1),
        (True, 2, 0),
        (False, 2, 0),
    ]
    assert states[2].error().headers() == {"Retry-After": str(states[2].retry_after)}
    assert states[2].headers()["RateLimit-Reset"] == str(states[2].reset_seconds)
    # Another identifier, another budget.
    assert (await limiter.hit("2/minute", "api-key", "8")).remaining == 1


# --- Redis ---------------------------------------------------------------------------------


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


async def test_processes_sharing_redis_share_one_budget(
    limited_app: AppFactory, redis_prefix: str, clock: _FrozenClock
) -> None:
    shared = {"redis_url": REDIS_URL, "rate_limit_key_prefix": redis_prefix}
    async with (
        limited_app(**shared) as first,
        limited_app(**shared) as second,
        client_from(first) as a,
        client_from(second) as b,
    ):
        answers = [await (a if i % 2 == 0 else b).get(COUNTED) for i in range(6)]
        assert [r.status_code for r in answers] == [404] * 5 + [429]
        assert [r.headers["ratelimit-remaining"] for r in answers[:5]] == [
            "4",
            "3",
            "2",
            "1",
            "0",
        ]
        ready = (await a.get("/health/ready")).json()
        assert ready["rate_limits"] == {"enabled": True, "store": "redis"}


async def test_redis_down_falls_back_to_counting_per_process(
    limited_app: AppFactory, clock: _FrozenClock
) -> None:
    with captured_logs() as capture:
        async with limited_app(redis_url=CLOSED_REDIS_URL) as app, client_from(app) as client:
            capture.listen()
            answers = [await client.get(COUNTED) for _ in range(6)]
            assert [r.status_code for r in answers] == [404] * 5 + [429]
            assert [r.headers["ratelimit-remaining"] for r in answers[:5]] == [
                "4",
                "3",
                "2",
                "1",
                "0",
            ]
            # Still down after the pause: tried again, and not warned about again.
            clock.now += ratelimit.REDIS_RETRY_SECONDS + 0.1
            assert_limited(await client.get(COUNTED), 5)
            ready = await client.get("/health/ready")
    warnings = [e for e in capture.entries if e["event"] == "rate_limit_store_unavailable"]
    assert len(warnings) == 1
    assert warnings[0]["log_level"] == "warning"
    assert ready.status_code == 200
    details = ready.json()["rate_limits"]
    assert details["store"] == "memory-fallback"
    assert details["redis"].startswith("unavailable")


async def test_ready_says_nothing_of_the_store_without_redis(limited_app: AppFactory) -> None:
    async with limited_app() as app, client_from(app) as client:
        ready = (await client.get("/health/ready")).json()
    assert ready == {"status": "ok", "database": "ok"}
