"""The payment timeout: `pending` orders older than STOREKEEPER_ORDER_PAYMENT_TIMEOUT_SECONDS
are cancelled by a background sweep the way a cancellation is (stock back, purchase-limit
units back, one `order.cancelled` each with `reason: "payment_timeout"`); newer and paid
orders are untouched, and sweeps side by side cancel each order once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from storekeeper.accounts.models import User
from storekeeper.app import periodic_jobs
from storekeeper.config import Settings
from storekeeper.db import Database, utcnow
from storekeeper.orders.models import CustomerPurchase, Order
from storekeeper.orders.service import cancel_unpaid_orders
from tests.orders.conftest import API, Figures, SkuMaker, consistency_issues, written_events

ORDERS = f"{API}/orders"
TIMEOUT = 600


async def _order(client: httpx.AsyncClient, headers: dict[str, str], sku: str, n: int) -> str:
    response = await client.post(
        ORDERS, headers=headers, json={"items": [{"sku": sku, "quantity": n}]}
    )
    assert response.status_code == 201, response.text
    order_id: str = response.json()["id"]
    return order_id


async def _age(db: Database, order_ids: list[str], seconds: int) -> None:
    """Pretend the orders were placed `seconds` ago."""
    async with db.transaction() as session:
        await session.execute(
            update(Order)
            .where(Order.id.in_([uuid.UUID(order_id) for order_id in order_ids]))
            .values(created_at=utcnow() - timedelta(seconds=seconds))
        )


async def _statuses(db: Database) -> dict[str, str]:
    async with db.transaction(write=False) as session:
        rows = await session.execute(select(Order.id, Order.status))
        return {str(order_id): status for order_id, status in rows}


def _cancellations(events: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    return [data for kind, data in events if kind == "order.cancelled"]


async def test_only_old_pending_orders_are_cancelled(
    client: httpx.AsyncClient,
    db: Database,
    staff_headers: dict[str, str],
    customer_user: User,
    customer_headers: dict[str, str],
    make_sku: SkuMaker,
    figures: Figures,
) -> None:
    sku_id = await make_sku("UNPAID", stock=100)
    await client.patch(f"{API}/skus/UNPAID", headers=staff_headers, json={"max_per_customer": 50})
    old = [await _order(client, customer_headers, "UNPAID", n) for n in (1, 2)]
    old_paid = await _order(client, customer_headers, "UNPAID", 4)
    fresh = await _order(client, customer_headers, "UNPAID", 8)
    await _age(db, [*old, old_paid], TIMEOUT + 5)
    await _age(db, [fresh], TIMEOUT - 30)
    paid = await client.patch(
        f"{ORDERS}/{old_paid}/status", headers=staff_headers, json={"status": "paid"}
    )
    assert paid.status_code == 200
    assert await figures("UNPAID") == (100, 0, 15, 85)
    before = await written_events(db)

    assert await cancel_unpaid_orders(db, timeout_seconds=TIMEOUT) == 2

    assert await _statuses(db) == {
        old[0]: "cancelled",
        old[1]: "cancelled",
        old_paid: "paid",
        fresh: "pending",
    }
    assert await figures("UNPAID") == (100, 0, 12, 88)
    new_events = (await written_events(db))[len(before) :]
    assert [kind for kind, _ in new_events] == ["order.cancelled", "order.cancelled"]
    cancelled = _cancellations(new_events)
    assert sorted(data["id"] for data in cancelled) == sorted(old)
    for data in cancelled:
        assert data["reason"] == "payment_timeout"
        assert data["status"] == "cancelled"
        # The rest of the data is the order as the API shows it.
        shown = (await client.get(f"{ORDERS}/{data['id']}", headers=staff_headers)).json()
        assert {key: value for key, value in data.items() if key != "reason"} == shown
    async with db.transaction(write=False) as session:
        counted = await session.get(CustomerPurchase, (customer_user.id, sku_id))
        assert counted is not None and counted.units == 12

    # A second sweep finds nothing; the API's own cancellation writes no reason.
    assert await cancel_unpaid_orders(db, timeout_seconds=TIMEOUT) == 0
    assert len(await written_events(db)) == len(before) + 2
    by_hand = await client.patch(
        f"{ORDERS}/{fresh}/status", headers=customer_headers, json={"status": "cancelled"}
    )
    assert by_hand.status_code == 200
    assert "reason" not in _cancellations(await written_events(db))[-1]
    assert await consistency_issues(client, staff_headers) == []


async def test_sweeps_side_by_side_cancel_each_order_once(
    client: httpx.AsyncClient,
    db: Database,
    staff_headers: dict[str, str],
    customer_headers: dict[str, str],
    make_sku: SkuMaker,
    figures: Figures,
) -> None:
    await make_sku("MANY", stock=100)
    orders = [await _order(client, customer_headers, "MANY", 1) for _ in range(24)]
    await _age(db, orders, TIMEOUT * 2)
    before = len(await written_events(db))

    counts = await asyncio.gather(
        *(cancel_unpaid_orders(db, timeout_seconds=TIMEOUT, batch_size=5) for _ in range(3))
    )

    assert sum(counts) == 24
    assert set((await _statuses(db)).values()) == {"cancelled"}
    cancelled = _cancellations((await written_events(db))[before:])
    assert sorted(data["id"] for data in cancelled) == sorted(orders)
    assert await figures("MANY") == (100, 0, 0, 100)
    assert await consistency_issues(client, staff_headers) == []


def test_the_job_is_registered_only_when_the_timeout_is_set(settings: Settings) -> None:
    names = [job.name for job in periodic_jobs(settings.model_copy(update={}))]
    assert "cancel-unpaid-orders" not in names
    on = settings.model_copy(update={"order_payment_timeout_seconds": 900})
    jobs = [job for job in periodic_jobs(on) if job.name == "cancel-unpaid-orders"]
    assert len(jobs) == 1
    assert 0 < jobs[0].interval_seconds <= 60
