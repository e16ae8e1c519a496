"""Checkout: one transaction from cart to order, all or nothing, idempotent by key."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select, update

from storekeeper.config import LockingStrategy
from storekeeper.db import Database, utcnow
from storekeeper.inventory.models import Reservation
from storekeeper.orders.models import Order
from tests.orders.conftest import (
    API,
    Figures,
    HeadersMaker,
    SkuMaker,
    add_to_cart,
    consistency_issues,
    written_events,
)

CART = f"{API}/carts/me"
CHECKOUT = f"{CART}/checkout"


async def _row_counts(db: Database) -> tuple[int, int]:
    """(orders, reservations) in the database."""
    async with db.transaction(write=False) as session:
        orders = (await session.execute(select(func.count()).select_from(Order))).scalar_one()
        reservations = (
            await session.execute(select(func.count()).select_from(Reservation))
        ).scalar_one()
    return orders, reservations


async def _add_address(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.post(
        f"{API}/users/me/addresses",
        headers=headers,
        json={
            "name": "Ada Lovelace",
            "line1": "12 St James's Square",
            "city": "London",
            "postal_code": "SW1Y 4JH",
            "country": "GB",
        },
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_checkout_allocates_snapshots_and_empties_the_cart(
    client: httpx.AsyncClient,
    customer_headers: dict[str, str],
    staff_headers: dict[str, str],
    make_sku: SkuMaker,
    figures: Figures,
) -> None:
    await make_sku("TEA", price_cents=450, stock=10, product_name="Green tea")
    await make_sku("CUP", price_cents=1200, stock=3, product_name="Cup")
    await add_to_cart(client, customer_headers, "TEA", 4)
    await add_to_cart(client, customer_headers, "CUP", 3)
    address = await _add_address(client, customer_headers)

    response = await client.post(
        CHECKOUT, headers=customer_headers, json={"shipping_address_id": address["id"]}
    )
    assert response.status_code == 201, response.text
    order = response.json()
    assert order["status"] == "pending"
    assert order["version"] == 1
    assert order["items"] == [
        {
            "sku": "TEA",
            "product_name": "Green tea",
            "quantity": 4,
            "unit_price_cents": 450,
            "line_total_cents": 1800,
        },
        {
            "sku": "CUP",
            "product_name": "Cup",
            "quantity": 3,
            "unit_price_cents": 1200,
            "line_total_cents": 3600,
        },
    ]
    assert order["total_cents"] == 5400
    assert order["currency"] == "USD"
    assert order["shipping_address"] == {
        "name": "Ada Lovelace",
        "line1": "12 St James's Square",
        "line2": None,
        "city": "London",
        "postal_code": "SW1Y 4JH",
        "country": "GB",
    }
    assert await figures("TEA") == (10, 0, 4, 6)
    assert await figures("CUP") == (3, 0, 3, 0)
    cart = (await client.get(CART, headers=customer_headers)).json()
    assert cart["items"] == []
    assert cart["total_cents"] == 0

    # The order keeps its prices, names and address whatever happens later.
    assert (
        await client.patch(f"{API}/skus/TEA", headers=staff_headers, json={"price_cents": 9999})
    ).status_code == 200
    assert (
        await client.patch(
            f"{API}/users/me/addresses/{address['id']}",
            headers=customer_headers,
            json={"city": "Paris"},
        )
    ).status_code == 200
    again = (await client.get(f"{API}/orders/{order['id']}", headers=customer_headers)).json()
    assert again == order
    assert await consistency_issues(client, staff_headers) == []


async def test_short_checkout_changes_nothing_and_lists_every_short_line(
    client: httpx.AsyncClient,
    db: Database,
    customer_headers: dict[str, str],
    staff_headers: dict[str, str],
    make_sku: SkuMaker,
    figures: Figures,
    locking: LockingStrategy,
) -> None:
    await make_sku("PLENTY", stock=10)
    await make_sku("FEW", stock=2)
    await make_sku("NONE", stock=0)
    await add_to_cart(client, customer_headers, "PLENTY", 5)
    await add_to_cart(client, customer_headers, "FEW", 3)
    await add_to_cart(client, customer_headers, "NONE", 1)
    cart_before = (await client.get(CART, headers=customer_headers)).json()
    counts_before = await _row_counts(db)

    response = await client.post(CHECKOUT, headers=customer_headers, json={})
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "insufficient_stock"
    assert sorted(body["shortages"], key=lambda s: s["sku"]) == [
        {"sku": "FEW", "requested": 3, "available": 2},
        {"sku": "NONE", "requested": 1, "available": 0},
    ]
    assert (await client.get(CART, headers=customer_headers)).json() == cart_before
    assert await figures("PLENTY") == (10, 0, 0, 10)
    assert await figures("FEW") == (2, 0, 0, 2)
    assert await figures("NONE") == (0, 0, 0, 0)
    assert await _row_counts(db) == counts_before

    # With enough stock the same cart goes through under this strategy as well.
    await client.post(
        f"{API}/inventory/FEW/adjustments",
        headers=staff_headers,
        json={"delta": 1, "reason": "receive"},
    )
    await client.post(
        f"{API}/inventory/NONE/adjustments",
        headers=staff_headers,
        json={"delta": 1, "reason": "receive"},
    )
    served = await client.post(CHECKOUT, headers=customer_headers)
    assert served.status_code == 201
    assert await figures("PLENTY") == (10, 0, 5, 5)
    assert await figures("FEW") == (3, 0, 3, 0)
    assert await figures("NONE") == (1, 0, 1, 0)


async def test_expired_holds_do_not_stand_in_the_way_of_a_checkout(
    client: httpx.AsyncClient,
    db: Database,
    customer_headers: dict[str, str],
    staff_headers: dict[str, str],
    make_sku: SkuMaker,
    figures: Figures,
) -> None:
    await make_sku("LAST", stock=2)
    hold = await client.post(
        f"{API}/inventory/holds",
        headers=staff_headers,
        json={"client_token": "h", "items": [{"sku": "LAST", "quantity": 2}], "ttl_seconds": 60},
    )
    assert hold.status_code == 201
    await add_to_cart(client, customer_headers, "LAST", 2)
    assert (await client.post(CHECKOUT, headers=customer_headers)).status_code == 409
    async with db.transaction() as session:
        await session.execute(
            update(Reservation)
            .where(Reservation.client_token == "h")
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    served = await client.post(CHECKOUT, headers=customer_headers)
    assert served.status_code == 201
    assert await figures("LAST") == (2, 0, 2, 0)
    assert await consistency_issues(client, staff_headers) == []


async def test_empty_cart_deleted_sku_and_foreign_address_are_refused(
    client: httpx.AsyncClient,
    customer_headers: dict[str, str],
    staff_headers: dict[str, str],
    make_customer: HeadersMaker,
    make_sku: SkuMaker,
    figures: Figures,
) -> None:
    empty = await client.post(CHECKOUT, headers=customer_headers)
    assert empty.status_code == 422
    assert empty.json()["errors"] == [{"loc": ["cart"], "msg": "the cart is empty"}]

    await make_sku("KEEP", stock=5)
    await make_sku("DROP", stock=5)
    await add_to_cart(client, customer_headers, "KEEP", 1)
    await add_to_cart(client, customer_headers, "DROP", 1)
    other = await make_customer()
    foreign = await _add_address(client, other)
    refused = await client.post(
        CHECKOUT, headers=customer_headers, json={"shipping_address_id": foreign["id"]}
    )
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["loc"] == ["body", "shipping_address_id"]
    too_large = await client.post(
        CHECKOUT, headers=customer_headers, json={"shipping_address_id": 2**40}
    )
    assert too_large.status_code == 422
    unknown = await client.post(
        CHECKOUT, headers=customer_headers, json={"shipping_address_id": 999_999}
    )
    assert unknown.status_code == 422
    assert unknown.json()["detail"] == refused.json()["detail"].replace(
        str(foreign["id"]), "999999"
    )

    assert (await client.delete(f"{API}/skus/DROP", headers=staff_headers)).status_code == 204
    deleted = await client.post(CHECKOUT, headers=customer_headers)
    assert deleted.status_code == 422
    assert deleted.json()["errors"][0]["loc"] == ["cart", "items", 1, "sku"]
    cart = (await client.get(CART, headers=customer_headers)).json()
    assert [(i["sku"], i["quantity"]) for i in cart["items"]] == [("KEEP", 1), ("DROP", 1)]
    assert await figures("KEEP") == (5, 0, 0, 5)


async def test_idempotent_checkout_replays_and_takes_stock_once(
    client: httpx.AsyncClient,
    db: Database,
    customer_headers: dict[str, str],
    make_customer: HeadersMaker,
    make_sku: SkuMaker,
    figures: Figures,
) -> None:
    await make_sku("ONE", price_cents=700, stock=10)
    await add_to_cart(client, customer_headers, "ONE", 3)
    headers = {**customer_headers, "Idempotency-Key": "checkout-1"}

    first = await client.post(CHECKOUT, headers=headers, json={})
    assert first.status_code == 201
    replay = await client.post(CHECKOUT, headers=headers, json={})
    assert replay.status_code == 200
    assert replay.json() == first.json()
    assert await figures("ONE") == (10, 0, 3, 7)
    assert await _row_counts(db) == (1, 1)

    # The same cart again (re-added after the first checkout emptied it) is a replay too.
    await add_to_cart(client, customer_headers, "ONE", 3)
    same_cart = await client.post(CHECKOUT, headers=headers)
    assert same_cart.status_code == 200
    assert same_cart.json()["id"] == first.json()["id"]

    # A different cart, or a different address, with the same key is another request.
    await add_to_cart(client, customer_headers, "ONE", 1)
    different = await client.post(CHECKOUT, headers=headers)
    assert different.status_code == 422
    assert different.json()["code"] == "idempotency_key_reused"
    assert await figures("ONE") == (10, 0, 3, 7)
    cart = (await client.get(CART, headers=customer_headers)).json()
    assert [(i["sku"], i["quantity"]) for i in cart["items"]] == [("ONE", 4)]

    # The key belongs to its user: another customer may use the same string.
    other = await make_customer()
    await add_to_cart(client, other, "ONE", 2)
    theirs = await client.post(CHECKOUT, headers={**other, "Idempotency-Key": "checkout-1"})
    assert theirs.status_code == 201
    assert theirs.json()["id"] != first.json()["id"]
    assert await figures("ONE") == (10, 0, 5, 5)
    for bad_key in ("", "x" * 129, b"a\x00b", b"tab\there"):
        response = await client.post(
            CHECKOUT, headers={**customer_headers, "Idempotency-Key": bad_key}
        )
        assert response.status_code == 422


async def test_concurrent_checkouts_with_one_key_make_one_order(
    client: httpx.AsyncClient,
    db: Database,
    customer_headers: dict[str, str],
    staff_headers: dict[str, str],
    make_sku: SkuMaker,
    figures: Figures,
) -> None:
    await make_sku("RUSH", stock=10)
    await add_to_cart(client, customer_headers, "RUSH", 2)
    headers = {**customer_headers, "Idempotency-Key": "double-click"}
    responses = await asyncio.gather(*(client.post(CHECKOUT, headers=headers) for _ in range(8)))
    assert sorted(r.status_code for r in responses) == [200] * 7 + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    assert await figures("RUSH") == (10, 0, 2, 8)
    assert await _row_counts(db) == (1, 1)
    created = next(r for r in responses if r.status_code == 201)
    assert await written_events(db) == [("order.created", created.json())]
    assert await consistency_issues(client, staff_headers) == []


async def test_concurrent_checkouts_without_a_key_order_the_cart_once(
    client: httpx.AsyncClient,
    db: Database,
    customer_headers: dict[str, str],
    make_sku: SkuMaker,
    figures: Figures,
) -> None:
    await make_sku("ONCE", stock=10)
    await add_to_cart(client, customer_headers, "ONCE", 2)
    responses = await asyncio.gather(
        *(client.post(CHECKOUT, headers=customer_headers) for _ in range(4))
    )
    assert sorted(r.status_code for r in responses) == [201, 422, 422, 422]
    assert await figures("ONCE") == (10, 0, 2, 8)
    assert await _row_counts(db) == (1, 1)
    created = next(r for r in responses if r.status_code == 201)
    assert await written_events(db) == [("order.created", created.json())]


async def test_checkout_charges_the_price_at_checkout_not_when_the_item_was_added(
    client: httpx.AsyncClient,
    customer_headers: dict[str, str],
    staff_headers: dict[str, str],
    make_sku: SkuMaker,
) -> None:
    await make_sku("TEA", price_cents=450, stock=5)
    added = await add_to_cart(client, customer_headers, "TEA", 2)
    assert added["total_cents"] == 900
    repriced = await client.patch(
        f"{API}/skus/TEA", headers=staff_headers, json={"price_cents": 500}
    )
    assert repriced.status_code == 200
    cart = (await client.get(CART, headers=customer_headers)).json()
    assert [(item["unit_price_cents"], item["line_total_cents"]) for item in cart["items"]] == [
        (500, 1000)
    ]
    assert cart["total_cents"] == 1000

    placed = await client.post(CHECKOUT, headers=customer_headers, json={})
    assert placed.status_code == 201
    order = placed.json()
    assert [(line["unit_price_cents"], line["quantity"]) for line in order["items"]] == [(500, 2)]
    assert order["total_cents"] == 1000
