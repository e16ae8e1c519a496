"""Failed sign-ins cannot lock a chosen account out: the budgets are per address and per
(account, address); the account alone only past STOREKEEPER_LOGIN_ACCOUNT_RATE_LIMIT."""

from __future__ import annotations

import httpx
import pytest
from limits.errors import StorageError
from structlog.testing import capture_logs

from storekeeper.accounts.models import User
from storekeeper.accounts.throttle import LoginThrottle
from storekeeper.config import Settings
from tests.accounts.conftest import PROBLEM, TOKEN_URL
from tests.accounts.test_throttle import AppFactory, client_from, throttled_app  # noqa: F401
from tests.conftest import TEST_PASSWORD


async def _sign_in(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post(TOKEN_URL, data={"username": email, "password": password})


async def test_failures_from_many_addresses_do_not_lock_the_owner_out(
    throttled_app: AppFactory,  # noqa: F811
    customer_user: User,
) -> None:
    async with throttled_app(login_rate_limit="10/minute") as app:
        for n in range(10):
            async with client_from(app, f"198.51.100.{n + 1}") as attacker:
                response = await _sign_in(attacker, customer_user.email, "wrong password")
                assert response.status_code == 401
        async with client_from(app, "203.0.113.200") as owner:
            response = await _sign_in(owner, customer_user.email, TEST_PASSWORD)
            assert response.status_code == 200, response.text


async def test_ten_failures_from_one_address_throttle_that_address_only(
    throttled_app: AppFactory,  # noqa: F811
    customer_user: User,
) -> None:
    async with (
        throttled_app(login_rate_limit="10/minute") as app,
        client_from(app, "198.51.100.66") as attacker,
        client_from(app, "203.0.113.200") as owner,
    ):
        for _ in range(10):
            assert (await _sign_in(attacker, customer_user.email, "wrong")).status_code == 401
        refused = await _sign_in(attacker, customer_user.email, TEST_PASSWORD)
        assert refused.status_code == 429
        assert refused.headers["content-type"] == PROBLEM
        assert refused.json()["code"] == "rate_limited"
        assert (await _sign_in(owner, customer_user.email, TEST_PASSWORD)).status_code == 200


async def test_failed_sign_in_is_audited_with_the_address_never_the_password(
    throttled_app: AppFactory,  # noqa: F811
    customer_user: User,
) -> None:
    async with throttled_app() as app, client_from(app, "198.51.100.9") as client:
        with capture_logs() as logs:
            response = await _sign_in(client, customer_user.email, "a-secret-guess-123")
        assert response.status_code == 401
    failed = [entry for entry in logs if entry["event"] == "sign_in_failed"]
    assert len(failed) == 1
    assert failed[0]["address"] == "198.51.100.9"
    assert failed[0]["user_id"] == customer_user.id
    assert "a-secret-guess-123" not in repr(logs)


class _BrokenLimiter:
    async def test(self, *_args: object) -> bool:
        raise StorageError(ConnectionError("redis is down"))

    async def hit(self, *_args: object) -> bool:
        raise StorageError(ConnectionError("redis is down"))


async def test_a_failing_shared_store_falls_back_to_counting_in_the_process(
    settings: Settings,
) -> None:
    throttle = LoginThrottle(
        settings.model_copy(update={"rate_limit_enabled": True, "login_rate_limit": "2/minute"})
    )
    throttle.limiter = _BrokenLimiter()  # type: ignore[assignment]
    with capture_logs() as logs:
        for _ in range(2):
            await throttle.check("198.51.100.1", "someone@example.com")
            await throttle.record_failure("198.51.100.1", "someone@example.com")
        with pytest.raises(Exception) as refused:
            await throttle.check("198.51.100.1", "someone@example.com")
    assert type(refused.value).__name__ == "RateLimited"
    assert any(entry["event"] == "login_throttle_unavailable" for entry in logs)
