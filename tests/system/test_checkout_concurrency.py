"""Checkout under a flash sale: two real server processes, one PostgreSQL database.

40 customers check out the same SKU with 10 on hand at once: exactly 10 orders, 30 clean
409s that keep their carts, nothing oversold, figures consistent with the ledger. Then one
order request retried at once on both servers with one Idempotency-Key takes stock once.
"""

from __future__ import annotations

import asyncio
import collections

import httpx
from sqlalchemy import func, select

from storekeeper.accounts.models import Role
from storekeeper.db import Database
from storekeeper.orders.models import CartItem, Order
from tests.system.conftest import ServerRunner, make_system_user
from tests.system.test_inventory_concurrency import assert_consistent, figures, stock_up

API = "/api/v1"
CUSTOMERS = 40
ON_HAND = 10


async def test_flash_sale_checkout_sells_exactly_what_is_on_hand(
    run_servers: ServerRunner, system_db: Database, staff_headers: dict[str, str]
) -> None:
    await stock_up(system_db, {"FLASH": ON_HAND, "RETRY": 10})
    customers = [
        await make_system_user(system_db, Role.CUSTOMER, f"shopper{n}@example.com")
        for n in range(CUSTOMERS)
    ]
    async with run_servers(count=2, background_tasks=False) as cluster:
        limits = httpx.Limits(max_connections=CUSTOMERS, max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=60.0, limits=limits) as client:
            added = await asyncio.gather(
                *(
                    client.post(
                        f"{cluster.url(n)}{API}/carts/me/items",
                        headers=headers,
                        json={"sku": "FLASH", "quantity": 1},
                    )
                    for n, headers in enumerate(customers)
                )
            )
            assert [r.status_code for r in added] == [201] * CUSTOMERS

            responses = await asyncio.gather(
                *(
                    client.post(
                        f"{cluster.url(n)}{API}/carts/me/checkout",
                        headers={**headers, "Idempotency-Key": f"flash-{n}"},
                    )
                    for n, headers in enumerate(customers)
                )
            )
            outcomes = collections.Counter(
                (r.status_code, r.json().get("code", "")) for r in responses
            )
            assert outcomes == {
                (201, ""): ON_HAND,
                (409, "insufficient_stock"): CUSTOMERS - ON_HAND,
            }, cluster.output()
            for refused in (r for r in responses if r.status_code == 409):
                assert refused.json()["shortages"] == [
                    {"sku": "FLASH", "requested": 1, "available": 0}
                ]
            orders = [r.json() for r in responses if r.status_code == 201]
            assert len({order["id"] for order in orders}) == ON_HAND
            assert all(order["total_cents"] == 1000 for order in orders)

            # One order request sent ten times at once over both servers, one key.
            buyer = customers[0]
            retried = await asyncio.gather(
                *(
                    client.post(
                        f"{cluster.url(n)}{API}/orders",
                        headers={**buyer, "Idempotency-Key": "retried-order"},
                        json={"items": [{"sku": "RETRY", "quantity": 4}]},
                    )
                    for n in range(10)
                )
            )
            assert sorted(r.status_code for r in retried) == [200] * 9 + [201]
            assert len({r.json()["id"] for r in retried}) == 1

        assert await figures(cluster, staff_headers, "FLASH") == (ON_HAND, 0, ON_HAND, 0)
        assert await figures(cluster, staff_headers, "RETRY") == (10, 0, 4, 6)
        await assert_consistent(cluster, staff_headers)

    async with system_db.transaction(write=False) as session:
        order_count = (await session.execute(select(func.count()).select_from(Order))).scalar()
        cart_lines = (await session.execute(select(func.count()).select_from(CartItem))).scalar()
    assert order_count == ON_HAND + 1
    # The refused customers keep their carts; the served ones have empty carts.
    assert cart_lines == CUSTOMERS - ON_HAND
