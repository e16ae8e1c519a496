"""The events the domains write: `order.*` with the order and `hold.expired` with the hold,
each exactly as the API shows it, in the unit of work of the change (never on a replay, a
refusal or a no-op), and in the feed once published."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select, update
from sqlalchemy.engine import Connection

from storekeeper.config import LockingStrategy, StockPolicy
from storekeeper.db import Database, UnitOfWork, utcnow
from storekeeper.events import outbox
from storekeeper.events.models import Event
from storekeeper.events.publisher import publish_all
from storekeeper.inventory import stock
from storekeeper.inventory.expiry import expire_due_holds, sweep_expired_holds
from storekeeper.inventory.models import Reservation
from tests.inventory.conftest import insert_skus

API = "/api/v1"
HOLDS = f"{API}/inventory/holds"
ORDERS = f"{API}/orders"
ATOMIC = StockPolicy(LockingStrategy.ATOMIC)

Json = dict[str, Any]


# --- helpers -----------------------------------------------------------------------------


async def _stock(db: Database, levels: dict[str, int], location: str | None = None) -> None:
    """Create the SKUs (price 1000 USD) and receive their units (at `location`)."""
    async with db.transaction() as session:
        await insert_skus(session, list(levels))
    for code, quantity in levels.items():
        async with db.transaction() as session:
            await stock.adjust_stock(
                session,
                code,
                delta=quantity,
                reason="receive",
                location_code=location,
                policy=ATOMIC,
            )


async def _location(db: Database, code: str) -> None:
    async with db.transaction() as session:
        await stock.create_location(session, code=code, name=f"Store {code}", priority=-1)


async def _events(db: Database) -> list[tuple[str, Json]]:
    """Every order and hold event written so far, in write order: (type, data). Stock
    announcements, which the same changes write, are left out (tests/inventory/
    test_stock_events.py holds them)."""
    async with db.transaction(write=False) as session:
        rows = await session.execute(
            select(Event.type, Event.data).where(Event.type.not_like("stock.%")).order_by(Event.seq)
        )
        return [(row.type, row.data) for row in rows]


async def _order(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    items: list[tuple[str, int]],
    *,
    key: str | None = None,
    expect: int = 201,
) -> Json:
    response = await client.post(
        ORDERS,
        headers={**headers, **({"Idempotency-Key": key} if key else {})},
        json={"items": [{"sku": sku, "quantity": quantity} for sku, quantity in items]},
    )
    assert response.status_code == expect, response.text
    body: Json = response.json()
    return body


async def _set_status(
    client: httpx.AsyncClient, headers: dict[str, str], order_id: str, status: str
) -> Json:
    response = await client.patch(
        f"{ORDERS}/{order_id}/status", headers=headers, json={"status": status}
    )
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


async def _get(client: httpx.AsyncClient, headers: dict[str, str], path: str) -> Json:
    response = await client.get(path, headers=headers)
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


async def _hold(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    token: str,
    items: list[tuple[str, int, str | None]],
    *,
    reference: str | None = None,
    expect: int = 201,
) -> Json:
    body: Json = {
        "client_token": token,
        "items": [
            {"sku": sku, "quantity": quantity, **({"location": where} if where else {})}
            for sku, quantity, where in items
        ],
        "ttl_seconds": 600,
    }
    if reference is not None:
        body["reference"] = reference
    response = await client.post(HOLDS, headers=headers, json=body)
    assert response.status_code == expect, response.text
    answer: Json = response.json()
    return answer


async def _age(db: Database, hold_id: str, expires_at: datetime) -> None:
    """Put a hold's expiry in the past (at an exact instant)."""
    async with db.transaction() as session:
        await session.execute(
            update(Reservation)
            .where(Reservation.id == uuid.UUID(hold_id))
            .values(expires_at=expires_at)
        )


