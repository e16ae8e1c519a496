"""Helpers for the accounts tests: signing in over HTTP and counting SQL statements."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import event

import tests.conftest
from storekeeper.accounts import security
from storekeeper.db import Database
from tests.conftest import TEST_PASSWORD

TOKEN_URL = "/api/v1/auth/token"
PROBLEM = "application/problem+json"

SignIn = Callable[..., Awaitable[dict[str, Any]]]

# The service's argon2id parameters cost about half a second per hash on a busy 2-core
# machine, and these tests hash often; they run the same code with the cheapest parameters.
# test_security.py checks the real ones.
SERVICE_HASHER = security.password_hasher
FAST_HASHER = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),))
FAST_TEST_PASSWORD_HASH = FAST_HASHER.hash(TEST_PASSWORD)


@pytest.fixture(autouse=True)
def fast_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(security, "password_hasher", FAST_HASHER)
    monkeypatch.setattr(tests.conftest, "_TEST_PASSWORD_HASH", FAST_TEST_PASSWORD_HASH)


@pytest.fixture
def sign_in(client: httpx.AsyncClient) -> SignIn:
    """POST the password form; returns the token pair (asserting a 200)."""

    async def _sign_in(email: str, password: str = TEST_PASSWORD) -> dict[str, Any]:
        response = await client.post(TOKEN_URL, data={"username": email, "password": password})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    return _sign_in


def auth(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


@contextmanager
def count_statements(db: Database) -> Iterator[list[str]]:
    """Collect the SQL statements the engine runs inside the block."""
    statements: list[str] = []

    def _record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", _record)
    try:
        yield statements
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", _record)
