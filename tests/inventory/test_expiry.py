"""Hold expiry: the sweeper, several sweepers at once, metrics and the check command."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select, text, update
from typer.testing import CliRunner

from storekeeper.cli import app as cli
from storekeeper.config import LockingStrategy, Settings, StockPolicy
from storekeeper.db import Database, UnitOfWork, utcnow
from storekeeper.events.models import Event
from storekeeper.inventory import cli as inventory_cli
from storekeeper.inventory import service
from storekeeper.inventory.consistency import check_consistency
from storekeeper.inventory.expiry import expire_due_holds, sweep_expired_holds
from storekeeper.inventory.models import Reservation, StockLevel, StockMovement
from storekeeper.tasks import BackgroundRunner, PeriodicJob
from tests.inventory.conftest import Receiver, SkuFactory

CHECKED_AT = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


async def _hold(db: Database, token: str, items: list[tuple[str, int, str | None]]) -> None:
    async with db.transaction() as session:
        await service.create_hold(
            session,
            items,
            ttl_seconds=60,
            policy=StockPolicy(LockingStrategy.ATOMIC),
            client_token=token,
            request_fingerprint=token,
        )


async def _age_all_holds(db: Database) -> None:
    async with db.transaction() as session:
        await session.execute(
            update(Reservation).values(expires_at=utcnow() - timedelta(seconds=1))
        )


async def _reserved(db: Database) -> dict[int, int]:
    async with db.transaction(write=False) as session:
        rows = await session.execute(select(StockLevel.sku_id, StockLevel.reserved))
        return {row.sku_id: row.reserved for row in rows}


async def test_sweeper_expires_due_holds_in_batches(
    db: Database, make_sku: SkuFactory, receive: Receiver
) -> None:
    a = await make_sku("A")
    b = await make_sku("B")
    await receive("A", 20)
    await receive("B", 20)
    for index in range(5):
        await _hold(db, f"old-{index}", [("A", 2, None), ("B", 1, None)])
    await _age_all_holds(db)
    await _hold(db, "live", [("A", 1, None)])

    assert await sweep_expired_holds(db, batch_size=2) == 5
    assert await sweep_expired_holds(db, batch_size=2) == 0
    assert await _reserved(db) == {a: 1, b: 0}
    async with db.transaction(write=False) as session:
        statuses = dict(
            (await session.execute(select(Reservation.client_token, Reservation.status))).all()
        )
        expire_rows = (
            await session.execute(
                select(StockMovement.reference, StockMovement.reserved_delta).where(
                    StockMovement.kind == "expire"
                )
            )
        ).all()
        ids = {str(r.id) for r in (await session.scalars(select(Reservation))).all()}
        report = await check_consistency(session)
    assert statuses == {**{f"old-{i}": "expired" for i in range(5)}, "live": "held"}
    assert len(expire_rows) == 10
    assert {reference for reference, _ in expire_rows} <= ids
    assert sorted(delta for _, delta in expire_rows) == [-2] * 5 + [-1] * 5
    assert report.is_consistent


async def test_two_sweepers_side_by_side_expire_each_hold_once(
    db: Database, postgres_only: None, make_sku: SkuFactory, receive: Receiver
) -> None:
    await make_sku("A")
    await receive("A", 1000)
    for index in range(300):
        await _hold(db, f"h{index}", [("A", 1, None)])
    await _age_all_holds(db)
    other = Database(db.settings)
    try:
        first, second = await asyncio.gather(
            sweep_expired_holds(db, batch_size=25), sweep_expired_holds(other, batch_size=25)
        )
    finally:
        await other.dispose()
    assert first + second == 300
    async with db.transaction(write=False) as session:
        expired = await session.scalar(
            select(func.count()).select_from(StockMovement).where(StockMovement.kind == "expire")
        )
        report = await check_consistency(session)
    assert expired == 300
    assert report.is_consistent
    # One hold.expired per hold, however the two sweepers shared them.
    async with db.transaction(write=False) as session:
        announced = (
            await session.scalars(
                select(Event.data["client_token"]).where(Event.type == "hold.expired")
            )
        ).all()
    assert sorted(announced) == sorted(f"h{index}" for index in range(300))


async def test_a_hold_waits_for_a_sweeper_expiring_the_stock_it_needs(
    db: Database, postgres_only: None, make_sku: SkuFactory, receive: Receiver
) -> None:
    """A sweeper in the middle of expiring the only unit's hold must not make a new hold
    short: the new hold's inline reclaim waits for the sweeper to commit, then claims."""
    await make_sku("A")
    await receive("A", 1)
    await _hold(db, "old", [("A", 1, None)])
    await _age_all_holds(db)
    sweeper = Database(db.settings)
    try:
        async with sweeper.transaction() as session:
            assert await expire_due_holds(session, now=utcnow(), limit=10) == 1
            # The sweeper has not committed yet: the new hold must wait, not give up.
            waiting = asyncio.create_task(_hold(db, "new", [("A", 1, None)]))
            await asyncio.sleep(0.5)
            assert not waiting.done()
        await waiting
    finally:
        await sweeper.dispose()
    async with db.transaction(write=False) as session:
        statuses = dict(
            (await session.execute(select(Reservation.client_token, Reservation.status))).all()
        )
        level = (await session.execute(select(StockLevel.on_hand, StockLevel.reserved))).one()
        report = await check_consistency(session)
    assert statuses == {"old": "expired", "new": "held"}
    assert tuple(level) == (1, 1)
    assert report.is_consistent
    # The sweeper announced the expiry; the reclaim, which found it done, did not again.
    assert (await _expiry_state(db))[3] == 1


