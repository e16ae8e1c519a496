"""Stock announcements: `stock.low`, `stock.out` and `stock.back_in_stock`, written in the
unit of work of the change that crosses, with the contract's hysteresis, from a SKU's total
over all its locations, under every locking strategy and on both databases; and the SKU's
`low_stock_threshold` field."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select, update

from storekeeper.config import LockingStrategy, Settings
from storekeeper.db import Database, utcnow
from storekeeper.events import outbox
from storekeeper.events.models import Event
from storekeeper.inventory import stock
from storekeeper.inventory.expiry import sweep_expired_holds
from storekeeper.inventory.models import Reservation
from storekeeper.inventory.signals import crossings
from tests.inventory.conftest import Receiver, SkuFactory

API = "/api/v1"
HOLDS = f"{API}/inventory/holds"

Json = dict[str, Any]
LOW, OUT, BACK = outbox.STOCK_LOW, outbox.STOCK_OUT, outbox.STOCK_BACK_IN_STOCK


async def _stock_events(db: Database) -> list[tuple[str, Json]]:
    async with db.transaction(write=False) as session:
        rows = await session.execute(
            select(Event.type, Event.data).where(Event.type.like("stock.%")).order_by(Event.seq)
        )
        return [(row.type, row.data) for row in rows]


class Recorder:
    """The stock events written since the last `new()`."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.seen = 0

    async def new(self) -> list[tuple[str, Json]]:
        events = await _stock_events(self.db)
        fresh = events[self.seen :]
        self.seen = len(events)
        return fresh


async def _hold(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    items: list[tuple[str, int, str | None]],
    *,
    expect: int = 201,
) -> Json:
    response = await client.post(
        HOLDS,
        headers=headers,
        json={
            "client_token": uuid.uuid4().hex,
            "items": [
                {"sku": sku, "quantity": quantity, **({"location": where} if where else {})}
                for sku, quantity, where in items
            ],
            "ttl_seconds": 600,
        },
    )
    assert response.status_code == expect, response.text
    body: Json = response.json()
    return body


async def _release(client: httpx.AsyncClient, headers: dict[str, str], hold: Json) -> None:
    response = await client.post(f"{HOLDS}/{hold['id']}/release", headers=headers)
    assert response.status_code == 200, response.text


def test_crossings_follow_the_contract() -> None:
    assert crossings(6, 5, 5) == [LOW]
    assert crossings(5, 4, 5) == []  # already at or below: no second announcement
    assert crossings(4, 6, 5) == []  # rising above only re-arms
    assert crossings(10, 0, 5) == [LOW, OUT]
    assert crossings(1, 0, 5) == [OUT]
    assert crossings(0, 3, 5) == [BACK]
    assert crossings(0, 30, 5) == [BACK]
    assert crossings(0, 0, 5) == []
    assert crossings(1, 0, 0) == [LOW, OUT]
    assert crossings(7, 7, 5) == []


async def test_a_sku_announces_low_out_and_back_with_hysteresis(
    client: httpx.AsyncClient,
    db: Database,
    locking: LockingStrategy,
    staff_headers: dict[str, str],
    make_sku: SkuFactory,
    receive: Receiver,
) -> None:
    events = Recorder(db)
    await make_sku("MUG")
    await receive("MUG", 10)
    assert await events.new() == [(BACK, {"sku": "MUG", "available": 10})]

    await _hold(client, staff_headers, [("MUG", 4, None)])  # 6: above the threshold (5)
    assert await events.new() == []
    one = await _hold(client, staff_headers, [("MUG", 1, None)])  # 5: at it, from above
    assert await events.new() == [(LOW, {"sku": "MUG", "available": 5, "threshold": 5})]
    two = await _hold(client, staff_headers, [("MUG", 1, None)])  # 4
    await _release(client, staff_headers, two)  # 5: back at it, never above
    await _hold(client, staff_headers, [("MUG", 1, None)])  # 4 again
    assert await events.new() == []

    await _release(client, staff_headers, one)  # 5
    await receive("MUG", 2)  # 7: above again, which re-arms stock.low
    assert await events.new() == []
    await _hold(client, staff_headers, [("MUG", 2, None)])  # 5
    assert await events.new() == [(LOW, {"sku": "MUG", "available": 5, "threshold": 5})]

    last = await _hold(client, staff_headers, [("MUG", 5, None)])  # 0
    assert await events.new() == [(OUT, {"sku": "MUG", "available": 0})]
    await _hold(client, staff_headers, [("MUG", 1, None)], expect=409)
    assert await events.new() == []
    await _release(client, staff_headers, last)  # 5
    assert await events.new() == [(BACK, {"sku": "MUG", "available": 5})]


