"""Passwords too easy to guess are refused wherever a password is set: one of the 10,000 most
common, one repeated character, or the email or its local part."""

from __future__ import annotations

import importlib.resources

import httpx
import pytest
from typer.testing import CliRunner

from storekeeper.accounts.models import User
from storekeeper.cli import app as cli_app
from tests.accounts.conftest import PROBLEM
from tests.conftest import TEST_PASSWORD

REGISTER = "/api/v1/auth/register"
ME = "/api/v1/users/me"
USERS = "/api/v1/users"

WEAK = [
    "password123",  # among the most common
    "qwertyuiop",
    "PassWord123",  # compared case-insensitively
    "aaaaaaaa",
    " " * 8,
    "zzzzzzzzzzzzzzzzzzzz",
]


def _assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["code"] == "validation_error"
    assert any(error["loc"][-1] == "password" for error in body["errors"])


def test_the_list_ships_with_the_package_and_holds_ten_thousand() -> None:
    from storekeeper.accounts.passwords import common_passwords

    data = importlib.resources.files("storekeeper.accounts").joinpath(
        "data", "common-passwords.txt"
    )
    assert data.is_file()
    assert len(common_passwords()) >= 9_900  # a few differ only in case
    assert "123456" in common_passwords()


@pytest.mark.parametrize("password", WEAK)
async def test_register_refuses_weak_passwords(client: httpx.AsyncClient, password: str) -> None:
    response = await client.post(REGISTER, json={"email": "weak@example.com", "password": password})
    _assert_refused(response)


@pytest.mark.parametrize("password", ["jane.doe.smith", "JANE.DOE.SMITH@example.com"])
async def test_register_refuses_the_email_or_its_local_part(
    client: httpx.AsyncClient, password: str
) -> None:
    body = {"email": "jane.doe.smith@example.com", "password": password}
    _assert_refused(await client.post(REGISTER, json=body))


async def test_register_accepts_a_good_password(client: httpx.AsyncClient) -> None:
    body = {"email": "good@example.com", "password": "violet staircase 1987"}
    assert (await client.post(REGISTER, json=body)).status_code == 201


async def test_password_change_refuses_weak_passwords(
    client: httpx.AsyncClient, customer_user: User, customer_headers: dict[str, str]
) -> None:
    for password in ["password123", "aaaaaaaa", customer_user.email.split("@")[0]]:
        body = {"password": password, "current_password": TEST_PASSWORD}
        _assert_refused(await client.patch(ME, headers=customer_headers, json=body))


async def test_admin_create_refuses_weak_passwords(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    body = {"email": "staff.two@example.com", "password": "iloveyou1", "role": "staff"}
    _assert_refused(await client.post(USERS, headers=admin_headers, json=body))


def test_cli_refuses_weak_passwords(tmp_path: object) -> None:
    result = CliRunner().invoke(
        cli_app,
        ["users", "create", "--email", "ops@example.com", "--password", "password123"],
    )
    assert result.exit_code == 2
    assert "common" in result.output


def test_policy_sentences() -> None:
    from storekeeper.accounts.passwords import password_problem

    assert password_problem("correct horse battery", "someone@example.com") is None
    assert password_problem("someone", "someone@example.com") is not None
    assert password_problem("bbbbbbbbbbb") is not None
