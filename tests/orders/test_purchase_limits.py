"""`max_per_customer`: the most units of a SKU one customer may have in orders that are not
cancelled, for checkout and `POST /orders` alike (staff ordering for a customer counts
against the customer); a refusal is 409 `purchase_limit_exceeded` and changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select

from storekeeper.accounts.models import Role, User
from storekeeper.config import Settings
from storekeeper.db import Database
from storekeeper.orders.models import CustomerPurchase, Order
from tests.conftest import UserFactory, bearer
from tests.orders.conftest import (
    API,
    Figures,
    SkuMaker,
    add_to_cart,
    consistency_issues,
    written_events,
)

ORDERS = f"{API}/orders"


class Recorder:
    """The SQL statements the engine sends while `on`."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.on = False

    def __call__(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if self.on:
            self.statements.append(statement)

    def restart(self) -> None:
        self.statements.clear()
        self.on = True


@pytest.fixture
def recorder(db: Database) -> Iterator[Recorder]:
    recording = Recorder()
    event.listen(db.engine.sync_engine, "before_cursor_execute", recording)
    yield recording
    event.remove(db.engine.sync_engine, "before_cursor_execute", recording)


async def _limit(
    client: httpx.AsyncClient, staff: dict[str, str], code: str, limit: int | None
) -> None:
    response = await client.patch(
        f"{API}/skus/{code}", headers=staff, json={"max_per_customer": limit}
    )
    assert response.status_code == 200, response.text
    assert response.json()["max_per_customer"] == limit


async def _order(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    items: list[tuple[str, int]],
    **body: Any,
) -> httpx.Response:
    extra_headers = body.pop("extra_headers", {})
    return await client.post(
        ORDERS,
        headers={**headers, **extra_headers},
        json={"items": [{"sku": sku, "quantity": quantity} for sku, quantity in items], **body},
    )


def _refusal(response: httpx.Response, sku: str, limit: int, already: int, requested: int) -> None:
    assert response.status_code == 409, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "purchase_limit_exceeded"
    assert body["type"] == "urn:storekeeper:problem:purchase_limit_exceeded"
    assert body["status"] == 409
    assert {key: body[key] for key in ("sku", "limit", "already_ordered", "requested")} == {
        "sku": sku,
        "limit": limit,
        "already_ordered": already,
        "requested": requested,
    }
    assert isinstance(body["detail"], str) and body["detail"]


async def _order_count(db: Database) -> int:
    async with db.transaction(write=False) as session:
        count: int = (await session.execute(select(func.count()).select_from(Order))).scalar_one()
    return count


async def _counter(db: Database, user_id: int, sku_id: int) -> int | None:
    async with db.transaction(write=False) as session:
        row = await session.get(CustomerPurchase, (user_id, sku_id))
        return None if row is None else row.units


async def test_orders_beyond_the_limit_are_refused_until_one_is_cancelled(
    client: httpx.AsyncClient,
    db: Database,
    staff_headers: dict[str, str],
    customer_user: User,
    customer_headers: dict[str, str],
    make_sku: SkuMaker,
    figures: Figures,
) -> None:
    sku_id = await make_sku("LTD", stock=20)
    await _limit(client, staff_headers, "LTD", 3)

    first = await _order(client, customer_headers, [("LTD", 2)])
    assert first.status_code == 201, first.text
    events_before = await written_events(db)

    refused = await _order(client, customer_headers, [("LTD", 2)])
    _refusal(refused, "LTD", limit=3, already=2, requested=2)
    # Nothing changed: no order, no stock, no event, the count as it was.
    assert await _order_count(db) == 1
    assert await figures("LTD") == (20, 0, 2, 18)
    assert await written_events(db) == events_before
    assert await _counter(db, customer_user.id, sku_id) == 2

    # Up to the limit is fine.
    one_more = await _order(client, customer_headers, [("LTD", 1)])
    assert one_more.status_code == 201
    _refusal(await _order(client, customer_headers, [("LTD", 1)]), "LTD", 3, 3, 1)

    # A cancelled order's units no longer count (the customer cancels it themselves).
    cancelled = await client.patch(
        f"{ORDERS}/{first.json()['id']}/status",
        headers=customer_headers,
        json={"status": "cancelled"},
    )
    assert cancelled.status_code == 200, cancelled.text
    assert await _counter(db, customer_user.id, sku_id) == 1
    again = await _order(client, customer_headers, [("LTD", 2)])
    assert again.status_code == 201, again.text
    assert await _counter(db, customer_user.id, sku_id) == 3
    assert await figures("LTD") == (20, 0, 3, 17)

    # Shipping and paying keep counting (only cancelled orders stop).
    for status in ("paid", "shipped"):
        moved = await client.patch(
            f"{ORDERS}/{again.json()['id']}/status",
            headers=staff_headers,
            json={"status": status},
        )
        assert moved.status_code == 200
    _refusal(await _order(client, customer_headers, [("LTD", 1)]), "LTD", 3, 3, 1)
    assert await consistency_issues(client, staff_headers) == []


async def test_checkout_beyond_the_limit_is_refused_and_keeps_the_cart(
    client: httpx.AsyncClient,
    db: Database,
    customer_headers: dict[str, str],
    staff_headers: dict[str, str],
    make_sku: SkuMaker,
    figures: Figures,
) -> None:
    await make_sku("LTD", stock=20)
    await make_sku("FREE", stock=20)
    await _limit(client, staff_headers, "LTD", 3)

    await add_to_cart(client, customer_headers, "LTD", 2)
    checkout = await client.post(f"{API}/carts/me/checkout", headers=customer_headers)
    assert checkout.status_code == 201, checkout.text

    await add_to_cart(client, customer_headers, "FREE", 5)
    await add_to_cart(client, customer_headers, "LTD", 2)
    refused = await client.post(f"{API}/carts/me/checkout", headers=customer_headers)
    _refusal(refused, "LTD", limit=3, already=2, requested=2)
    cart = (await client.get(f"{API}/carts/me", headers=customer_headers)).json()
    assert sorted((item["sku"], item["quantity"]) for item in cart["items"]) == [
        ("FREE", 5),
        ("LTD", 2),
    ]
    assert await figures("FREE") == (20, 0, 0, 20)
    assert await figures("LTD") == (20, 0, 2, 18)
    assert await _order_count(db) == 1


async def test_staff_ordering_for_a_customer_counts_against_the_customer(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    staff_user: User,
    staff_headers: dict[str, str],
    customer_user: User,
    customer_headers: dict[str, str],
    make_sku: SkuMaker,
    make_user: UserFactory,
) -> None:
    sku_id = await make_sku("LTD", stock=20)
    await _limit(client, staff_headers, "LTD", 3)

    for_customer = await _order(client, staff_headers, [("LTD", 2)], user_id=customer_user.id)
    assert for_customer.status_code == 201, for_customer.text
    assert await _counter(db, customer_user.id, sku_id) == 2
    assert await _counter(db, staff_user.id, sku_id) is None

    _refusal(await _order(client, customer_headers, [("LTD", 2)]), "LTD", 3, 2, 2)
    _refusal(
        await _order(client, staff_headers, [("LTD", 2)], user_id=customer_user.id),
        "LTD",
        3,
        2,
        2,
    )
    # The staff member's own orders are theirs, and another customer is apart.
    assert (await _order(client, staff_headers, [("LTD", 3)])).status_code == 201
    other = await make_user(Role.CUSTOMER)
    assert (await _order(client, bearer(settings, other), [("LTD", 3)])).status_code == 201

    # Staff cancelling the customer's order gives the customer's units back.
    cancelled = await client.patch(
        f"{ORDERS}/{for_customer.json()['id']}/status",
        headers=staff_headers,
        json={"status": "cancelled"},
    )
    assert cancelled.status_code == 200
    assert await _counter(db, customer_user.id, sku_id) == 0
    assert (await _order(client, customer_headers, [("LTD", 3)])).status_code == 201


async def test_a_limit_set_after_sales_counts_the_orders_so_far(
    client: httpx.AsyncClient,
    staff_headers: dict[str, str],
    customer_headers: dict[str, str],
    make_sku: SkuMaker,
) -> None:
    await make_sku("LATE", stock=20)
    assert (await _order(client, customer_headers, [("LATE", 2)])).status_code == 201
    cancelled_one = await _order(client, customer_headers, [("LATE", 5)])
    assert cancelled_one.status_code == 201
    await client.patch(
        f"{ORDERS}/{cancelled_one.json()['id']}/status",
        headers=customer_headers,
        json={"status": "cancelled"},
    )
    await _limit(client, staff_headers, "LATE", 3)
    _refusal(await _order(client, customer_headers, [("LATE", 2)]), "LATE", 3, 2, 2)
    assert (await _order(client, customer_headers, [("LATE", 1)])).status_code == 201
    # Clearing the limit lifts it.
    await _limit(client, staff_headers, "LATE", None)
    assert (await _order(client, customer_headers, [("LATE", 10)])).status_code == 201


async def test_orders_placed_while_a_limit_was_lifted_count_when_it_is_set_again(
    client: httpx.AsyncClient,
    staff_headers: dict[str, str],
    customer_headers: dict[str, str],
    make_sku: SkuMaker,
) -> None:
    """The counter row kept from the first limited period missed the orders placed while
    the SKU had no limit: the customer's committed orders count all the same."""
    await make_sku("AGAIN", stock=20)
    await _limit(client, staff_headers, "AGAIN", 3)
    assert (await _order(client, customer_headers, [("AGAIN", 2)])).status_code == 201
    await _limit(client, staff_headers, "AGAIN", None)
    assert (await _order(client, customer_headers, [("AGAIN", 2)])).status_code == 201
    await _limit(client, staff_headers, "AGAIN", 5)
    _refusal(await _order(client, customer_headers, [("AGAIN", 2)]), "AGAIN", 5, 4, 2)
    assert (await _order(client, customer_headers, [("AGAIN", 1)])).status_code == 201
    _refusal(await _order(client, customer_headers, [("AGAIN", 1)]), "AGAIN", 5, 5, 1)


async def test_several_lines_are_all_or_nothing(
    client: httpx.AsyncClient,
    db: Database,
    customer_user: User,
    customer_headers: dict[str, str],
    staff_headers: dict[str, str],
    make_sku: SkuMaker,
    figures: Figures,
) -> None:
    first_id = await make_sku("L1", stock=10)
    await make_sku("L2", stock=10)
    await make_sku("FREE", stock=10)
    await _limit(client, staff_headers, "L1", 5)
    await _limit(client, staff_headers, "L2", 1)

    refused = await _order(client, customer_headers, [("FREE", 1), ("L1", 2), ("L2", 2)])
    _refusal(refused, "L2", limit=1, already=0, requested=2)
    # L1 was counted before L2 was refused: rolled back with the rest.
    assert await _counter(db, customer_user.id, first_id) is None
    assert await figures("L1") == (10, 0, 0, 10)

    placed = await _order(client, customer_headers, [("FREE", 1), ("L1", 2), ("L2", 1)])
    assert placed.status_code == 201
    assert await _counter(db, customer_user.id, first_id) == 2


async def test_a_replayed_idempotent_order_is_not_refused_by_its_own_units(
    client: httpx.AsyncClient,
    db: Database,
    customer_user: User,
    customer_headers: dict[str, str],
    staff_headers: dict[str, str],
    make_sku: SkuMaker,
) -> None:
    sku_id = await make_sku("LTD", stock=10)
    await _limit(client, staff_headers, "LTD", 2)
    key = {"Idempotency-Key": "once"}
    first = await _order(client, customer_headers, [("LTD", 2)], extra_headers=key)
    again = await _order(client, customer_headers, [("LTD", 2)], extra_headers=key)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert await _counter(db, customer_user.id, sku_id) == 2


async def test_orders_of_unlimited_skus_touch_no_counter(
    client: httpx.AsyncClient,
    db: Database,
    customer_headers: dict[str, str],
    make_sku: SkuMaker,
    recorder: Recorder,
) -> None:
    await make_sku("FREE", stock=10)
    assert (await _order(client, customer_headers, [("FREE", 1)])).status_code == 201  # warm
    recorder.restart()
    assert (await _order(client, customer_headers, [("FREE", 1)])).status_code == 201
    assert not [sql for sql in recorder.statements if "customer_purchases" in sql]
    async with db.transaction(write=False) as session:
        count = (
            await session.execute(select(func.count()).select_from(CustomerPurchase))
        ).scalar_one()
    assert count == 0


async def test_max_per_customer_needs_no_extra_round_trip(
    client: httpx.AsyncClient,
    customer_headers: dict[str, str],
    staff_headers: dict[str, str],
    make_sku: SkuMaker,
    recorder: Recorder,
) -> None:
    """A limited SKU costs its one counter upsert, nothing else."""
    await make_sku("FREE", stock=10)
    await make_sku("LTD", stock=10)
    await _limit(client, staff_headers, "LTD", 5)
    await _order(client, customer_headers, [("FREE", 1)])
    recorder.restart()
    await _order(client, customer_headers, [("FREE", 1)])
    unlimited = len(recorder.statements)
    recorder.restart()
    assert (await _order(client, customer_headers, [("LTD", 1)])).status_code == 201
    assert len(recorder.statements) == unlimited + 1


async def test_the_refusal_is_declared_in_openapi(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path in ("/api/v1/carts/me/checkout", "/api/v1/orders"):
        assert "`purchase_limit_exceeded`" in paths[path]["post"]["responses"]["409"]["description"]
    sku = (await client.get("/openapi.json")).json()["components"]["schemas"]["SkuOut"]
    assert "max_per_customer" in sku["properties"]
