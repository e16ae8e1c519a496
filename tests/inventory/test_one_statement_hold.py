"""The one-statement hold (PostgreSQL, atomic locking): a one-line hold is written by a single
statement that commits as it ends, and every case it cannot serve is answered exactly as the
unit-of-work path answers it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import event, select, update

from storekeeper.accounts.models import User
from storekeeper.config import LockingStrategy, Settings
from storekeeper.db import Database
from storekeeper.inventory.models import Reservation, ReservationLine, StockLevel, StockMovement
from tests.inventory.conftest import Receiver, SkuFactory

HOLDS = "/api/v1/inventory/holds"


@contextmanager
def statements_sent(db: Database) -> Iterator[list[str]]:
    """Every statement the application sends to the database inside the block."""
    sent: list[str] = []

    def _record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(" ".join(statement.split())[:60])

    event.listen(db.engine.sync_engine, "before_cursor_execute", _record)
    try:
        yield sent
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", _record)


async def _level(db: Database, sku_id: int) -> tuple[int, int, int]:
    async with db.transaction(write=False) as session:
        row = (
            await session.execute(
                select(StockLevel.on_hand, StockLevel.reserved, StockLevel.allocated).where(
                    StockLevel.sku_id == sku_id
                )
            )
        ).one()
    return row.on_hand, row.reserved, row.allocated


async def _holds_and_hold_movements(db: Database) -> tuple[int, int]:
    async with db.transaction(write=False) as session:
        holds = len((await session.scalars(select(Reservation.id))).all())
        movements = len(
            (
                await session.scalars(select(StockMovement.id).where(StockMovement.kind == "hold"))
            ).all()
        )
    return holds, movements


async def test_a_one_line_hold_is_one_statement_with_its_ledger_row_and_line(
    client: httpx.AsyncClient,
    db: Database,
    postgres_only: None,
    settings: Settings,
    staff_user: User,
    staff_headers: dict[str, str],
    make_sku: SkuFactory,
    receive: Receiver,
) -> None:
    settings.locking = LockingStrategy.ATOMIC
    sku_id = await make_sku("HOT")
    # Enough that the hold leaves the level above the low-stock threshold (5): a hold that
    # reaches it runs in a unit of work (tests/inventory/test_stock_events.py).
    await receive("HOT", 10)
    body = {"client_token": "one", "items": [{"sku": "hot", "quantity": 2}], "reference": "r1"}
    with statements_sent(db) as sent:
        response = await client.post(HOLDS, headers=staff_headers, json=body)
    assert response.status_code == 201
    assert len(sent) == 1 and sent[0].startswith("WITH caller AS")
    hold = response.json()
    assert hold["status"] == "held"
    assert hold["client_token"] == "one"
    assert hold["reference"] == "r1"
    assert hold["items"] == [{"sku": "HOT", "quantity": 2, "location": "MAIN"}]
    assert (await client.get(f"{HOLDS}/{hold['id']}", headers=staff_headers)).json() == hold
    assert await _level(db, sku_id) == (10, 2, 0)

    async with db.transaction(write=False) as session:
        reservation = await session.get(Reservation, uuid.UUID(hold["id"]))
        assert reservation is not None
        assert reservation.created_by == staff_user.id
        assert reservation.managed_by is None
        line = (await session.execute(select(ReservationLine))).scalar_one()
        assert (line.reservation_id, line.sku_id, line.quantity) == (reservation.id, sku_id, 2)
        movement = (
            await session.execute(select(StockMovement).where(StockMovement.kind == "hold"))
        ).scalar_one()
    assert (movement.sku_id, movement.reserved_delta, movement.on_hand_delta) == (sku_id, 2, 0)
    assert (movement.reference, movement.actor_id) == (hold["id"], staff_user.id)
    report = (await client.get("/api/v1/inventory/consistency", headers=staff_headers)).json()
    assert report["is_consistent"] is True


async def test_what_one_statement_cannot_hold_is_answered_by_the_unit_of_work(
    client: httpx.AsyncClient,
    db: Database,
    postgres_only: None,
    settings: Settings,
    staff_user: User,
    staff_headers: dict[str, str],
    customer_headers: dict[str, str],
    make_sku: SkuFactory,
    receive: Receiver,
) -> None:
    settings.locking = LockingStrategy.ATOMIC
    sku_id = await make_sku("ONE")
    await make_sku("GONE", deleted=True)
    await receive("ONE", 1)

    def hold(token: str, sku: str = "ONE", quantity: int = 1) -> dict[str, Any]:
        return {"client_token": token, "items": [{"sku": sku, "quantity": quantity}]}

    assert (await client.post(HOLDS, headers=customer_headers, json=hold("c"))).status_code == 403
    short = await client.post(HOLDS, headers=staff_headers, json=hold("s", quantity=2))
    assert short.status_code == 409
    assert short.json()["shortages"] == [{"sku": "ONE", "requested": 2, "available": 1}]
    unknown = await client.post(HOLDS, headers=staff_headers, json=hold("u", sku="NOPE"))
    assert unknown.status_code == 422
    deleted = await client.post(HOLDS, headers=staff_headers, json=hold("d", sku="GONE"))
    assert deleted.status_code == 422
    assert await _holds_and_hold_movements(db) == (0, 0)

    first = await client.post(HOLDS, headers=staff_headers, json=hold("t"))
    assert first.status_code == 201
    replay = await client.post(HOLDS, headers=staff_headers, json=hold("t"))
    assert replay.status_code == 200
    assert replay.json()["id"] == first.json()["id"]
    reused = await client.post(HOLDS, headers=staff_headers, json=hold("t", quantity=2))
    assert reused.status_code == 422
    assert reused.json()["code"] == "idempotency_key_reused"
    assert await _holds_and_hold_movements(db) == (1, 1)
    assert await _level(db, sku_id) == (1, 1, 0)

    async with db.transaction() as session:
        await session.execute(update(User).where(User.id == staff_user.id).values(is_active=False))
    gone = await client.post(HOLDS, headers=staff_headers, json=hold("x"))
    assert gone.status_code == 401
    assert await _holds_and_hold_movements(db) == (1, 1)


async def test_concurrent_one_line_holds_never_oversell_and_duplicates_make_one_hold(
    client: httpx.AsyncClient,
    db: Database,
    postgres_only: None,
    settings: Settings,
    staff_headers: dict[str, str],
    make_sku: SkuFactory,
    receive: Receiver,
) -> None:
    settings.locking = LockingStrategy.ATOMIC
    sku_id = await make_sku("RUSH")
    await receive("RUSH", 5)
    plenty_id = await make_sku("PLENTY")
    await receive("PLENTY", 100)

    async def attempt(token: str, sku: str) -> tuple[int, str | None]:
        body = {"client_token": token, "items": [{"sku": sku, "quantity": 1}]}
        response = await client.post(HOLDS, headers=staff_headers, json=body)
        return response.status_code, response.json().get("id")

    # 24 different tokens race for 5 units while 6 requests with one token race each other
    # on a SKU with stock to spare.
    rush, same = await asyncio.gather(
        asyncio.gather(*(attempt(f"rush-{n}", "RUSH") for n in range(24))),
        asyncio.gather(*(attempt("same", "PLENTY") for _ in range(6))),
    )
    rush_statuses = [status for status, _ in rush]
    assert (rush_statuses.count(201), rush_statuses.count(409)) == (5, 19)
    assert sorted(status for status, _ in same) == [200, 200, 200, 200, 200, 201]
    assert len({hold_id for _, hold_id in same}) == 1
    assert await _level(db, sku_id) == (5, 5, 0)
    assert await _level(db, plenty_id) == (100, 1, 0)
    assert await _holds_and_hold_movements(db) == (6, 6)
    report = (await client.get("/api/v1/inventory/consistency", headers=staff_headers)).json()
    assert report["is_consistent"] is True