async def _expiry_state(db: Database) -> tuple[dict[str, str], int, int, int]:
    """(status by client token, reserved units, expire ledger rows, hold.expired events)."""
    async with db.transaction(write=False) as session:
        statuses = dict(
            (await session.execute(select(Reservation.client_token, Reservation.status))).all()
        )
        reserved = await session.scalar(select(func.sum(StockLevel.reserved)))
        movements = await session.scalar(
            select(func.count()).select_from(StockMovement).where(StockMovement.kind == "expire")
        )
        events = await session.scalar(
            select(func.count()).select_from(Event).where(Event.type == "hold.expired")
        )
    return statuses, int(reserved or 0), movements or 0, events or 0


async def test_a_sweep_stopped_mid_unit_leaves_nothing_half_done(
    db: Database, backend: str, make_sku: SkuFactory, receive: Receiver
) -> None:
    """The runner cancels a job still running when it stops: the job's open unit of work,
    which had expired the holds and written their events, rolls back whole, and gives its
    connection back."""
    await make_sku("A")
    await receive("A", 10)
    for index in range(3):
        await _hold(db, f"h{index}", [("A", 2, None)])
    await _age_all_holds(db)
    inside = asyncio.Event()
    expired_inside: list[int] = []

    async def expire_and_hang(session: Any) -> None:
        expired_inside.append(await expire_due_holds(session, now=utcnow()))
        inside.set()
        # Stopped here, before the unit could commit: on PostgreSQL in the middle of a
        # statement (the driver cancels it on the server).
        if backend == "postgresql":
            await session.execute(text("SELECT pg_sleep(60)"))
        await asyncio.Event().wait()

    async def job(job_db: Database) -> None:
        await UnitOfWork(job_db).run(expire_and_hang)

    runner = BackgroundRunner(db)
    runner.start([PeriodicJob("hanging-sweep", 60, job)])
    await asyncio.wait_for(inside.wait(), 10)
    await asyncio.sleep(0.2)
    await runner.stop()

    assert expired_inside == [3]
    held = {f"h{index}": "held" for index in range(3)}
    assert await _expiry_state(db) == (held, 6, 0, 0)
    assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    # The next sweep expires them, each once, with one event each.
    assert await sweep_expired_holds(db, batch_size=10) == 3
    expired = {f"h{index}": "expired" for index in range(3)}
    assert await _expiry_state(db) == (expired, 0, 3, 3)


