"""Kept reconciliation runs (API, command line, schedule) and the `as_of` level read."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text, update
from typer.testing import CliRunner

from storekeeper.config import Settings
from storekeeper.db import Database, utcnow
from storekeeper.inventory.models import ReconciliationRun, StockLevel
from storekeeper.inventory.reconciliation import reconcile_on_schedule
from tests.inventory.conftest import Receiver, SkuFactory

API = "/api/v1"
RUNS = f"{API}/inventory/reconciliation-runs"


async def test_runs_are_kept_listed_newest_first_and_read_back(
    client: httpx.AsyncClient,
    staff_headers: dict[str, str],
    make_sku: SkuFactory,
    receive: Receiver,
    db: Database,
) -> None:
    await make_sku("REC-1")
    await receive("REC-1", 5)
    first = await client.post(RUNS, headers=staff_headers)
    assert first.status_code == 201
    body = first.json()
    assert set(body) == {
        "id",
        "started_at",
        "finished_at",
        "levels_checked",
        "is_consistent",
        "issues",
        "trigger",
    }
    assert (body["is_consistent"], body["levels_checked"], body["issues"]) == (True, 1, [])
    assert body["trigger"] == "api"
    # Break a level behind the ledger's back: the next run finds it.
    async with db.transaction() as session:
        await session.execute(update(StockLevel).values(on_hand=StockLevel.on_hand + 2))
    second = (await client.post(RUNS, headers=staff_headers)).json()
    assert second["is_consistent"] is False
    assert second["issues"] == [
        {
            "sku": "REC-1",
            "location": "MAIN",
            "check": "on_hand_matches_ledger",
            "expected": 5,
            "actual": 7,
        }
    ]
    third = (await client.post(RUNS, headers=staff_headers)).json()

    page = (await client.get(RUNS, headers=staff_headers, params={"limit": 2})).json()
    assert [run["id"] for run in page["items"]] == [third["id"], second["id"]]
    rest = (
        await client.get(RUNS, headers=staff_headers, params={"cursor": page["next_cursor"]})
    ).json()
    assert [run["id"] for run in rest["items"]] == [body["id"]]
    assert rest["next_cursor"] is None
    read = (await client.get(f"{RUNS}/{second['id']}", headers=staff_headers)).json()
    assert read == second
    missing = await client.get(f"{RUNS}/999999", headers=staff_headers)
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"
    bad = await client.get(RUNS, headers=staff_headers, params={"cursor": "zz"})
    assert bad.status_code == 422


async def test_runs_are_staff_only(
    client: httpx.AsyncClient, customer_headers: dict[str, str]
) -> None:
    assert (await client.post(RUNS)).status_code == 401
    assert (await client.post(RUNS, headers=customer_headers)).status_code == 403
    assert (await client.get(RUNS, headers=customer_headers)).status_code == 403


async def test_scheduled_runs_one_per_period_across_processes(
    settings: Settings, db: Database
) -> None:
    # Four "processes" (databases of their own) try at once: one run is recorded.
    others = [Database(settings) for _ in range(4)]
    try:
        await asyncio.gather(*(reconcile_on_schedule(d, interval_seconds=3600) for d in others))
        async with db.transaction(write=False) as session:
            runs = (await session.scalars(select(ReconciliationRun))).all()
        assert [run.trigger for run in runs] == ["schedule"]
        # Not due yet: nothing more.
        await reconcile_on_schedule(others[0], interval_seconds=3600)
        async with db.transaction() as session:
            count = (await session.execute(select(func.count(ReconciliationRun.id)))).scalar_one()
            assert count == 1
            await session.execute(
                text("UPDATE reconciliation_schedule SET last_run_at = :t"),
                {"t": utcnow() - timedelta(hours=2)},
            )
        await reconcile_on_schedule(others[1], interval_seconds=3600)
        async with db.transaction(write=False) as session:
            count = (await session.execute(select(func.count(ReconciliationRun.id)))).scalar_one()
        assert count == 2
    finally:
        for other in others:
            await other.dispose()


def test_check_command_records_a_run(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from storekeeper.cli import app as cli_app

    monkeypatch.setenv("STOREKEEPER_DATABASE_URL", settings.database_url)

    async def runs() -> list[str]:
        db = Database(settings)
        try:
            async with db.transaction(write=False) as session:
                return [
                    run.trigger for run in (await session.scalars(select(ReconciliationRun))).all()
                ]
        finally:
            await db.dispose()

    # A test without the app does not start from an emptied database: count what it adds.
    before = asyncio.run(runs())
    result = CliRunner().invoke(cli_app, ["check"])
    assert result.exit_code in (0, 1), result.output
    after = asyncio.run(runs())
    assert after[: len(before)] == before
    assert after[len(before) :] == ["cli"]


async def test_as_of_reads_the_past_and_refuses_a_naive_time(
    client: httpx.AsyncClient,
    staff_headers: dict[str, str],
    make_sku: SkuFactory,
    receive: Receiver,
) -> None:
    await make_sku("ASOF-1")
    before = utcnow()
    await asyncio.sleep(0.01)
    await receive("ASOF-1", 4)
    await asyncio.sleep(0.01)
    middle = utcnow()
    await asyncio.sleep(0.01)
    await receive("ASOF-1", 6)

    async def at(moment: Any) -> dict[str, Any]:
        response = await client.get(
            f"{API}/inventory/ASOF-1", headers=staff_headers, params={"as_of": moment.isoformat()}
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    assert (await at(before))["locations"] == []
    assert (await at(before))["on_hand"] == 0
    assert (await at(middle))["on_hand"] == 4
    assert (await at(utcnow()))["on_hand"] == 10
    naive = await client.get(
        f"{API}/inventory/ASOF-1", headers=staff_headers, params={"as_of": "2026-11-23T10:00:00"}
    )
    assert naive.status_code == 422
    assert naive.json()["code"] == "validation_error"
    unknown = await client.get(
        f"{API}/inventory/NOPE-1", headers=staff_headers, params={"as_of": middle.isoformat()}
    )
    assert unknown.status_code == 404
