"""The `storekeeper` command line: serve, migrate, and operate the service."""

from __future__ import annotations

import asyncio
import os
import tempfile

import typer
import uvicorn

from storekeeper import migrate
from storekeeper import worker as worker_process
from storekeeper.accounts.api_key_cli import api_keys_app
from storekeeper.accounts.cli import users_app
from storekeeper.config import Environment, Settings
from storekeeper.db import Database
from storekeeper.inventory.cli import check
from storekeeper.observability import configure_logging
from storekeeper.seed import seed as seed_database

app = typer.Typer(help="Storekeeper: inventory, reservations and orders.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(api_keys_app, name="api-keys")
app.command("check")(check)


def _require_current_schema(settings: Settings) -> None:
    """Exit with code 2 when the database's schema is behind this version."""
    if not asyncio.run(migrate.schema_is_current(settings)):
        typer.echo(
            "The database schema is behind this version of Storekeeper. "
            "Run `storekeeper db upgrade` first.",
            err=True,
        )
        raise typer.Exit(code=2)


# uvicorn's own default (5 s) kills workers that are busy, not hung, whenever the host is
# saturated (a flash sale, a noisy neighbour): their requests are cut off and the restarts
# add load. A hung worker is still replaced, only later.
WORKER_HEALTHCHECK_SECONDS = 30


@app.command()
def serve(
    # The variables are the container image's way to set them (its entrypoint runs
    # `storekeeper serve` with no options).
    host: str = typer.Option("127.0.0.1", envvar="STOREKEEPER_HOST", help="Interface to bind."),
    port: int = typer.Option(8000, envvar="STOREKEEPER_PORT", help="TCP port."),
    workers: int = typer.Option(
        1, min=1, max=64, envvar="STOREKEEPER_WORKERS", help="Server processes."
    ),
    worker_healthcheck_seconds: int = typer.Option(
        WORKER_HEALTHCHECK_SECONDS,
        min=1,
        help="With several workers: how long a worker may take to answer the supervisor's "
        "health check before it is killed and replaced.",
    ),
) -> None:
    """Serve the HTTP API and the staff pages (uvicorn with uvloop and httptools)."""
    settings = Settings()
    _require_current_schema(settings)
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Workers are separate processes: let /metrics add up all of them.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="storekeeper-metrics-")
    # uvicorn's lines go through the service's logging (one format on stderr): configured
    # here for the supervising process, and again by each worker's app.
    configure_logging(settings.effective_log_format, settings.log_level)
    uvicorn.run(
        "storekeeper.main:app",
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        # One rule for the client address: the app takes it from X-Forwarded-For only when
        # the peer is in STOREKEEPER_TRUSTED_PROXIES (storekeeper.ratelimit). uvicorn's own
        # rewriting (which believes 127.0.0.1 by default) would be a second rule, and would
        # hide the real peer from that check.
        proxy_headers=False,
        server_header=False,
        timeout_worker_healthcheck=worker_healthcheck_seconds,
    )


@app.command()
def worker() -> None:
    """Run the background jobs (expiry sweep, event publication, deliveries) without
    serving HTTP, until SIGTERM or SIGINT."""
    settings = Settings()
    _require_current_schema(settings)
    worker_process.main(settings)


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Bring the database schema up to date."""
    settings = Settings()
    migrate.upgrade(settings.database_url, revision)
    typer.echo(f"Database at revision {revision}.")


async def _wait_for_database(settings: Settings, seconds: float, interval: float) -> str | None:
    """Ping the database until it answers or `seconds` have passed; returns None once it
    answered, else the last failure (each failure is printed: the wait is not silent)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    db = Database(settings)
    try:
        while True:
            try:
                await db.ping(within_seconds=max(0.5, min(5.0, deadline - loop.time())))
                return None
            except Exception as exc:
                failure = f"{type(exc).__name__}: {exc}".strip()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return failure
            typer.echo(f"Waiting for the database ({failure})", err=True)
            await asyncio.sleep(min(interval, remaining))
    finally:
        await db.dispose()


@db_app.command("wait")
def db_wait(
    timeout: float = typer.Option(60.0, min=0, help="Seconds to keep trying."),
    interval: float = typer.Option(1.0, min=0.05, help="Seconds between attempts."),
) -> None:
    """Wait until the database accepts connections; exit 1 when it has not within
    `--timeout` seconds (container start-up: the database may start after the service)."""
    settings = Settings()
    failure = asyncio.run(_wait_for_database(settings, timeout, interval))
    if failure is not None:
        typer.echo(f"The database did not answer within {timeout:g} s: {failure}", err=True)
        raise typer.Exit(code=1)
    typer.echo("The database answers.")


@db_app.command("current")
def db_current() -> None:
    """Print the database's schema revision and the newest one."""
    settings = Settings()
    current = asyncio.run(migrate.current_revision(settings))
    typer.echo(f"current: {current or '(empty)'}  head: {migrate.head_revision()}")


@app.command()
def seed(
    demo: bool = typer.Option(False, "--demo", help="Also add demo users and data."),
) -> None:
    """Put seed data in the database (idempotent)."""
    settings = Settings()
    if demo and settings.env is Environment.PRODUCTION:
        # Demo accounts have published passwords.
        typer.echo("Refusing to add demo data when STOREKEEPER_ENV=production.", err=True)
        raise typer.Exit(code=2)

    async def _run() -> None:
        db = Database(settings)
        try:
            await seed_database(db, settings, demo=demo)
        finally:
            await db.dispose()

    asyncio.run(_run())
    typer.echo("Seed data in place." if not demo else "Seed and demo data in place.")