async def test_one_change_from_above_the_threshold_to_zero_announces_low_then_out(
    client: httpx.AsyncClient,
    db: Database,
    locking: LockingStrategy,
    staff_headers: dict[str, str],
    make_sku: SkuFactory,
    receive: Receiver,
) -> None:
    events = Recorder(db)
    await make_sku("LAMP")
    await receive("LAMP", 9)
    await events.new()
    await _hold(client, staff_headers, [("LAMP", 9, None)])
    assert await events.new() == [
        (LOW, {"sku": "LAMP", "available": 0, "threshold": 5}),
        (OUT, {"sku": "LAMP", "available": 0}),
    ]


async def test_the_total_over_all_locations_is_what_crosses(
    client: httpx.AsyncClient,
    db: Database,
    locking: LockingStrategy,
    staff_headers: dict[str, str],
    make_sku: SkuFactory,
    receive: Receiver,
) -> None:
    async with db.transaction() as session:
        await stock.create_location(session, code="SIDE", name="Side", priority=-1)
    events = Recorder(db)
    await make_sku("CUP")
    await receive("CUP", 4)
    await receive("CUP", 4, "SIDE")
    assert await events.new() == [(BACK, {"sku": "CUP", "available": 4})]
    # Each level alone is at or below 5 from the start; the SKU's total (8) is not.
    await _hold(client, staff_headers, [("CUP", 2, "SIDE")])
    assert await events.new() == []
    await _hold(client, staff_headers, [("CUP", 1, None)])
    assert await events.new() == [(LOW, {"sku": "CUP", "available": 5, "threshold": 5})]
    # Emptying one location of two is not out of stock.
    await _hold(client, staff_headers, [("CUP", 2, "SIDE")])
    assert await events.new() == []


