"""`storekeeper check`: the consistency report from the command line, kept as a
reconciliation run."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import orjson
import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from storekeeper.config import Settings
from storekeeper.db import Database, UnitOfWork
from storekeeper.inventory.consistency import Issue, Report
from storekeeper.inventory.reconciliation import record_run

# The report aggregates every level and the whole ledger in one statement: on millions of
# levels that outlasts the limit an API statement gets (which the driver also enforces on
# the client side), so the command gets its own.
REPORT_TIMEOUT_MS = 300_000


async def _report(settings: Settings) -> Report:
    if settings.db_statement_timeout_ms:
        timeout_ms = max(settings.db_statement_timeout_ms, REPORT_TIMEOUT_MS)
        settings = settings.model_copy(update={"db_statement_timeout_ms": timeout_ms})
    db = Database(settings)
    try:
        # The report is kept as a reconciliation run (trigger `cli`).
        run = await UnitOfWork(db).run(record_run, trigger="cli")
        return Report(
            run.is_consistent,
            run.started_at,
            run.levels_checked,
            [Issue(**issue) for issue in run.issues],
        )
    finally:
        await db.dispose()


def progress_console() -> Console:
    """Where `check` shows that it is working: standard error (standard output carries
    only the report)."""
    return Console(stderr=True)


def _run_with_progress(settings: Settings) -> Report:
    """The report; on a terminal a spinner with the elapsed time runs meanwhile (one
    statement does the work, so there is no fraction done to show), and the time it took
    is printed at the end. Anything else (a pipe, a file, CI) gets nothing extra."""
    console = progress_console()
    if not console.is_terminal:
        return asyncio.run(_report(settings))
    progress = Progress(
        SpinnerColumn(),
        TextColumn("Checking stock levels against reservations and the ledger"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    started = time.perf_counter()
    with progress:
        progress.add_task("check", total=None)
        report = asyncio.run(_report(settings))
    console.print(
        f"Checked {report.levels_checked} stock levels in {time.perf_counter() - started:.1f} s."
    )
    return report


def check() -> None:
    """Check stock figures against reservations and the ledger; prints the report as
    JSON and exits 1 when anything is inconsistent."""
    report = _run_with_progress(Settings())
    typer.echo(orjson.dumps(dataclasses.asdict(report), option=orjson.OPT_INDENT_2).decode())
    if not report.is_consistent:
        typer.echo(f"{len(report.issues)} consistency issue(s) found.", err=True)
        raise typer.Exit(code=1)
