"""Carts: created on first use, lines by SKU with live prices and availability, ownership."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import insert

from storekeeper.db import Database
from storekeeper.orders.models import CartItem
from tests.inventory.conftest import insert_skus
from tests.orders.conftest import API, HeadersMaker, SkuMaker, add_to_cart

CART = f"{API}/carts/me"


async def test_cart_is_created_on_first_use_and_kept(
    client: httpx.AsyncClient, customer_headers: dict[str, str]
) -> None:
    first = await client.get(CART, headers=customer_headers)
    assert first.status_code == 200
    body = first.json()
    assert body["items"] == []
    assert body["total_cents"] == 0
    assert body["currency"] == "USD"
    again = await client.get(CART, headers=customer_headers)
    assert again.json()["id"] == body["id"]
    assert (await client.get(CART)).status_code == 401


async def test_lines_add_up_change_and_go(
    client: httpx.AsyncClient, customer_headers: dict[str, str], make_sku: SkuMaker
) -> None:
    await make_sku("TEA", price_cents=450, stock=7, product_name="Green tea")
    await make_sku("CUP", price_cents=1200, stock=0, product_name="Cup")

    cart = await add_to_cart(client, customer_headers, "tea", 2)
    (line,) = cart["items"]
    assert {k: v for k, v in line.items() if k != "id"} == {
        "sku": "TEA",
        "product_name": "Green tea",
        "quantity": 2,
        "unit_price_cents": 450,
        "line_total_cents": 900,
        "currency": "USD",
        "available": 7,
        "is_deleted": False,
    }
    cart = await add_to_cart(client, customer_headers, "TEA", 3)
    assert [(i["sku"], i["quantity"], i["line_total_cents"]) for i in cart["items"]] == [
        ("TEA", 5, 2250)
    ]
    assert cart["items"][0]["id"] == line["id"]
    cart = await add_to_cart(client, customer_headers, "CUP", 1)
    assert [(i["sku"], i["quantity"], i["available"]) for i in cart["items"]] == [
        ("TEA", 5, 7),
        ("CUP", 1, 0),
    ]
    assert cart["total_cents"] == 2250 + 1200

    changed = await client.patch(
        f"{CART}/items/{line['id']}", headers=customer_headers, json={"quantity": 1}
    )
    assert changed.status_code == 200
    assert changed.json()["total_cents"] == 450 + 1200

    removed = await client.delete(f"{CART}/items/{line['id']}", headers=customer_headers)
    assert removed.status_code == 204
    cart = (await client.get(CART, headers=customer_headers)).json()
    assert [(i["sku"], i["quantity"]) for i in cart["items"]] == [("CUP", 1)]
    again = await client.delete(f"{CART}/items/{line['id']}", headers=customer_headers)
    assert again.status_code == 404


async def test_unknown_deleted_or_invalid_input_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, customer_headers: dict[str, str], make_sku: SkuMaker
) -> None:
    await make_sku("LIVE", stock=3)
    await make_sku("GONE", deleted=True)
    await make_sku("EURO", currency="EUR")
    await add_to_cart(client, customer_headers, "LIVE", 999_999)
    cases = [
        {"sku": "NOPE", "quantity": 1},
        {"sku": "GONE", "quantity": 1},
        {"sku": "EURO", "quantity": 1},
        {"sku": "LIVE", "quantity": 2},  # would take the line past 1,000,000
        {"sku": "LIVE", "quantity": 0},
        {"sku": "LIVE", "quantity": 1_000_001},
        {"sku": "LIVE", "quantity": "1"},
        {"sku": "bad code!", "quantity": 1},
        {"sku": "LIVE"},
        {"sku": "LIVE", "quantity": 1, "extra": True},
    ]
    for body in cases:
        response = await client.post(f"{CART}/items", headers=customer_headers, json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["code"] == "validation_error"
    cart = (await client.get(CART, headers=customer_headers)).json()
    assert [(i["sku"], i["quantity"]) for i in cart["items"]] == [("LIVE", 999_999)]
    line_id = cart["items"][0]["id"]
    for quantity in (0, -1, 1_000_001):
        response = await client.patch(
            f"{CART}/items/{line_id}", headers=customer_headers, json={"quantity": quantity}
        )
        assert response.status_code == 422
    malformed = await client.patch(
        f"{CART}/items/not-a-uuid", headers=customer_headers, json={"quantity": 1}
    )
    assert malformed.status_code == 422


async def test_a_cart_holds_at_most_100_lines(
    client: httpx.AsyncClient, customer_headers: dict[str, str], db: Database
) -> None:
    cart_id = uuid.UUID((await client.get(CART, headers=customer_headers)).json()["id"])
    codes = [f"L{number}" for number in range(101)]
    async with db.transaction() as session:
        sku_ids = await insert_skus(session, codes)
        await session.execute(
            insert(CartItem),
            [
                {"id": uuid.uuid4(), "cart_id": cart_id, "sku_id": sku_id, "quantity": 1}
                for sku_id in sku_ids[:100]
            ],
        )
    refused = await client.post(
        f"{CART}/items", headers=customer_headers, json={"sku": "L100", "quantity": 1}
    )
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["msg"] == "a cart holds at most 100 lines"
    # Raising an existing line is still fine.
    cart = await add_to_cart(client, customer_headers, "L0", 1)
    assert len(cart["items"]) == 100
    assert cart["total_cents"] == 101 * 1000


async def test_another_users_cart_item_is_not_found(
    client: httpx.AsyncClient,
    customer_headers: dict[str, str],
    make_customer: HeadersMaker,
    make_sku: SkuMaker,
) -> None:
    await make_sku("MINE", stock=5)
    cart = await add_to_cart(client, customer_headers, "MINE", 2)
    item_id = cart["items"][0]["id"]
    other = await make_customer()
    await add_to_cart(client, other, "MINE", 1)

    patched = await client.patch(f"{CART}/items/{item_id}", headers=other, json={"quantity": 9})
    assert patched.status_code == 404
    assert patched.json()["code"] == "not_found"
    deleted = await client.delete(f"{CART}/items/{item_id}", headers=other)
    assert deleted.status_code == 404
    mine = (await client.get(CART, headers=customer_headers)).json()
    assert [(i["id"], i["quantity"]) for i in mine["items"]] == [(item_id, 2)]
    theirs = (await client.get(CART, headers=other)).json()
    assert theirs["id"] != mine["id"]
    assert [(i["sku"], i["quantity"]) for i in theirs["items"]] == [("MINE", 1)]


async def test_a_sku_deleted_after_it_was_added_stays_visible(
    client: httpx.AsyncClient,
    customer_headers: dict[str, str],
    staff_headers: dict[str, str],
    make_sku: SkuMaker,
) -> None:
    await make_sku("SOON", stock=2)
    await add_to_cart(client, customer_headers, "SOON", 1)
    assert (await client.delete(f"{API}/skus/SOON", headers=staff_headers)).status_code == 204
    cart = (await client.get(CART, headers=customer_headers)).json()
    assert [(i["sku"], i["is_deleted"]) for i in cart["items"]] == [("SOON", True)]
