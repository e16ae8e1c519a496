"""`storekeeper api-keys …`: API keys from the command line (for the first machine client
of a new deployment, before anyone has signed in to the staff pages)."""

from __future__ import annotations

import asyncio
from datetime import datetime

import typer
from pydantic import ValidationError

from storekeeper.accounts import api_keys
from storekeeper.accounts.api_key_schemas import ApiKeyCreate
from storekeeper.accounts.scopes import SCOPES
from storekeeper.config import Settings
from storekeeper.db import Database, UnitOfWork

api_keys_app = typer.Typer(help="API keys for machine clients.", no_args_is_help=True)


async def _create(settings: Settings, data: ApiKeyCreate) -> api_keys.CreatedKey:
    db = Database(settings)
    try:
        return await UnitOfWork(db).run(api_keys.create_api_key, data, created_by=None)
    finally:
        await db.dispose()


@api_keys_app.command("create")
def create(
    name: str = typer.Option(..., help="What the key is for, e.g. 'Storefront checkout'."),
    scope: list[str] = typer.Option(
        ..., "--scope", help=f"A scope (repeat for several): {', '.join(SCOPES)}."
    ),
    expires_at: datetime | None = typer.Option(
        None, formats=["%Y-%m-%dT%H:%M:%S%z"], help="Expiry, e.g. 2027-01-01T00:00:00+00:00."
    ),
    rate_limit_per_minute: int | None = typer.Option(None, help="Requests per minute."),
) -> None:
    """Create a key and print it once (it is stored as a digest only)."""
    try:
        data = ApiKeyCreate(
            name=name,
            scopes=scope,
            expires_at=expires_at,
            rate_limit_per_minute=rate_limit_per_minute,
        )
    except ValidationError as exc:
        problem = exc.errors()[0]
        field = ".".join(str(part) for part in problem["loc"][:1])
        hint = f"--{field.replace('_', '-')}"
        raise typer.BadParameter(problem["msg"], param_hint=hint) from None
    created = asyncio.run(_create(Settings(), data))
    typer.echo(f"Created API key {created.key.id} ({created.key.prefix}…) for {data.name!r}.")
    typer.echo("Keep it now; it is not shown again:")
    typer.echo(created.raw_key)
