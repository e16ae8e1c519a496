"""Helpers for the accounts tests: signing in over HTTP and counting SQL statements."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from storekeeper.db import Database
from tests.conftest import TEST_PASSWORD

TOKEN_URL = "/api/v1/auth/token"
PROBLEM = "application/problem+json"

SignIn = Callable[..., Awaitable[dict[str, Any]]]


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