async def test_a_sku_threshold_of_its_own_is_used_and_read_back(
    client: httpx.AsyncClient,
    db: Database,
    locking: LockingStrategy,
    staff_headers: dict[str, str],
    receive: Receiver,
) -> None:
    category = await client.post(
        f"{API}/categories", headers=staff_headers, json={"name": "Kitchen"}
    )
    product = await client.post(
        f"{API}/products",
        headers=staff_headers,
        json={
            "name": "Pan",
            "category_id": category.json()["id"],
            "skus": [
                {"code": "pan-s", "price_cents": 100, "low_stock_threshold": 2},
                {"code": "pan-l", "price_cents": 200},
            ],
        },
    )
    assert product.status_code == 201, product.text
    assert [(s["code"], s["low_stock_threshold"]) for s in product.json()["skus"]] == [
        ("PAN-S", 2),
        ("PAN-L", 5),
    ]
    created = await client.post(
        f"{API}/skus",
        headers=staff_headers,
        json={
            "code": "pan-xl",
            "product_id": product.json()["id"],
            "price_cents": 300,
            "low_stock_threshold": 0,
        },
    )
    assert created.status_code == 201, created.text
    assert created.json()["low_stock_threshold"] == 0

    events = Recorder(db)
    await receive("PAN-S", 4)
    await events.new()
    await _hold(client, staff_headers, [("PAN-S", 1, None)])  # 3: above its own 2
    assert await events.new() == []
    await _hold(client, staff_headers, [("PAN-S", 1, None)])  # 2
    assert await events.new() == [(LOW, {"sku": "PAN-S", "available": 2, "threshold": 2})]

    patched = await client.patch(
        f"{API}/skus/PAN-S", headers=staff_headers, json={"low_stock_threshold": None}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["low_stock_threshold"] == 5
    patched = await client.patch(
        f"{API}/skus/pan-s", headers=staff_headers, json={"low_stock_threshold": 1}
    )
    assert patched.json()["low_stock_threshold"] == 1
    shown = await client.get(f"{API}/skus/PAN-S")
    assert shown.json()["low_stock_threshold"] == 1

    for bad in (-1, 1_000_000_001, "many", 1.5):
        refused = await client.patch(
            f"{API}/skus/PAN-S", headers=staff_headers, json={"low_stock_threshold": bad}
        )
        assert refused.status_code == 422, (bad, refused.text)
        assert refused.json()["code"] == "validation_error"
    assert (await client.get(f"{API}/skus/PAN-S")).json()["low_stock_threshold"] == 1


async def test_the_default_threshold_follows_the_setting(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    staff_headers: dict[str, str],
    make_sku: SkuFactory,
    receive: Receiver,
) -> None:
    settings.low_stock_threshold = 8
    await make_sku("BOWL")
    assert (await client.get(f"{API}/skus/BOWL")).json()["low_stock_threshold"] == 8
    events = Recorder(db)
    await receive("BOWL", 10)
    await events.new()
    await _hold(client, staff_headers, [("BOWL", 2, None)])
    assert await events.new() == [(LOW, {"sku": "BOWL", "available": 8, "threshold": 8})]


async def test_a_refused_change_announces_nothing(
    client: httpx.AsyncClient,
    db: Database,
    locking: LockingStrategy,
    staff_headers: dict[str, str],
    make_sku: SkuFactory,
    receive: Receiver,
) -> None:
    await make_sku("A")
    await make_sku("B")
    await receive("A", 6)
    await receive("B", 1)
    events = Recorder(db)
    await events.new()
    # A would fall to 0 and B is short: all or nothing, so neither changes nor speaks.
    await _hold(client, staff_headers, [("A", 6, None), ("B", 2, None)], expect=409)
    assert await events.new() == []


async def test_expired_holds_bring_a_sold_out_sku_back_in_stock(
    client: httpx.AsyncClient,
    db: Database,
    staff_headers: dict[str, str],
    make_sku: SkuFactory,
    receive: Receiver,
) -> None:
    await make_sku("A")
    await make_sku("B")
    await receive("A", 3)
    await receive("B", 20)
    holds = [
        await _hold(client, staff_headers, [("A", 3, None), ("B", 1, None)]),
        await _hold(client, staff_headers, [("B", 2, None)]),
    ]
    events = Recorder(db)
    assert await events.new() == [
        (BACK, {"sku": "A", "available": 3}),
        (BACK, {"sku": "B", "available": 20}),
        (OUT, {"sku": "A", "available": 0}),
    ]
    async with db.transaction() as session:
        await session.execute(
            update(Reservation)
            .where(Reservation.id.in_([uuid.UUID(hold["id"]) for hold in holds]))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert await sweep_expired_holds(db, batch_size=10) == 2
    assert await events.new() == [(BACK, {"sku": "A", "available": 3})]


async def test_concurrent_holds_on_two_locations_announce_each_crossing_once(
    client: httpx.AsyncClient,
    db: Database,
    postgres_only: None,
    staff_headers: dict[str, str],
    make_sku: SkuFactory,
    receive: Receiver,
) -> None:
    """Holds on two levels of one SKU race from 20 units to sold out: whichever level
    each takes, and whether it is written by the one-statement path (levels above the
    threshold) or a unit of work, the SKU is announced low once, at 5, and out once."""
    async with db.transaction() as session:
        await stock.create_location(session, code="SIDE", name="Side", priority=-1)
    await make_sku("HOT")
    await receive("HOT", 10)
    await receive("HOT", 10, "SIDE")
    events = Recorder(db)
    await events.new()

    async def one(index: int) -> int:
        where = "SIDE" if index % 2 else "MAIN"
        response = await client.post(
            HOLDS,
            headers=staff_headers,
            json={
                "client_token": f"race-{index}",
                "items": [{"sku": "HOT", "quantity": 1, "location": where}],
                "ttl_seconds": 600,
            },
        )
        return response.status_code

    statuses = await asyncio.gather(*(one(index) for index in range(30)))
    assert sorted(statuses) == [201] * 20 + [409] * 10
    assert await events.new() == [
        (LOW, {"sku": "HOT", "available": 5, "threshold": 5}),
        (OUT, {"sku": "HOT", "available": 0}),
    ]


@pytest.mark.parametrize("quantity", [1, 3])
async def test_the_one_statement_hold_serves_only_holds_that_stay_above_the_threshold(
    client: httpx.AsyncClient,
    db: Database,
    postgres_only: None,
    staff_headers: dict[str, str],
    make_sku: SkuFactory,
    receive: Receiver,
    quantity: int,
) -> None:
    """A hold that keeps its level above the threshold is one statement; one that reaches
    it runs in a unit of work (several statements, the announcement among them)."""
    await make_sku("FAST")
    await receive("FAST", 5 + quantity + 1)
    statements: list[str] = []

    def collect(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", collect)
    try:
        await _hold(client, staff_headers, [("FAST", quantity, None)])
        fast = [sql for sql in statements if "stock_levels" in sql]
        statements.clear()
        await _hold(client, staff_headers, [("FAST", 1, None)])
        slow = [sql for sql in statements if "stock_levels" in sql]
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", collect)
    assert len(fast) == 1 and fast[0].lstrip().startswith("WITH caller AS")
    assert any("INSERT INTO events" in sql for sql in statements)
    assert any("FOR NO KEY UPDATE" in sql for sql in statements)
    assert len(slow) >= 2
