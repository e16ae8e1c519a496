"""Purchase limits under concurrency: two real server processes, one PostgreSQL database.

One customer sends 8 orders of one unit each at once, over both servers, for a SKU with
`max_per_customer` 3 and plenty of stock: exactly 3 are placed and 5 are refused with 409
`purchase_limit_exceeded`; the customer's count, the stock and the ledger agree.
"""

from __future__ import annotations

import asyncio
import collections

import httpx
from sqlalchemy import func, select, update

from storekeeper.accounts.models import Role
from storekeeper.catalog.models import Sku
from storekeeper.db import Database
from storekeeper.orders.models import CustomerPurchase, Order
from tests.system.conftest import ServerRunner, make_system_user
from tests.system.test_inventory_concurrency import assert_consistent, figures, stock_up

API = "/api/v1"
LIMIT = 3
ORDERS = 8


async def test_concurrent_orders_of_one_customer_stop_at_the_limit(
    run_servers: ServerRunner, system_db: Database, staff_headers: dict[str, str]
) -> None:
    await stock_up(system_db, {"LIMITED": 100})
    async with system_db.transaction() as session:
        await session.execute(
            update(Sku).where(Sku.code == "LIMITED").values(max_per_customer=LIMIT)
        )
    customer = await make_system_user(system_db, Role.CUSTOMER, "eager@example.com")

    async with run_servers(count=2, background_tasks=False) as cluster:
        limits = httpx.Limits(max_connections=ORDERS, max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=60.0, limits=limits) as client:
            responses = await asyncio.gather(
                *(
                    client.post(
                        f"{cluster.url(n)}{API}/orders",
                        headers=customer,
                        json={"items": [{"sku": "LIMITED", "quantity": 1}]},
                    )
                    for n in range(ORDERS)
                )
            )
        outcomes = collections.Counter(
            (r.status_code, r.json().get("code", "") if r.status_code >= 400 else "")
            for r in responses
        )
        assert outcomes == {
            (201, ""): LIMIT,
            (409, "purchase_limit_exceeded"): ORDERS - LIMIT,
        }, cluster.output()
        for refused in (r for r in responses if r.status_code == 409):
            body = refused.json()
            assert (body["sku"], body["limit"], body["already_ordered"], body["requested"]) == (
                "LIMITED",
                LIMIT,
                LIMIT,
                1,
            )
        assert await figures(cluster, staff_headers, "LIMITED") == (100, 0, LIMIT, 100 - LIMIT)
        await assert_consistent(cluster, staff_headers)

    async with system_db.transaction(write=False) as session:
        orders = (await session.execute(select(func.count()).select_from(Order))).scalar_one()
        units = (await session.execute(select(CustomerPurchase.units))).scalars().all()
    assert orders == LIMIT
    assert units == [LIMIT]
