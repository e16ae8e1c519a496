"""Hold expiry with two server processes sweeping side by side."""

from __future__ import annotations

import asyncio
from datetime import datetime

import httpx
from sqlalchemy import func, select

from storekeeper.db import Database, utcnow
from storekeeper.inventory.models import StockMovement
from tests.system.conftest import ServerRunner
from tests.system.test_inventory_concurrency import assert_consistent, fire, stock_up

HOLDS = "/api/v1/inventory/holds"
SWEEP_INTERVAL = 0.5
# Generous: the test machine may be busy; the sweep itself runs every SWEEP_INTERVAL.
SWEEP_DEADLINE_SECONDS = 5.0


async def test_short_holds_expire_and_free_their_stock(
    run_servers: ServerRunner, system_db: Database, staff_headers: dict[str, str]
) -> None:
    await stock_up(system_db, {"ONE": 1, "SWEPT": 1, "M1": 40, "M2": 40})
    async with (
        run_servers(count=2, expiry_interval_seconds=SWEEP_INTERVAL) as cluster,
        httpx.AsyncClient(timeout=30) as client,
    ):

        async def hold(index: int, token: str, sku: str, ttl: int | None = None) -> httpx.Response:
            body: dict[str, object] = {
                "client_token": token,
                "items": [{"sku": sku, "quantity": 1}],
            }
            if ttl:
                body["ttl_seconds"] = ttl
            return await client.post(
                f"{cluster.url(index)}{HOLDS}", headers=staff_headers, json=body
            )

        # ttl_seconds=1: the unit is free for a new hold right after expiry.
        first = await hold(0, "first", "ONE", ttl=1)
        assert first.status_code == 201
        assert (await hold(1, "too-early", "ONE")).status_code == 409
        swept = (await hold(1, "swept", "SWEPT", ttl=1)).json()
        expires_at = datetime.fromisoformat(first.json()["expires_at"])
        await asyncio.sleep(max((expires_at - utcnow()).total_seconds(), 0) + 0.05)
        second = await hold(1, "second", "ONE")
        assert second.status_code == 201

        # Nobody needs SWEPT's unit: the sweepers mark that hold expired on their own.
        swept_at = datetime.fromisoformat(swept["expires_at"])
        while True:
            status = (
                await client.get(f"{cluster.url(0)}{HOLDS}/{swept['id']}", headers=staff_headers)
            ).json()["status"]
            if status == "expired":
                break
            assert (utcnow() - swept_at).total_seconds() < SWEEP_DEADLINE_SECONDS
            await asyncio.sleep(0.1)

        # Many short holds over both servers; both sweepers expire each exactly once.
        responses = await fire(
            cluster,
            staff_headers,
            [
                {
                    "client_token": f"many-{i}",
                    "items": [{"sku": "M1", "quantity": 1}, {"sku": "M2", "quantity": 1}],
                    "ttl_seconds": 1,
                }
                for i in range(40)
            ],
        )
        assert {r.status_code for r in responses} == {201}
        deadline = utcnow().timestamp() + 1.0 + SWEEP_DEADLINE_SECONDS
        for sku in ("M1", "M2"):
            while True:
                stock = (
                    await client.get(
                        f"{cluster.url(1)}/api/v1/inventory/{sku}", headers=staff_headers
                    )
                ).json()
                if stock["reserved"] == 0:
                    break
                assert utcnow().timestamp() < deadline, stock
                await asyncio.sleep(0.1)
        listed = (
            await client.get(
                f"{cluster.url(0)}{HOLDS}?status=expired&limit=200", headers=staff_headers
            )
        ).json()
        assert len(listed["items"]) == 42
        async with system_db.transaction(write=False) as session:
            expire_movements = await session.scalar(
                select(func.count())
                .select_from(StockMovement)
                .where(StockMovement.kind == "expire")
            )
        assert expire_movements == 82
        await assert_consistent(cluster, staff_headers)
