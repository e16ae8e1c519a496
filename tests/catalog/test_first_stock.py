"""A new SKU may bring its first stock: received in the transaction that creates it."""

from __future__ import annotations

from typing import Any

import httpx

from tests.catalog.conftest import API, Maker


async def _stock(client: httpx.AsyncClient, headers: dict[str, str], sku: str) -> dict[str, Any]:
    response = await client.get(f"{API}/inventory/{sku}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_sku_created_with_first_stock_at_the_default_location(
    client: httpx.AsyncClient,
    staff_headers: dict[str, str],
    staff_user: Any,
    make_category: Maker,
    make_product: Maker,
) -> None:
    category = await make_category("First stock")
    product = await make_product("Kettle", category["id"])
    response = await client.post(
        f"{API}/skus",
        headers=staff_headers,
        json={"product_id": product["id"], "code": "kettle-1", "price_cents": 2500, "on_hand": 7},
    )
    assert response.status_code == 201, response.text
    assert response.json()["available"] == 7
    stock = await _stock(client, staff_headers, "KETTLE-1")
    assert stock["locations"] == [
        {"location": "MAIN", "on_hand": 7, "reserved": 0, "allocated": 0, "available": 7}
    ]
    movements = (
        await client.get(f"{API}/inventory/KETTLE-1/movements", headers=staff_headers)
    ).json()
    [movement] = movements["items"]
    assert movement["kind"] == "receive"
    assert movement["reason"] == "receive"
    assert movement["on_hand_delta"] == 7
    assert movement["actor_id"] == staff_user.id
    report = (await client.get(f"{API}/inventory/consistency", headers=staff_headers)).json()
    assert report["is_consistent"] is True


async def test_first_stock_at_a_named_location_and_zero_writes_nothing(
    client: httpx.AsyncClient,
    staff_headers: dict[str, str],
    make_category: Maker,
    make_product: Maker,
) -> None:
    created = await client.post(
        f"{API}/locations", headers=staff_headers, json={"code": "back", "name": "Back room"}
    )
    assert created.status_code == 201
    category = await make_category("First stock")
    product = await make_product("Kettle", category["id"])
    response = await client.post(
        f"{API}/skus",
        headers=staff_headers,
        json={
            "product_id": product["id"],
            "code": "KETTLE-2",
            "price_cents": 2500,
            "on_hand": 3,
            "location": "back",
        },
    )
    assert response.status_code == 201, response.text
    stock = await _stock(client, staff_headers, "KETTLE-2")
    assert [(level["location"], level["on_hand"]) for level in stock["locations"]] == [("BACK", 3)]
    response = await client.post(
        f"{API}/skus",
        headers=staff_headers,
        json={"product_id": product["id"], "code": "KETTLE-3", "price_cents": 2500, "on_hand": 0},
    )
    assert response.status_code == 201
    assert response.json()["available"] == 0
    movements = (
        await client.get(f"{API}/inventory/KETTLE-3/movements", headers=staff_headers)
    ).json()
    assert movements["items"] == []


async def test_unknown_location_or_bad_on_hand_creates_nothing(
    client: httpx.AsyncClient,
    staff_headers: dict[str, str],
    make_category: Maker,
    make_product: Maker,
) -> None:
    category = await make_category("First stock")
    product = await make_product("Kettle", category["id"])
    base = {"product_id": product["id"], "code": "KETTLE-4", "price_cents": 100}
    response = await client.post(
        f"{API}/skus", headers=staff_headers, json={**base, "on_hand": 2, "location": "NOWHERE"}
    )
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_error"
    assert body["errors"][0]["loc"] == ["body", "location"]
    assert (await client.get(f"{API}/skus/KETTLE-4")).status_code == 404
    for bad in (-1, 1_000_000_001, "5", 1.5):
        response = await client.post(
            f"{API}/skus", headers=staff_headers, json={**base, "on_hand": bad}
        )
        assert response.status_code == 422, bad
    assert (await client.get(f"{API}/skus/KETTLE-4")).status_code == 404


async def test_product_skus_bring_first_stock_all_or_nothing(
    client: httpx.AsyncClient,
    staff_headers: dict[str, str],
    make_category: Maker,
) -> None:
    category = await make_category("First stock")
    response = await client.post(
        f"{API}/products",
        headers=staff_headers,
        json={
            "name": "Mugs",
            "category_id": category["id"],
            "skus": [
                {"code": "MUG-1", "price_cents": 900, "on_hand": 4},
                {"code": "MUG-2", "price_cents": 900, "on_hand": 2, "location": "NOWHERE"},
            ],
        },
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "skus", 1, "location"]
    assert (await client.get(f"{API}/skus/MUG-1")).status_code == 404
    response = await client.post(
        f"{API}/products",
        headers=staff_headers,
        json={
            "name": "Mugs",
            "category_id": category["id"],
            "skus": [
                {"code": "MUG-1", "price_cents": 900, "on_hand": 4},
                {"code": "MUG-2", "price_cents": 900},
            ],
        },
    )
    assert response.status_code == 201, response.text
    assert [(sku["code"], sku["available"]) for sku in response.json()["skus"]] == [
        ("MUG-1", 4),
        ("MUG-2", 0),
    ]
    assert (await _stock(client, staff_headers, "MUG-1"))["on_hand"] == 4
