"""Locations, adjustments, stock figures, the ledger and its feed, allocations over HTTP."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import delete, event, func, select, update
from sqlalchemy.exc import DBAPIError

from storekeeper.config import LockingStrategy
from storekeeper.db import Database
from storekeeper.inventory.models import StockLevel, StockMovement
from tests.inventory.conftest import Receiver, SkuFactory

API = "/api/v1"


@pytest.fixture
def statements(db: Database) -> list[str]:
    """SQL statements the app sends (cleared by the test before the part it measures)."""
    sent: list[str] = []

    def _record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", _record)
    return sent


async def _adjust(
    client: httpx.AsyncClient, headers: dict[str, str], sku: str, **body: Any
) -> httpx.Response:
    return await client.post(f"{API}/inventory/{sku}/adjustments", headers=headers, json=body)


async def test_locations_and_priority_choice(
    client: httpx.AsyncClient,
    staff_headers: dict[str, str],
    make_sku: SkuFactory,
    receive: Receiver,
    locking: LockingStrategy,
) -> None:
    created = await client.post(
        f"{API}/locations",
        headers=staff_headers,
        json={"code": "east", "name": "East depot", "priority": 200},
    )
    assert created.status_code == 201
    assert created.json()["code"] == "EAST"
    assert created.json()["priority"] == 200
    duplicate = await client.post(
        f"{API}/locations", headers=staff_headers, json={"code": "EAST", "name": "Again"}
    )
    assert duplicate.status_code == 409
    assert duplicate.json()["code"] == "conflict"
    listed = (await client.get(f"{API}/locations", headers=staff_headers)).json()
    assert [location["code"] for location in listed["items"]] == ["EAST", "MAIN"]
    assert listed["next_cursor"] is None

    await make_sku("A")
    await receive("A", 10)  # the highest-priority location: EAST
    await receive("A", 3, "MAIN")
    stock = (await client.get(f"{API}/inventory/A", headers=staff_headers)).json()
    assert stock == {
        "sku": "A",
        "on_hand": 13,
        "reserved": 0,
        "allocated": 0,
        "available": 13,
        "locations": [
            {"location": "EAST", "on_hand": 10, "reserved": 0, "allocated": 0, "available": 10},
            {"location": "MAIN", "on_hand": 3, "reserved": 0, "allocated": 0, "available": 3},
        ],
    }

    async def hold(token: str, quantity: int, location: str | None = None) -> httpx.Response:
        item: dict[str, Any] = {"sku": "A", "quantity": quantity}
        if location:
            item["location"] = location
        return await client.post(
            f"{API}/inventory/holds",
            headers=staff_headers,
            json={"client_token": token, "items": [item]},
        )

    first = await hold("h1", 8)
    assert first.json()["items"] == [{"sku": "A", "quantity": 8, "location": "EAST"}]
    # EAST has 2 left, so the whole line comes from MAIN; lines are never split.
    second = await hold("h2", 3)
    assert second.json()["items"] == [{"sku": "A", "quantity": 3, "location": "MAIN"}]
    short = await hold("h3", 3)
    assert short.status_code == 409
    assert short.json()["shortages"] == [{"sku": "A", "requested": 3, "available": 2}]
    named = await hold("h4", 2, "east")
    assert named.json()["items"] == [{"sku": "A", "quantity": 2, "location": "EAST"}]


async def test_adjustments(
    client: httpx.AsyncClient,
    staff_headers: dict[str, str],
    staff_user: Any,
    make_sku: SkuFactory,
    locking: LockingStrategy,
) -> None:
    await make_sku("A")
    received = await _adjust(client, staff_headers, "a", delta=10, reason="receive", note="PO 7")
    assert received.status_code == 201
    body = received.json()
    assert body["level"] == {
        "sku": "A",
        "location": "MAIN",
        "on_hand": 10,
        "reserved": 0,
        "allocated": 0,
        "available": 10,
        "version": 1,
    }
    movement = body["movement"]
    assert movement["kind"] == "receive"
    assert (movement["on_hand_delta"], movement["reserved_delta"], movement["allocated_delta"]) == (
        10,
        0,
        0,
    )
    assert movement["reason"] == "receive"
    assert movement["note"] == "PO 7"
    assert movement["actor_id"] == staff_user.id

    await client.post(
        f"{API}/inventory/holds",
        headers=staff_headers,
        json={"client_token": "t", "items": [{"sku": "A", "quantity": 6}]},
    )
    too_much = await _adjust(client, staff_headers, "A", delta=-5, reason="damage")
    assert too_much.status_code == 409
    assert too_much.json()["code"] == "insufficient_stock"
    assert too_much.json()["shortages"] == [{"sku": "A", "requested": 5, "available": 4}]
    removed = await _adjust(client, staff_headers, "A", delta=-4, reason="loss")
    assert removed.status_code == 201
    assert removed.json()["movement"]["kind"] == "adjust"
    assert removed.json()["level"]["available"] == 0
    assert removed.json()["level"]["on_hand"] == 6

    for bad in (
        {"delta": 0, "reason": "count"},
        {"delta": 1, "reason": "gift"},
        {"delta": 10**30, "reason": "receive"},
        {"delta": 1_000_000_001, "reason": "receive"},
        {"delta": "5", "reason": "receive"},
        {"delta": 1, "reason": "receive", "location": "NOWHERE"},
        {"delta": 1, "reason": "receive", "note": "x" * 5001},
        {"reason": "receive"},
    ):
        response = await _adjust(client, staff_headers, "A", **bad)
        assert response.status_code == 422, bad
        assert response.json()["code"] == "validation_error"
    missing = await _adjust(client, staff_headers, "NOPE", delta=1, reason="receive")
    assert missing.status_code == 404
    assert (await client.get(f"{API}/inventory/NOPE", headers=staff_headers)).status_code == 404
    stock = (await client.get(f"{API}/inventory/A", headers=staff_headers)).json()
    assert (stock["on_hand"], stock["reserved"], stock["available"]) == (6, 6, 0)


async def test_allocations_lifecycle(
    client: httpx.AsyncClient,
    staff_headers: dict[str, str],
    make_sku: SkuFactory,
    receive: Receiver,
    locking: LockingStrategy,
) -> None:
    await make_sku("A")
    await receive("A", 5)
    body = {"client_token": "alloc", "items": [{"sku": "A", "quantity": 2}], "reference": "o-1"}
    created = await client.post(f"{API}/inventory/allocations", headers=staff_headers, json=body)
    assert created.status_code == 201
    allocation = created.json()
    assert allocation["status"] == "allocated"
    assert allocation["expires_at"] is None
    assert allocation["reference"] == "o-1"
    again = await client.post(f"{API}/inventory/allocations", headers=staff_headers, json=body)
    assert again.status_code == 200
    assert again.json()["id"] == allocation["id"]
    as_hold = await client.post(
        f"{API}/inventory/holds", headers=staff_headers, json={**body, "reference": "o-1"}
    )
    assert as_hold.status_code == 422
    assert as_hold.json()["code"] == "idempotency_key_reused"

    path = f"{API}/inventory/allocations/{allocation['id']}"
    assert (await client.get(path, headers=staff_headers)).json() == allocation
    cancelled = await client.post(f"{path}/cancel", headers=staff_headers)
    assert cancelled.json()["status"] == "cancelled"
    assert (await client.post(f"{path}/cancel", headers=staff_headers)).status_code == 200
    refused = await client.post(f"{path}/fulfil", headers=staff_headers)
    assert refused.status_code == 409
    assert refused.json()["code"] == "invalid_transition"
    stock = (await client.get(f"{API}/inventory/A", headers=staff_headers)).json()
    assert (stock["on_hand"], stock["allocated"], stock["available"]) == (5, 0, 5)

    listed = (
        await client.get(f"{API}/inventory/allocations?status=cancelled", headers=staff_headers)
    ).json()
    assert [item["id"] for item in listed["items"]] == [allocation["id"]]


async def test_movements_newest_first_and_feed_oldest_first(
    client: httpx.AsyncClient,
    staff_headers: dict[str, str],
    make_sku: SkuFactory,
    statements: list[str],
) -> None:
    await make_sku("A")
    await make_sku("B")
    for delta in (5, 6, 7):
        await _adjust(client, staff_headers, "A", delta=delta, reason="receive")
        await _adjust(client, staff_headers, "B", delta=delta * 10, reason="count")

    page = (await client.get(f"{API}/inventory/A/movements?limit=2", headers=staff_headers)).json()
    assert [m["on_hand_delta"] for m in page["items"]] == [7, 6]
    rest = (
        await client.get(
            f"{API}/inventory/A/movements?limit=2&cursor={page['next_cursor']}",
            headers=staff_headers,
        )
    ).json()
    assert [m["on_hand_delta"] for m in rest["items"]] == [5]
    assert rest["next_cursor"] is None

    feed = (await client.get(f"{API}/inventory/movements?limit=4", headers=staff_headers)).json()
    assert [(m["sku"], m["on_hand_delta"]) for m in feed["items"]] == [
        ("A", 5),
        ("B", 50),
        ("A", 6),
        ("B", 60),
    ]
    tail = (
        await client.get(
            f"{API}/inventory/movements?cursor={feed['next_cursor']}", headers=staff_headers
        )
    ).json()
    assert [(m["sku"], m["on_hand_delta"]) for m in tail["items"]] == [("A", 7), ("B", 70)]
    assert tail["next_cursor"] is None
    await _adjust(client, staff_headers, "A", delta=1, reason="return")
    resumed = (
        await client.get(
            f"{API}/inventory/movements?cursor={tail['resume_cursor']}", headers=staff_headers
        )
    ).json()
    assert [(m["sku"], m["on_hand_delta"], m["kind"]) for m in resumed["items"]] == [
        ("A", 1, "adjust")
    ]
    bad = await client.get(f"{API}/inventory/movements?cursor=!!", headers=staff_headers)
    assert bad.status_code == 422

    counts = []
    for limit in (1, 7):
        statements.clear()
        response = await client.get(
            f"{API}/inventory/movements?limit={limit}", headers=staff_headers
        )
        assert len(response.json()["items"]) == limit
        counts.append(len(statements))
    assert counts[0] == counts[1]


async def test_availability_lists_are_paginated_with_constant_statements(
    client: httpx.AsyncClient,
    staff_headers: dict[str, str],
    make_sku: SkuFactory,
    receive: Receiver,
    statements: list[str],
) -> None:
    for index in range(5):
        await make_sku(f"S{index}")
        await receive(f"S{index}", index + 1)
    await make_sku("GONE", deleted=True)
    named = (
        await client.get(f"{API}/inventory/availability?sku=s3&sku=S1", headers=staff_headers)
    ).json()
    assert [(item["sku"], item["available"]) for item in named["items"]] == [
        ("S3", 4),
        ("S1", 2),
    ]
    unknown = await client.get(f"{API}/inventory/availability?sku=NOPE", headers=staff_headers)
    assert unknown.status_code == 404

    seen = []
    cursor = None
    counts = set()
    while True:
        url = f"{API}/inventory/availability?limit=2" + (f"&cursor={cursor}" if cursor else "")
        statements.clear()
        page = (await client.get(url, headers=staff_headers)).json()
        counts.add(len(statements))
        seen += [item["sku"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["S0", "S1", "S2", "S3", "S4"]
    assert len(counts) == 1


async def test_consistency_reports_tampered_levels(
    client: httpx.AsyncClient,
    staff_headers: dict[str, str],
    db: Database,
    make_sku: SkuFactory,
    receive: Receiver,
) -> None:
    await make_sku("A")
    await receive("A", 5)
    await client.post(
        f"{API}/inventory/holds",
        headers=staff_headers,
        json={"client_token": "t", "items": [{"sku": "A", "quantity": 2}]},
    )
    clean = (await client.get(f"{API}/inventory/consistency", headers=staff_headers)).json()
    assert clean["is_consistent"] is True
    assert clean["levels_checked"] == 1

    async with db.transaction() as session:
        await session.execute(update(StockLevel).values(on_hand=7, reserved=3))
    report = (await client.get(f"{API}/inventory/consistency", headers=staff_headers)).json()
    assert report["is_consistent"] is False
    assert report["issues"] == [
        {
            "sku": "A",
            "location": "MAIN",
            "check": "reserved_matches_holds",
            "expected": 2,
            "actual": 3,
        },
        {
            "sku": "A",
            "location": "MAIN",
            "check": "on_hand_matches_ledger",
            "expected": 5,
            "actual": 7,
        },
        {
            "sku": "A",
            "location": "MAIN",
            "check": "reserved_matches_ledger",
            "expected": 2,
            "actual": 3,
        },
    ]


async def test_the_database_keeps_the_ledger_append_only(
    db: Database, make_sku: SkuFactory, receive: Receiver
) -> None:
    await make_sku("A")
    await receive("A", 5)
    rewrites = (
        update(StockMovement).values(on_hand_delta=50),
        delete(StockMovement),
    )
    for rewrite in rewrites:
        with pytest.raises(DBAPIError, match="stock_movements is append-only"):
            async with db.transaction() as session:
                await session.execute(rewrite)
    async with db.transaction(write=False) as session:
        ledger = (
            await session.execute(
                select(func.count(), func.sum(StockMovement.on_hand_delta)).select_from(
                    StockMovement
                )
            )
        ).one()
    assert tuple(ledger) == (1, 5)


async def test_consistency_reports_tampered_allocations(
    client: httpx.AsyncClient,
    staff_headers: dict[str, str],
    db: Database,
    make_sku: SkuFactory,
    receive: Receiver,
) -> None:
    await make_sku("A")
    await receive("A", 5)
    allocated = await client.post(
        f"{API}/inventory/allocations",
        headers=staff_headers,
        json={"client_token": "t", "items": [{"sku": "A", "quantity": 2}]},
    )
    assert allocated.status_code == 201
    assert (await client.get(f"{API}/inventory/consistency", headers=staff_headers)).json()[
        "is_consistent"
    ] is True

    async with db.transaction() as session:
        await session.execute(update(StockLevel).values(allocated=3))
    report = (await client.get(f"{API}/inventory/consistency", headers=staff_headers)).json()
    assert report["is_consistent"] is False
    assert report["issues"] == [
        {
            "sku": "A",
            "location": "MAIN",
            "check": "allocated_matches_allocations",
            "expected": 2,
            "actual": 3,
        },
        {
            "sku": "A",
            "location": "MAIN",
            "check": "allocated_matches_ledger",
            "expected": 2,
            "actual": 3,
        },
    ]
