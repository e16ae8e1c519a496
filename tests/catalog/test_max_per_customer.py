"""The SKU field `max_per_customer`: set on `POST /skus` and each SKU of `POST /products`,
changed or cleared (null) by `PATCH /skus/{code}`, read back on every SKU response (null
when unset); 1 … 1,000,000, anything else 422; the database refuses it out of range too."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from storekeeper.catalog.models import Sku
from storekeeper.db import Database
from tests.catalog.conftest import API, Maker


async def _product(client: httpx.AsyncClient, staff: dict[str, str], cat: Maker) -> Any:
    category = await cat("Limited")
    response = await client.post(
        f"{API}/products",
        headers=staff,
        json={
            "name": "Console",
            "category_id": category["id"],
            "skus": [
                {"code": "con-1", "price_cents": 100, "max_per_customer": 2},
                {"code": "con-2", "price_cents": 100},
            ],
        },
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_set_read_change_and_clear(
    client: httpx.AsyncClient, staff_headers: dict[str, str], make_category: Maker
) -> None:
    product = await _product(client, staff_headers, make_category)
    assert [(s["code"], s["max_per_customer"]) for s in product["skus"]] == [
        ("CON-1", 2),
        ("CON-2", None),
    ]
    created = await client.post(
        f"{API}/skus",
        headers=staff_headers,
        json={
            "code": "con-3",
            "product_id": product["id"],
            "price_cents": 1,
            "max_per_customer": 1_000_000,
        },
    )
    assert created.status_code == 201, created.text
    assert created.json()["max_per_customer"] == 1_000_000
    assert (await client.get(f"{API}/skus/CON-3")).json()["max_per_customer"] == 1_000_000

    patched = await client.patch(
        f"{API}/skus/CON-2", headers=staff_headers, json={"max_per_customer": 5}
    )
    assert patched.status_code == 200
    assert patched.json()["max_per_customer"] == 5
    assert patched.json()["version"] == 2
    # Leaving it out keeps it; null clears it.
    kept = await client.patch(f"{API}/skus/CON-2", headers=staff_headers, json={"price_cents": 7})
    assert kept.json()["max_per_customer"] == 5
    cleared = await client.patch(
        f"{API}/skus/CON-2", headers=staff_headers, json={"max_per_customer": None}
    )
    assert cleared.status_code == 200
    assert cleared.json()["max_per_customer"] is None
    listed = (await client.get(f"{API}/skus", params={"product_id": product["id"]})).json()
    assert {s["code"]: s["max_per_customer"] for s in listed["items"]} == {
        "CON-1": 2,
        "CON-2": None,
        "CON-3": 1_000_000,
    }
    shown = (await client.get(f"{API}/products/{product['id']}")).json()
    assert {s["code"]: s["max_per_customer"] for s in shown["skus"]}["CON-1"] == 2


@pytest.mark.parametrize("value", [0, -1, 1_000_001, "many", 1.5, True])
async def test_out_of_range_is_422_and_changes_nothing(
    client: httpx.AsyncClient, staff_headers: dict[str, str], make_category: Maker, value: Any
) -> None:
    product = await _product(client, staff_headers, make_category)
    patched = await client.patch(
        f"{API}/skus/CON-1", headers=staff_headers, json={"max_per_customer": value}
    )
    assert patched.status_code == 422, patched.text
    assert patched.json()["code"] == "validation_error"
    created = await client.post(
        f"{API}/skus",
        headers=staff_headers,
        json={
            "code": "con-9",
            "product_id": product["id"],
            "price_cents": 1,
            "max_per_customer": value,
        },
    )
    assert created.status_code == 422
    assert (await client.get(f"{API}/skus/CON-1")).json()["max_per_customer"] == 2
    assert (await client.get(f"{API}/skus/CON-9")).status_code == 404


async def test_the_database_refuses_a_limit_out_of_range(
    client: httpx.AsyncClient, db: Database, staff_headers: dict[str, str], make_category: Maker
) -> None:
    await _product(client, staff_headers, make_category)
    for value in (0, 1_000_001):
        with pytest.raises(IntegrityError):
            async with db.transaction() as session:
                await session.execute(
                    update(Sku).where(Sku.code == "CON-1").values(max_per_customer=value)
                )
