"""`storekeeper users …`: user administration from the command line."""

from __future__ import annotations

import asyncio

import typer

from storekeeper.accounts import service
from storekeeper.accounts.models import Role
from storekeeper.accounts.passwords import password_problem
from storekeeper.accounts.schemas import PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH
from storekeeper.config import Settings
from storekeeper.db import Database, UnitOfWork
from storekeeper.errors import Conflict

users_app = typer.Typer(help="User accounts.", no_args_is_help=True)


async def _create_user(
    settings: Settings, email: str, password: str, role: Role, full_name: str | None
) -> int:
    db = Database(settings)
    try:
        user = await UnitOfWork(db).run(
            service.create_user, email=email, password=password, role=role, full_name=full_name
        )
    finally:
        await db.dispose()
    return user.id


@users_app.command("create")
def create(
    email: str = typer.Option(..., help="The sign-in email."),
    # Not `...` (required): it is asked for when omitted, so `--help` must not call it
    # required. A prompted value is never None.
    password: str = typer.Option(
        None,
        prompt=True,
        hide_input=True,
        confirmation_prompt=True,
        help="8-128 characters; asked for when omitted, so it stays out of shell history.",
    ),
    role: Role = typer.Option(Role.CUSTOMER, help="admin, staff or customer."),
    full_name: str | None = typer.Option(None, help="Display name."),
) -> None:
    """Create a user (for example the first admin)."""
    try:
        normalized_email = service.normalize_operator_email(email)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--email") from None
    if not PASSWORD_MIN_LENGTH <= len(password) <= PASSWORD_MAX_LENGTH:
        raise typer.BadParameter(
            f"must be {PASSWORD_MIN_LENGTH}-{PASSWORD_MAX_LENGTH} characters",
            param_hint="--password",
        )
    problem = password_problem(password, normalized_email)
    if problem is not None:
        raise typer.BadParameter(problem, param_hint="--password")
    try:
        user_id = asyncio.run(_create_user(Settings(), normalized_email, password, role, full_name))
    except Conflict as exc:
        typer.echo(exc.detail, err=True)
        raise typer.Exit(code=1) from None
    typer.echo(f"Created {role.value} {normalized_email} (id {user_id}).")
