"""The bootstrap admin, demo users, and the `users create` / `seed` commands."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from storekeeper.accounts import service
from storekeeper.accounts.models import Address, Role, User
from storekeeper.app import on_startup
from storekeeper.cli import app as cli
from storekeeper.config import Settings
from storekeeper.db import Database
from storekeeper.seed import seed
from tests.accounts.conftest import TOKEN_URL, SignIn
from tests.conftest import TestDatabase as MigratedDatabase

BOOTSTRAP_EMAIL = "root@shop.local"
BOOTSTRAP_PASSWORD = "bootstrap-password"


def _bootstrap_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "bootstrap_admin_email": BOOTSTRAP_EMAIL,
            "bootstrap_admin_password": BOOTSTRAP_PASSWORD,
        }
    )


async def _users_with_email(db: Database, email: str) -> list[User]:
    async with db.transaction(write=False) as session:
        rows = await session.scalars(select(User).where(func.lower(User.email) == email.lower()))
        return list(rows.all())


async def test_bootstrap_admin_is_created_once_and_never_altered(
    db: Database, settings: Settings, sign_in: SignIn
) -> None:
    bootstrap = _bootstrap_settings(settings)
    await on_startup(db, bootstrap)
    await on_startup(db, bootstrap)
    [admin] = await _users_with_email(db, BOOTSTRAP_EMAIL)
    assert (admin.role, admin.is_active) == ("admin", True)
    await sign_in(BOOTSTRAP_EMAIL, BOOTSTRAP_PASSWORD)

    # A restart with another password does not reset the existing account's password.
    await on_startup(db, bootstrap.model_copy(update={"bootstrap_admin_password": "other-pass"}))
    [same] = await _users_with_email(db, BOOTSTRAP_EMAIL)
    assert same.password_hash == admin.password_hash


async def test_bootstrap_admin_created_once_by_concurrent_starts(
    postgres_only: None,
    test_database: MigratedDatabase,
    db: Database,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    starts = 4
    bootstrap = _bootstrap_settings(settings)
    # Every process reaches the insert before any commits, so the unique index must decide.
    barrier = asyncio.Barrier(starts)
    insert = service.insert_user_if_absent
    outcomes: list[bool] = []

    async def insert_together(*args: Any, **kwargs: Any) -> bool:
        await barrier.wait()
        inserted = await insert(*args, **kwargs)
        outcomes.append(inserted)
        return inserted

    monkeypatch.setattr(service, "insert_user_if_absent", insert_together)
    processes = [Database(bootstrap) for _ in range(starts)]
    try:
        await asyncio.wait_for(
            asyncio.gather(*(on_startup(process, bootstrap) for process in processes)), 30
        )
    finally:
        for process in processes:
            await process.dispose()
    assert sorted(outcomes) == [False, False, False, True]
    assert len(await _users_with_email(db, BOOTSTRAP_EMAIL)) == 1


async def test_incomplete_bootstrap_settings_refuse_to_start(
    db: Database, settings: Settings
) -> None:
    for update in (
        {"bootstrap_admin_email": BOOTSTRAP_EMAIL},
        {"bootstrap_admin_email": BOOTSTRAP_EMAIL, "bootstrap_admin_password": "short"},
        {"bootstrap_admin_email": "no-at-sign", "bootstrap_admin_password": BOOTSTRAP_PASSWORD},
    ):
        with pytest.raises(ValueError):
            await on_startup(db, settings.model_copy(update=update))
    assert await _users_with_email(db, BOOTSTRAP_EMAIL) == []


async def test_demo_users_seed_is_idempotent(
    db: Database, settings: Settings, client: httpx.AsyncClient
) -> None:
    await seed(db, settings, demo=True)
    await seed(db, settings, demo=True)
    async with db.transaction(write=False) as session:
        users = (await session.scalars(select(User).order_by(User.id))).all()
        addresses = (await session.scalars(select(Address))).all()
    assert [(user.email, user.role) for user in users] == [
        ("admin@storekeeper.local", "admin"),
        ("staff@storekeeper.local", "staff"),
        ("customer@storekeeper.local", "customer"),
    ]
    assert len(addresses) == 1
    signed_in = await client.post(
        TOKEN_URL, data={"username": "admin@storekeeper.local", "password": "admin-password-123"}
    )
    assert signed_in.status_code == 200


def _cli_env(test_database: MigratedDatabase) -> dict[str, str]:
    return {"STOREKEEPER_DATABASE_URL": test_database.url, "STOREKEEPER_ENV": "test"}


async def test_users_create_command(
    db: Database, test_database: MigratedDatabase, sign_in: SignIn
) -> None:
    runner = CliRunner()
    env = _cli_env(test_database)
    arguments = ["users", "create", "--email", "Boss@Shop.Example", "--password", "boss-password"]

    def invoke(extra: list[str]) -> Any:
        return runner.invoke(cli, arguments + extra, env=env)

    created = await asyncio.to_thread(invoke, ["--role", "admin"])
    assert created.exit_code == 0, created.output
    assert "Created admin Boss@shop.example" in created.output
    duplicate = await asyncio.to_thread(invoke, ["--role", "staff"])
    assert duplicate.exit_code == 1
    bad_role = await asyncio.to_thread(invoke, ["--role", "root"])
    assert bad_role.exit_code == 2
    short = await asyncio.to_thread(
        runner.invoke,
        cli,
        ["users", "create", "--email", "x@shop.example", "--password", "short"],
        env=env,
    )
    assert short.exit_code == 2
    [boss] = await _users_with_email(db, "boss@shop.example")
    assert boss.role == Role.ADMIN.value
    await sign_in("boss@shop.example", "boss-password")


async def test_seed_command(db: Database, test_database: MigratedDatabase) -> None:
    result = await asyncio.to_thread(
        CliRunner().invoke, cli, ["seed", "--demo"], env=_cli_env(test_database)
    )
    assert result.exit_code == 0, result.output
    assert len(await _users_with_email(db, "customer@storekeeper.local")) == 1


async def test_seed_command_refuses_demo_data_in_production(
    test_database: MigratedDatabase,
) -> None:
    env = {
        **_cli_env(test_database),
        "STOREKEEPER_ENV": "production",
        "STOREKEEPER_SECRET_KEY": "k" * 40,
    }
    result = await asyncio.to_thread(CliRunner().invoke, cli, ["seed", "--demo"], env=env)
    assert result.exit_code == 2
