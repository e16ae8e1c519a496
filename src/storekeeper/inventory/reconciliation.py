"""Reconciliation runs: consistency reports kept in the database.

A run is the consistency report (`consistency.check_consistency`) with when it started and
finished and who asked for it (`api`, `cli` or `schedule`). With
STOREKEEPER_RECONCILE_INTERVAL_SECONDS > 0 every process runs `reconcile_on_schedule`; a
run is recorded once per period whatever the number of processes, because the period is
claimed by a conditional update of the single `reconciliation_schedule` row: on PostgreSQL
the row is first locked with `FOR UPDATE SKIP LOCKED`, so a process that finds another one
reconciling moves on at once instead of waiting for it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper.db import Database, UnitOfWork, is_postgres, utcnow
from storekeeper.errors import NotFound
from storekeeper.inventory.consistency import Report, check_consistency
from storekeeper.inventory.models import ReconciliationRun, ReconciliationSchedule


async def record_run(session: AsyncSession, *, trigger: str) -> ReconciliationRun:
    """Check consistency now and keep the report as a run."""
    started_at = utcnow()
    report = await check_consistency(session)
    run = ReconciliationRun(
        started_at=started_at,
        finished_at=utcnow(),
        levels_checked=report.levels_checked,
        is_consistent=report.is_consistent,
        issues=[dataclasses.asdict(issue) for issue in report.issues],
        trigger=trigger,
    )
    session.add(run)
    await session.flush()
    return run


async def list_runs(
    session: AsyncSession, *, after: tuple[datetime, int] | None, limit: int
) -> list[ReconciliationRun]:
    """Runs newest first (by start, then id), `limit` of them after the (started_at, id)
    key of the last one seen (keyset)."""
    query = select(ReconciliationRun)
    if after is not None:
        started_at, run_id = after
        query = query.where(
            or_(
                ReconciliationRun.started_at < started_at,
                and_(ReconciliationRun.started_at == started_at, ReconciliationRun.id < run_id),
            )
        )
    query = query.order_by(ReconciliationRun.started_at.desc(), ReconciliationRun.id.desc())
    return list((await session.scalars(query.limit(limit))).all())


async def get_run(session: AsyncSession, run_id: int) -> ReconciliationRun:
    run = await session.get(ReconciliationRun, run_id)
    if run is None:
        raise NotFound(f"No reconciliation run {run_id}.")
    return run


@dataclass(frozen=True)
class ConsistencyPage:
    """What the staff consistency page shows: the report as of now and the kept runs."""

    report: Report
    runs: list[ReconciliationRun]


async def consistency_page(
    session: AsyncSession, *, after: tuple[datetime, int] | None, limit: int
) -> ConsistencyPage:
    return ConsistencyPage(
        await check_consistency(session), await list_runs(session, after=after, limit=limit)
    )


async def record_if_due(
    session: AsyncSession, *, interval_seconds: float
) -> ReconciliationRun | None:
    """Record a scheduled run if the period since the last one has passed and no other
    process is recording it; None otherwise."""
    now = utcnow()
    due = or_(
        ReconciliationSchedule.last_run_at.is_(None),
        ReconciliationSchedule.last_run_at <= now - timedelta(seconds=interval_seconds),
    )
    if is_postgres(session):
        locked = (
            await session.execute(
                select(ReconciliationSchedule.id)
                .where(ReconciliationSchedule.id == 1, due)
                .with_for_update(skip_locked=True)
            )
        ).scalar_one_or_none()
        if locked is None:
            return None
    claimed = (
        await session.execute(
            update(ReconciliationSchedule)
            .where(ReconciliationSchedule.id == 1, due)
            .values(last_run_at=now)
            .returning(ReconciliationSchedule.id)
            .execution_options(synchronize_session=False)
        )
    ).scalar_one_or_none()
    if claimed is None:
        return None
    return await record_run(session, trigger="schedule")


async def reconcile_on_schedule(db: Database, *, interval_seconds: float) -> None:
    """The periodic job: one unit of work that records a run when one is due."""
    await UnitOfWork(db).run(record_if_due, interval_seconds=interval_seconds)