@pytest.fixture
async def statements(db: Database) -> AsyncIterator[list[str]]:
    """The SQL statements the engine sends while the test runs."""
    sent: list[str] = []

    def _record(_conn: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", _record)
    try:
        yield sent
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", _record)


# --- orders ------------------------------------------------------------------------------


async def test_each_order_event_is_written_once_with_the_order_as_the_api_shows_it(
    client: httpx.AsyncClient,
    db: Database,
    staff_headers: dict[str, str],
    customer_headers: dict[str, str],
) -> None:
    await _stock(db, {"MUG": 10, "CAP": 10})
    first = await _order(client, customer_headers, [("MUG", 2), ("CAP", 1)])
    second = await _order(client, customer_headers, [("CAP", 3)])
    assert await _events(db) == [("order.created", first), ("order.created", second)]
    assert first["items"] == [
        {
            "sku": "MUG",
            "product_name": "Stocked product",
            "quantity": 2,
            "unit_price_cents": 1000,
            "line_total_cents": 2000,
        },
        {
            "sku": "CAP",
            "product_name": "Stocked product",
            "quantity": 1,
            "unit_price_cents": 1000,
            "line_total_cents": 1000,
        },
    ]
    assert (first["status"], first["total_cents"], first["version"]) == ("pending", 3000, 1)

    paid = await _set_status(client, staff_headers, first["id"], "paid")
    shipped = await _set_status(client, staff_headers, first["id"], "shipped")
    cancelled = await _set_status(client, customer_headers, second["id"], "cancelled")
    assert (paid["status"], paid["version"]) == ("paid", 2)
    assert (shipped["status"], shipped["version"]) == ("shipped", 3)
    assert (cancelled["status"], cancelled["version"]) == ("cancelled", 2)
    # The shipped order as a later read shows it is the last event's data, exactly.
    assert await _get(client, staff_headers, f"{ORDERS}/{first['id']}") == shipped
    assert await _events(db) == [
        ("order.created", first),
        ("order.created", second),
        ("order.paid", paid),
        ("order.shipped", shipped),
        ("order.cancelled", cancelled),
    ]


async def test_checkout_writes_order_created_and_its_replay_writes_nothing(
    client: httpx.AsyncClient, db: Database, customer_headers: dict[str, str]
) -> None:
    await _stock(db, {"MUG": 5})
    added = await client.post(
        f"{API}/carts/me/items", headers=customer_headers, json={"sku": "MUG", "quantity": 2}
    )
    assert added.status_code == 201, added.text
    headers = {**customer_headers, "Idempotency-Key": "checkout-1"}
    placed = await client.post(f"{API}/carts/me/checkout", headers=headers)
    assert placed.status_code == 201, placed.text
    replayed = await client.post(f"{API}/carts/me/checkout", headers=headers)
    assert replayed.status_code == 200, replayed.text
    assert replayed.json() == placed.json()
    assert await _events(db) == [("order.created", placed.json())]
    assert placed.json()["total_cents"] == 2000


async def test_an_idempotent_order_replay_writes_no_event(
    client: httpx.AsyncClient, db: Database, customer_headers: dict[str, str]
) -> None:
    await _stock(db, {"MUG": 5})
    placed = await _order(client, customer_headers, [("MUG", 1)], key="order-1")
    replayed = await _order(client, customer_headers, [("MUG", 1)], key="order-1", expect=200)
    assert replayed == placed
    assert await _events(db) == [("order.created", placed)]


async def test_refused_orders_and_checkouts_write_no_event(
    client: httpx.AsyncClient, db: Database, customer_headers: dict[str, str]
) -> None:
    await _stock(db, {"MUG": 2, "CAP": 1})
    short = await client.post(
        ORDERS,
        headers=customer_headers,
        json={"items": [{"sku": "MUG", "quantity": 1}, {"sku": "CAP", "quantity": 2}]},
    )
    assert short.status_code == 409 and short.json()["code"] == "insufficient_stock"
    for sku, quantity in (("CAP", 1), ("MUG", 3)):
        added = await client.post(
            f"{API}/carts/me/items",
            headers=customer_headers,
            json={"sku": sku, "quantity": quantity},
        )
        assert added.status_code == 201, added.text
    checkout = await client.post(f"{API}/carts/me/checkout", headers=customer_headers)
    assert checkout.status_code == 409 and checkout.json()["code"] == "insufficient_stock"
    # The first line of each was allocated before the short one refused the whole unit:
    # it rolled back, and so did any event.
    assert await _events(db) == []


async def test_a_status_change_to_the_current_status_or_a_refused_one_writes_no_event(
    client: httpx.AsyncClient,
    db: Database,
    staff_headers: dict[str, str],
    customer_headers: dict[str, str],
) -> None:
    await _stock(db, {"MUG": 20})
    order = await _order(client, customer_headers, [("MUG", 1)])
    paid = await _set_status(client, staff_headers, order["id"], "paid")
    again = await _set_status(client, staff_headers, order["id"], "paid")
    assert again == paid
    backwards = await client.patch(
        f"{ORDERS}/{order['id']}/status", headers=staff_headers, json={"status": "pending"}
    )
    assert backwards.status_code == 409 and backwards.json()["code"] == "invalid_transition"
    stale = await client.patch(
        f"{ORDERS}/{order['id']}/status",
        headers=staff_headers,
        json={"status": "shipped", "version": 1},
    )
    assert stale.status_code == 409 and stale.json()["code"] == "version_conflict"
    assert [event_type for event_type, _ in await _events(db)] == ["order.created", "order.paid"]


# --- holds -------------------------------------------------------------------------------


async def test_the_sweep_writes_one_hold_expired_per_hold_with_the_hold_as_the_api_shows_it(
    client: httpx.AsyncClient,
    db: Database,
    backend: str,
    staff_headers: dict[str, str],
    statements: list[str],
) -> None:
    await _location(db, "SIDE")
    await _stock(db, {"A": 20, "B": 20})
    await _stock(db, {"C": 5}, location="SIDE")
    whole_second = utcnow().replace(microsecond=0) - timedelta(minutes=5)
    plan = [
        # (token, lines, reference, expires_at): microseconds none, a few, many.
        ("h-0", [("A", 2, None), ("B", 1, None)], "cart-7", whole_second),
        ("h-1", [("C", 3, "SIDE")], None, whole_second + timedelta(microseconds=5)),
        ("h-2", [("B", 4, None), ("A", 1, None), ("C", 1, "SIDE")], None, None),
        ("h-3", [("A", 1, None)], None, whole_second + timedelta(seconds=1, microseconds=250000)),
    ]
    holds = {}
    for token, lines, reference, expires_at in plan:
        holds[token] = await _hold(client, staff_headers, token, lines, reference=reference)
        if expires_at is not None:
            await _age(db, holds[token]["id"], expires_at)
    live = holds.pop("h-2")

    statements.clear()
    assert await sweep_expired_holds(db, batch_size=2) == 3
    assert await sweep_expired_holds(db, batch_size=2) == 0
    # Two batches, then an empty one; the events cost no round trip per hold.
    if backend == "postgresql":
        # One statement per batch, its events included; then, for the two batches that
        # gave units back, the lock of their SKUs and the read of their totals for the
        # stock announcements.
        expiring = [sql for sql in statements if "WITH claimed AS" in sql]
        assert len(expiring) == 3
        assert all("INSERT INTO events" in sql for sql in expiring)
        assert len(statements) == 3 + 2 * 2
    else:
        # Per batch: BEGIN, expire, the units given back by SKU, ledger rows, levels, the
        # lines' codes, one insert of its events, and the SKUs' totals read for their
        # stock announcements (the empty batch stops after the expire).
        per_batch: list[int] = []
        for sql in statements:
            if sql.startswith("BEGIN"):
                per_batch.append(0)
            per_batch[-1] += 1
        assert per_batch == [8, 8, 2]
        assert sum(sql.startswith("INSERT INTO events") for sql in statements) == 2

    shown = {
        token: await _get(client, staff_headers, f"{HOLDS}/{hold['id']}")
        for token, hold in holds.items()
    }
    written = await _events(db)
    # Oldest expiry first, each hold once, its data what GET /inventory/holds/{id} shows.
    assert written == [
        ("hold.expired", shown["h-0"]),
        ("hold.expired", shown["h-1"]),
        ("hold.expired", shown["h-3"]),
    ]
    assert [data["items"] for _, data in written] == [
        [
            {"sku": "A", "quantity": 2, "location": "MAIN"},
            {"sku": "B", "quantity": 1, "location": "MAIN"},
        ],
        [{"sku": "C", "quantity": 3, "location": "SIDE"}],
        [{"sku": "A", "quantity": 1, "location": "MAIN"}],
    ]
    assert [data["expires_at"] for _, data in written] == [
        whole_second.isoformat().replace("+00:00", "Z"),
        (whole_second + timedelta(microseconds=5)).isoformat().replace("+00:00", "Z"),
        (whole_second + timedelta(seconds=1, microseconds=250000))
        .isoformat()
        .replace("+00:00", "Z"),
    ]
    # As Pydantic writes it: no fraction when the microseconds are zero.
    assert "." not in written[0][1]["expires_at"]
    assert written[1][1]["expires_at"].endswith(".000005Z")
    assert [
        (data["status"], data["client_token"], data["reference"], data["managed_by"])
        for _, data in written
    ] == [
        ("expired", "h-0", "cart-7", None),
        ("expired", "h-1", None, None),
        ("expired", "h-3", None, None),
    ]
    assert (await _get(client, staff_headers, f"{HOLDS}/{live['id']}"))["status"] == "held"


async def test_an_inline_reclaim_writes_hold_expired_and_a_refused_one_writes_nothing(
    client: httpx.AsyncClient, db: Database, staff_headers: dict[str, str]
) -> None:
    await _stock(db, {"ONE": 1, "TWO": 2})
    old = await _hold(client, staff_headers, "old", [("ONE", 1, None), ("TWO", 1, None)])
    await _age(db, old["id"], utcnow() - timedelta(seconds=1))

    # Short on TWO even after reclaiming: the reclaim rolls back with the refusal.
    refused = await _hold(client, staff_headers, "greedy", [("TWO", 3, None)], expect=409)
    assert refused["code"] == "insufficient_stock"
    assert await _events(db) == []
    assert (await _get(client, staff_headers, f"{HOLDS}/{old['id']}"))["status"] == "held"

    new = await _hold(client, staff_headers, "new", [("ONE", 1, None)])
    assert new["status"] == "held"
    shown = await _get(client, staff_headers, f"{HOLDS}/{old['id']}")
    assert shown["status"] == "expired"
    assert await _events(db) == [("hold.expired", shown)]
    assert shown["items"] == [
        {"sku": "ONE", "quantity": 1, "location": "MAIN"},
        {"sku": "TWO", "quantity": 1, "location": "MAIN"},
    ]


async def test_converting_an_expired_hold_writes_hold_expired_once(
    client: httpx.AsyncClient, db: Database, staff_headers: dict[str, str]
) -> None:
    await _stock(db, {"A": 5})
    hold = await _hold(client, staff_headers, "late", [("A", 2, None)], reference="r-1")
    await _age(db, hold["id"], utcnow() - timedelta(seconds=1))
    convert = f"{HOLDS}/{hold['id']}/convert"
    refused = await client.post(convert, headers=staff_headers)
    assert refused.status_code == 409 and refused.json()["code"] == "hold_expired"
    again = await client.post(convert, headers=staff_headers)
    assert again.status_code == 409 and again.json()["code"] == "hold_expired"
    shown = await _get(client, staff_headers, f"{HOLDS}/{hold['id']}")
    assert await _events(db) == [("hold.expired", shown)]
    assert (shown["status"], shown["reference"], shown["items"]) == (
        "expired",
        "r-1",
        [{"sku": "A", "quantity": 2, "location": "MAIN"}],
    )
    # Nothing left for the sweep to announce.
    assert await sweep_expired_holds(db, batch_size=10) == 0
    assert len(await _events(db)) == 1


async def test_a_rolled_back_sweep_writes_no_event(
    db: Database, client: httpx.AsyncClient, staff_headers: dict[str, str]
) -> None:
    await _stock(db, {"A": 5})
    hold = await _hold(client, staff_headers, "h", [("A", 1, None)])
    await _age(db, hold["id"], utcnow() - timedelta(seconds=1))

    async def expire_then_fail(session: Any) -> None:
        assert await expire_due_holds(session, now=utcnow()) == 1
        raise RuntimeError("the unit fails after the expiry")

    with pytest.raises(RuntimeError):
        await UnitOfWork(db).run(expire_then_fail)
    assert await _events(db) == []
    assert (await _get(client, staff_headers, f"{HOLDS}/{hold['id']}"))["status"] == "held"


# --- the feed ----------------------------------------------------------------------------


async def test_published_order_and_hold_events_show_in_the_feed_in_order(
    client: httpx.AsyncClient,
    db: Database,
    staff_headers: dict[str, str],
    customer_headers: dict[str, str],
) -> None:
    await _stock(db, {"MUG": 20})
    order = await _order(client, customer_headers, [("MUG", 1)])
    hold = await _hold(client, staff_headers, "h", [("MUG", 2, None)])
    await _age(db, hold["id"], utcnow() - timedelta(seconds=1))
    assert await sweep_expired_holds(db, batch_size=10) == 1
    paid = await _set_status(client, staff_headers, order["id"], "paid")
    assert (await _get(client, staff_headers, f"{API}/events"))["items"] == []

    assert await publish_all(db) == 4
    feed = await _get(client, staff_headers, f"{API}/events")
    expired = await _get(client, staff_headers, f"{HOLDS}/{hold['id']}")
    assert [(item["id"], item["type"], item["data"]) for item in feed["items"]] == [
        (1, outbox.STOCK_BACK_IN_STOCK, {"sku": "MUG", "available": 20}),
        (2, outbox.ORDER_CREATED, order),
        (3, outbox.HOLD_EXPIRED, expired),
        (4, outbox.ORDER_PAID, paid),
    ]
    assert feed["next_cursor"] is None
    only_holds = await _get(client, staff_headers, f"{API}/events?type=hold.expired")
    assert [item["id"] for item in only_holds["items"]] == [3]
    assert (await _get(client, staff_headers, f"{API}/events?after=4"))["items"] == []
