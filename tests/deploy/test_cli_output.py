"""What the command line shows: `users create --help` does not call the prompted password
required; `check` shows progress on a terminal and nothing extra anywhere else."""

from __future__ import annotations

import asyncio
import io
import re

import orjson
import pytest
from rich.console import Console
from typer.testing import CliRunner

from storekeeper.cli import app as cli
from storekeeper.db import Database
from storekeeper.inventory import cli as inventory_cli
from tests.web.shop import stocked_shop


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_users_create_help_does_not_mark_the_password_required() -> None:
    result = CliRunner().invoke(cli, ["users", "create", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    lines = _plain(result.stdout).splitlines()
    (password,) = [line for line in lines if "--password" in line]
    (email,) = [line for line in lines if "--email" in line]
    assert "required" not in password
    assert "[required]" in email


def test_users_create_still_asks_for_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    # Omitted: prompted (twice, for confirmation); a mismatch is asked again, not accepted.
    result = CliRunner().invoke(
        cli,
        ["users", "create", "--email", "x@example.com"],
        input="first-password-1\nother-password-2\n\n\n",
    )
    assert "Password:" in result.output
    assert "Error: The two entered values do not match." in result.output
    assert result.exit_code == 1


async def test_check_off_a_terminal_prints_only_the_report(db: Database) -> None:
    await stocked_shop(db, {"A": 3, "B": 1})
    env = {"STOREKEEPER_DATABASE_URL": db.settings.database_url}
    result = await asyncio.to_thread(CliRunner().invoke, cli, ["check"], env=env)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert orjson.loads(result.stdout)["levels_checked"] == 2


async def test_check_on_a_terminal_shows_progress(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await stocked_shop(db, {"A": 3, "B": 1})
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=100)
    monkeypatch.setattr(inventory_cli, "progress_console", lambda: terminal)
    env = {"STOREKEEPER_DATABASE_URL": db.settings.database_url}
    result = await asyncio.to_thread(CliRunner().invoke, cli, ["check"], env=env)
    assert result.exit_code == 0, result.output
    shown = _plain(screen.getvalue())
    assert "Checking stock levels against reservations and the ledger" in shown
    assert re.search(r"Checked 2 stock levels in \d+\.\d s\.", shown)
    # The report itself is unchanged on standard output.
    assert orjson.loads(result.stdout)["levels_checked"] == 2
