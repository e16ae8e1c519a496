"""Order lists: who sees what, filters, keyset pages, and a statement count that does not
grow with the page."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import insert

from storekeeper.accounts.models import User
from storekeeper.db import Database, utcnow
from storekeeper.inventory.models import Reservation
from storekeeper.orders.models import Order, OrderLine
from storekeeper.pagination import encode_cursor
from tests.catalog.conftest import StatementCounter
from tests.conftest import UserFactory, bearer
from tests.orders.conftest import API, SkuMaker

ORDERS = f"{API}/orders"


async def _place(
    client: httpx.AsyncClient, headers: dict[str, str], sku: str, quantity: int = 1
) -> dict[str, Any]:
    response = await client.post(
        ORDERS, headers=headers, json={"items": [{"sku": sku, "quantity": quantity}]}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def _walk(
    client: httpx.AsyncClient, headers: dict[str, str], query: str, limit: int
) -> list[str]:
    """Every order id of a listing, following the cursors."""
    ids: list[str] = []
    cursor = None
    while True:
        url = f"{ORDERS}?limit={limit}{query}" + (f"&cursor={cursor}" if cursor else "")
        response = await client.get(url, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        ids.extend(order["id"] for order in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return ids


async def test_customers_see_their_own_and_staff_filter(
    client: httpx.AsyncClient,
    customer_user: User,
    customer_headers: dict[str, str],
    staff_headers: dict[str, str],
    make_user: UserFactory,
    settings: Any,
    make_sku: SkuMaker,
) -> None:
    await make_sku("LIST", stock=100)
    other_user = await make_user()
    other = bearer(settings, other_user)
    mine = [await _place(client, customer_headers, "LIST") for _ in range(3)]
    theirs = [await _place(client, other, "LIST") for _ in range(2)]
    paid = await client.patch(
        f"{ORDERS}/{mine[1]['id']}/status", headers=staff_headers, json={"status": "paid"}
    )
    assert paid.status_code == 200
    newest_first = [order["id"] for order in reversed(mine + theirs)]

    assert await _walk(client, customer_headers, "", 2) == [o["id"] for o in reversed(mine)]
    assert await _walk(client, other, "", 50) == [o["id"] for o in reversed(theirs)]
    # A customer asking for someone else's orders gets none of them.
    assert await _walk(client, other, f"&user_id={customer_user.id}", 50) == []

    assert await _walk(client, staff_headers, "", 2) == newest_first
    assert await _walk(client, staff_headers, "", 200) == newest_first
    assert await _walk(client, staff_headers, f"&user_id={other_user.id}", 1) == [
        o["id"] for o in reversed(theirs)
    ]
    assert await _walk(client, staff_headers, "&status=paid", 1) == [mine[1]["id"]]
    assert await _walk(client, staff_headers, f"&status=pending&user_id={customer_user.id}", 1) == [
        mine[2]["id"],
        mine[0]["id"],
    ]
    assert await _walk(client, customer_headers, "&status=paid", 50) == [mine[1]["id"]]

    for query in (
        "limit=0",
        "limit=201",
        "status=lost",
        "user_id=0",
        "user_id=1099511627776",
        "cursor=nonsense",
        "cursor=WzFd",
        f"cursor={encode_cursor(['2026-11-23T10:00:00', str(uuid.uuid4())])}",
        f"cursor={encode_cursor(['0001-01-01T00:00:00+14:00', str(uuid.uuid4())])}",
        f"cursor={encode_cursor(['9999-12-31T23:59:59-14:00', str(uuid.uuid4())])}",
        f"cursor={encode_cursor(['2026-11-23T10:00:00+00:00', 'not-a-uuid'])}",
    ):
        response = await client.get(f"{ORDERS}?{query}", headers=staff_headers)
        assert response.status_code == 422, query
        assert response.json()["code"] == "validation_error"


async def _seed_orders(db: Database, user_id: int, sku_id: int, count: int) -> None:
    """`count` orders of two lines each, written straight to the tables."""
    now = utcnow()
    reservation_ids = [uuid.uuid4() for _ in range(count)]
    order_ids = [uuid.uuid4() for _ in range(count)]
    async with db.transaction() as session:
        await session.execute(
            insert(Reservation),
            [
                {
                    "id": rid,
                    "client_token": f"seed-{rid}",
                    "request_fingerprint": "seed",
                    "status": "cancelled",
                    "created_at": now,
                    "updated_at": now,
                }
                for rid in reservation_ids
            ],
        )
        await session.execute(
            insert(Order),
            [
                {
                    "id": oid,
                    "user_id": user_id,
                    "created_by": user_id,
                    "status": "cancelled",
                    "currency": "USD",
                    "total_cents": 3000,
                    "allocation_id": rid,
                    "version": 2,
                    "created_at": now - timedelta(seconds=n),
                    "updated_at": now,
                }
                for n, (oid, rid) in enumerate(zip(order_ids, reservation_ids, strict=True))
            ],
        )
        await session.execute(
            insert(OrderLine),
            [
                {
                    "order_id": oid,
                    "sku_id": sku_id,
                    "sku_code": "BULK",
                    "product_name": "Bulk",
                    "quantity": quantity,
                    "unit_price_cents": 1000,
                    "line_total_cents": 1000 * quantity,
                }
                for oid in order_ids
                for quantity in (1, 2)
            ],
        )


async def test_list_statement_count_does_not_grow_with_the_page(
    client: httpx.AsyncClient,
    db: Database,
    customer_user: User,
    customer_headers: dict[str, str],
    staff_headers: dict[str, str],
    statement_counter: StatementCounter,
    make_sku: SkuMaker,
) -> None:
    sku_id = await make_sku("BULK")
    await _seed_orders(db, customer_user.id, sku_id, 150)

    async def statements(url: str, headers: dict[str, str]) -> tuple[int, int]:
        statement_counter.count = 0
        statement_counter.active = True
        response = await client.get(url, headers=headers)
        statement_counter.active = False
        assert response.status_code == 200
        page = response.json()["items"]
        assert all(len(order["items"]) == 2 for order in page)
        return statement_counter.count, len(page)

    for headers, query in ((staff_headers, ""), (customer_headers, "&status=cancelled")):
        one = await statements(f"{ORDERS}?limit=1{query}", headers)
        hundred = await statements(f"{ORDERS}?limit=100{query}", headers)
        assert one[1] == 1
        assert hundred[1] == 100
        assert hundred[0] == one[0]
