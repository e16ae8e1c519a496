"""`storekeeper worker`: a server process's periodic jobs, without serving HTTP.

For deployments that separate the two: the worker runs `app.periodic_jobs(settings)` (the
expiry sweep, event publication and whatever else is registered there) with the same
`BackgroundRunner` a server process uses, so servers started with
`STOREKEEPER_RUN_BACKGROUND_TASKS=false` leave that work to it. Jobs coordinate through
the database (row locks, `FOR UPDATE SKIP LOCKED`), so any number of workers and servers
may run side by side.

SIGTERM or SIGINT stops it the way a server process stops its jobs (`BackgroundRunner.stop`):
no job starts another run and a run in progress is cancelled. A cancelled run loses only
its open unit of work, which rolls back (units are all-or-nothing); the units it committed
before stay committed, and the next run, in any process, carries on from there. Then the
database's connections are closed and the command exits with 0.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from contextlib import contextmanager

import structlog

from storekeeper.app import periodic_jobs
from storekeeper.config import Settings
from storekeeper.db import Database
from storekeeper.observability import configure_logging
from storekeeper.tasks import BackgroundRunner

log = structlog.get_logger("storekeeper.worker")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def _stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)
    try:
        yield
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)


async def run_worker(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Run the periodic jobs until SIGTERM or SIGINT (or `stop` is set), then stop them
    and close the database's connections."""
    stop = stop or asyncio.Event()
    db = Database(settings)
    runner = BackgroundRunner(db)
    jobs = periodic_jobs(settings)
    try:
        with _stop_on_signals(stop):
            runner.start(jobs)
            log.info("worker_started", jobs=[job.name for job in jobs])
            await stop.wait()
            log.info("worker_stopping")
    finally:
        await runner.stop()
        await db.dispose()
    log.info("worker_stopped")


def main(settings: Settings) -> None:
    """The command's body: logging as configured, then `run_worker` on a fresh loop."""
    configure_logging(settings.effective_log_format, settings.log_level)
    asyncio.run(run_worker(settings))
