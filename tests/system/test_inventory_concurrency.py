"""Stock under concurrency: two real server processes, one PostgreSQL database.

For each locking strategy, concurrent requests spread over both servers must never
oversell, must produce exactly one hold per client token, must not deadlock or half-hold on
batches in opposite orders, must announce each SKU's stock crossings exactly once, and must
leave the figures consistent with the ledger.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from storekeeper.config import LockingStrategy, StockPolicy
from storekeeper.db import Database
from storekeeper.events.models import Event
from storekeeper.inventory import stock as inventory_stock
from storekeeper.inventory.models import Reservation, ReservationLine, StockMovement
from tests.inventory.conftest import insert_skus
from tests.system.conftest import Cluster, ServerRunner

HOLDS = "/api/v1/inventory/holds"


async def stock_up(db: Database, stock: dict[str, int]) -> None:
    async with db.transaction() as session:
        await insert_skus(session, list(stock))
    for code, quantity in stock.items():
        async with db.transaction() as session:
            await inventory_stock.adjust_stock(
                session,
                code,
                delta=quantity,
                reason="receive",
                policy=StockPolicy(LockingStrategy.ATOMIC),
            )


async def fire(
    cluster: Cluster, headers: dict[str, str], bodies: list[dict[str, Any]]
) -> list[httpx.Response]:
    """POST every body to the holds endpoint at once, alternating between the servers."""
    limits = httpx.Limits(max_connections=len(bodies), max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=60.0, limits=limits) as client:
        return await asyncio.gather(
            *(
                client.post(f"{cluster.url(i)}{HOLDS}", headers=headers, json=body)
                for i, body in enumerate(bodies)
            )
        )


async def figures(cluster: Cluster, headers: dict[str, str], sku: str) -> tuple[int, ...]:
    async with httpx.AsyncClient() as client:
        body = (
            await client.get(f"{cluster.url(0)}/api/v1/inventory/{sku}", headers=headers)
        ).json()
    return body["on_hand"], body["reserved"], body["allocated"], body["available"]


async def assert_consistent(cluster: Cluster, headers: dict[str, str]) -> None:
    async with httpx.AsyncClient() as client:
        report = (
            await client.get(f"{cluster.url(1)}/api/v1/inventory/consistency", headers=headers)
        ).json()
    assert report["issues"] == []
    assert report["is_consistent"] is True


def statuses(responses: list[httpx.Response]) -> collections.Counter[tuple[int, str]]:
    return collections.Counter(
        (r.status_code, r.json().get("code", "") if r.status_code >= 400 else "") for r in responses
    )


@pytest.mark.parametrize("locking", [strategy.value for strategy in LockingStrategy])
async def test_no_oversell_one_hold_per_token_no_deadlock(
    run_servers: ServerRunner,
    system_db: Database,
    staff_headers: dict[str, str],
    locking: str,
) -> None:
    await stock_up(system_db, {"HOT": 50, "X": 30, "Y": 30, "Z": 30, "DUP": 5, "RACE": 1000})
    async with run_servers(count=2, locking=locking, background_tasks=False) as cluster:
        # 200 single-unit holds against 50 on hand.
        responses = await fire(
            cluster,
            staff_headers,
            [
                {"client_token": f"hot-{i}", "items": [{"sku": "HOT", "quantity": 1}]}
                for i in range(200)
            ],
        )
        assert statuses(responses) == {(201, ""): 50, (409, "insufficient_stock"): 150}, (
            cluster.output()
        )
        for refused in (r for r in responses if r.status_code == 409):
            assert refused.json()["shortages"] == [{"sku": "HOT", "requested": 1, "available": 0}]
        assert await figures(cluster, staff_headers, "HOT") == (50, 50, 0, 0)

        # 50 concurrent requests with one client token: one hold, every answer carries it.
        duplicate = {"client_token": "one-token", "items": [{"sku": "DUP", "quantity": 2}]}
        responses = await fire(cluster, staff_headers, [duplicate] * 50)
        assert all(r.status_code in (200, 201) for r in responses), statuses(responses)
        assert sum(r.status_code == 201 for r in responses) == 1
        assert len({r.json()["id"] for r in responses}) == 1
        assert await figures(cluster, staff_headers, "DUP") == (5, 2, 0, 3)

        # Batches over the same SKUs in opposite orders: no deadlock, no partial hold.
        forward = [{"sku": code, "quantity": 1} for code in ("X", "Y", "Z")]
        responses = await fire(
            cluster,
            staff_headers,
            [
                {"client_token": f"batch-{i}", "items": forward if i % 2 else forward[::-1]}
                for i in range(60)
            ],
        )
        assert statuses(responses) == {(201, ""): 30, (409, "insufficient_stock"): 30}
        for code in ("X", "Y", "Z"):
            assert await figures(cluster, staff_headers, code) == (30, 30, 0, 0)
        async with system_db.transaction(write=False) as session:
            line_counts = (
                await session.execute(
                    select(func.count(ReservationLine.id)).group_by(ReservationLine.reservation_id)
                )
            ).scalars()
            assert collections.Counter(line_counts) == {1: 51, 3: 30}
            holds = await session.scalar(select(func.count(Reservation.id)))
            assert holds == 81
            assert await session.scalar(select(func.count(StockMovement.id))) == 6 + 51 + 90

        # A 64-way race on one SKU with plenty of stock: every request holds, or (only
        # under optimistic locking, when its retries run out) gets a clean 409.
        responses = await fire(
            cluster,
            staff_headers,
            [
                {"client_token": f"race-{i}", "items": [{"sku": "RACE", "quantity": 3}]}
                for i in range(64)
            ],
        )
        outcome = statuses(responses)
        allowed = {(201, "")}
        if locking == LockingStrategy.OPTIMISTIC:
            allowed.add((409, "concurrent_update"))
        assert set(outcome) <= allowed, outcome
        held = outcome[(201, "")]
        assert held >= 1
        assert await figures(cluster, staff_headers, "RACE") == (
            1000,
            3 * held,
            0,
            1000 - 3 * held,
        )

        await assert_consistent(cluster, staff_headers)

    # Each SKU crossed each line once, whichever process wrote the crossing hold: back in
    # stock on receipt, low at 5 and out at 0 for those sold out (DUP and RACE stayed
    # above or started at the threshold).
    async with system_db.transaction(write=False) as session:
        announced = (
            await session.execute(
                select(Event.type, Event.data).where(Event.type.like("stock.%")).order_by(Event.seq)
            )
        ).all()
    by_type = collections.Counter(
        (kind, data["sku"], data["available"]) for kind, data in announced
    )
    expected = {
        ("stock.back_in_stock", code, units): 1
        for code, units in (
            ("HOT", 50),
            ("X", 30),
            ("Y", 30),
            ("Z", 30),
            ("DUP", 5),
            ("RACE", 1000),
        )
    }
    for code in ("HOT", "X", "Y", "Z"):
        expected[("stock.low", code, 5)] = 1
        expected[("stock.out", code, 0)] = 1
    assert by_type == expected
