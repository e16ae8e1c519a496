"""Periodic background jobs run inside each server process (and by `storekeeper worker`).

Jobs coordinate through the database (row locks, `FOR UPDATE SKIP LOCKED`), never through
this process, so any number of processes may run the same job side by side.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from storekeeper.db import Database

log = structlog.get_logger("storekeeper.tasks")

JobFunction = Callable[[Database], Awaitable[object]]


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    interval_seconds: float
    run: JobFunction


class BackgroundRunner:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    def start(self, jobs: list[PeriodicJob]) -> None:
        for job in jobs:
            self._tasks.append(asyncio.create_task(self._loop(job), name=f"job:{job.name}"))

    async def _loop(self, job: PeriodicJob) -> None:
        while not self._stopping.is_set():
            try:
                await job.run(self.db)
            except asyncio.CancelledError:
                raise
            except Exception:
                # A failing run must not kill the loop: the next period tries again.
                log.exception("background_job_failed", job=job.name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), job.interval_seconds)

    async def stop(self) -> None:
        """Stop every job: none starts another run, and a run in progress is cancelled.
        The cancelled run's open unit of work rolls back (`Database.transaction` rolls back
        on any exception, cancellation included) and the units it committed before stay
        committed, so it leaves nothing half-done; the next run, here or in another
        process, picks up where it stopped."""
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