async def test_metrics_count_holds_and_refusals(
    client: httpx.AsyncClient,
    db: Database,
    staff_headers: dict[str, str],
    make_sku: SkuFactory,
    receive: Receiver,
) -> None:
    def value(text: str, name: str) -> float:
        line = next(line for line in text.splitlines() if line.startswith(f"{name} "))
        return float(line.split()[1])

    names = [
        "storekeeper_holds_created_total",
        "storekeeper_holds_released_total",
        "storekeeper_insufficient_stock_total",
        "storekeeper_holds_converted_total",
        "storekeeper_holds_expired_total",
    ]
    before = (await client.get("/metrics")).text
    await make_sku("A")
    await receive("A", 1)
    hold = await client.post(
        "/api/v1/inventory/holds",
        headers=staff_headers,
        json={"client_token": "m1", "items": [{"sku": "A", "quantity": 1}]},
    )
    await client.post(
        "/api/v1/inventory/holds",
        headers=staff_headers,
        json={"client_token": "m2", "items": [{"sku": "A", "quantity": 1}]},
    )
    await client.post(f"/api/v1/inventory/holds/{hold.json()['id']}/release", headers=staff_headers)
    converted = await client.post(
        "/api/v1/inventory/holds",
        headers=staff_headers,
        json={"client_token": "m3", "items": [{"sku": "A", "quantity": 1}]},
    )
    await client.post(
        f"/api/v1/inventory/holds/{converted.json()['id']}/convert", headers=staff_headers
    )
    await receive("A", 1)
    await _hold(db, "m4", [("A", 1, None)])
    await _age_all_holds(db)
    assert await sweep_expired_holds(db, batch_size=10) == 1
    after = (await client.get("/metrics")).text
    # created: m1, m3 and m4 (m2 was refused); then one release, one refusal, one
    # conversion, one expiry.
    assert [value(after, n) - value(before, n) for n in names] == [3, 1, 1, 1, 1]
    assert "storekeeper_optimistic_retries_total " in after


async def test_check_command_exit_code(
    db: Database, make_sku: SkuFactory, receive: Receiver
) -> None:
    await make_sku("A")
    await receive("A", 3)
    runner = CliRunner()
    env = {"STOREKEEPER_DATABASE_URL": db.settings.database_url}
    clean = await asyncio.to_thread(runner.invoke, cli, ["check"], env=env)
    assert clean.exit_code == 0, clean.output
    assert orjson.loads(clean.stdout)["is_consistent"] is True

    async with db.transaction() as session:
        await session.execute(update(StockLevel).values(on_hand=4))
    broken = await asyncio.to_thread(runner.invoke, cli, ["check"], env=env)
    assert broken.exit_code == 1
    report = orjson.loads(broken.stdout)
    assert report["issues"] == [
        {
            "sku": "A",
            "location": "MAIN",
            "check": "on_hand_matches_ledger",
            "expected": 3,
            "actual": 4,
        }
    ]


@pytest.mark.parametrize(("api_limit_ms", "report_limit_ms"), [(15_000, 300_000), (0, 0)])
async def test_check_command_gets_more_time_than_an_api_statement(
    monkeypatch: pytest.MonkeyPatch, api_limit_ms: int, report_limit_ms: int
) -> None:
    used: list[Settings] = []

    class RecordingDatabase:
        def __init__(self, settings: Settings) -> None:
            used.append(settings)

        async def run(self, work: Any, *, write: bool) -> Any:
            # What recording a reconciliation run answers: the kept run.
            return SimpleNamespace(
                is_consistent=True, started_at=CHECKED_AT, levels_checked=7, issues=[]
            )

        async def dispose(self) -> None:
            return None

    monkeypatch.setattr(inventory_cli, "Database", RecordingDatabase)
    settings = Settings(db_statement_timeout_ms=api_limit_ms, _env_file=None)  # type: ignore[call-arg]
    report = await inventory_cli._report(settings)
    assert (report.is_consistent, report.checked_at, report.levels_checked) == (
        True,
        CHECKED_AT,
        7,
    )
    assert [s.db_statement_timeout_ms for s in used] == [report_limit_ms]
