"""Keyset pagination and the constant statement count of list endpoints."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
from sqlalchemy import insert

from storekeeper.catalog.models import Product, Sku
from storekeeper.db import Database
from tests.catalog.conftest import API, Maker, StatementCounter


async def _walk(
    client: httpx.AsyncClient,
    url: str,
    limit: int,
    between_pages: Any = None,
    **filters: Any,
) -> list[int]:
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": limit, **filters}
        if cursor is not None:
            params["cursor"] = cursor
        response = await client.get(url, params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= limit
        seen.extend(item["id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return seen
        if between_pages is not None:
            await between_pages()


async def test_walk_sees_every_live_product_once_while_products_are_added(
    client: httpx.AsyncClient,
    make_category: Maker,
    make_product: Maker,
    staff_headers: dict[str, str],
) -> None:
    category = await make_category("Walk")
    existing = [(await make_product(f"P{n}", category["id"]))["id"] for n in range(10)]
    deleted = existing[4]
    await client.delete(f"{API}/products/{deleted}", headers=staff_headers)
    added: list[int] = []

    async def add_one() -> None:
        added.append((await make_product(f"New{len(added)}", category["id"]))["id"])

    seen = await _walk(client, f"{API}/products", 3, add_one)

    assert len(seen) == len(set(seen))
    live_before = [product_id for product_id in existing if product_id != deleted]
    assert [product_id for product_id in seen if product_id in existing] == live_before
    assert deleted not in seen
    # New rows sort after the ones already walked past, so the walk picks them up as well.
    assert seen == sorted(seen)
    assert set(added) <= set(seen)


async def test_every_list_walks_completely(
    client: httpx.AsyncClient, make_category: Maker, make_product: Maker
) -> None:
    root = await make_category("Root")
    children = [(await make_category(f"C{n}", root["id"]))["id"] for n in range(7)]
    product = await make_product(
        "Many", root["id"], skus=[{"code": f"MANY-{n}", "price_cents": n} for n in range(7)]
    )
    sku_ids = [sku["id"] for sku in product["skus"]]
    assert await _walk(client, f"{API}/categories", 3) == [root["id"], *children]
    assert await _walk(client, f"{API}/categories", 2, parent_id=root["id"]) == children
    assert await _walk(client, f"{API}/skus", 3) == sku_ids
    assert await _walk(client, f"{API}/skus", 7, product_id=product["id"]) == sku_ids


async def _seed_products(db: Database, category_id: int, count: int) -> None:
    async with db.transaction() as session:
        for n in range(count):
            product_id = (
                await session.execute(
                    insert(Product)
                    .values(name=f"Bulk {n}", category_id=category_id, attributes={})
                    .returning(Product.id)
                )
            ).scalar_one()
            await session.execute(
                insert(Sku),
                [
                    {
                        "code": f"BULK-{n}-{size}",
                        "product_id": product_id,
                        "price_cents": 100 + n,
                        "currency": "USD",
                        "attributes": {"size": size},
                    }
                    for size in ("S", "M", "L")
                ],
            )


async def test_product_list_statement_count_does_not_grow_with_the_page(
    client: httpx.AsyncClient,
    db: Database,
    make_category: Maker,
    statement_counter: StatementCounter,
) -> None:
    category = await make_category("Bulk")
    await _seed_products(db, category["id"], 100)

    async def statements(url: str) -> tuple[int, int]:
        statement_counter.count = 0
        statement_counter.active = True
        response = await client.get(url)
        statement_counter.active = False
        assert response.status_code == 200
        return statement_counter.count, len(response.json()["items"])

    one = await statements(f"{API}/products?limit=1")
    hundred = await statements(f"{API}/products?limit=100")
    assert one[1] == 1
    assert hundred[1] == 100
    assert hundred[0] == one[0]
    filtered_one = await statements(f"{API}/products?limit=1&in_stock=false&max_price_cents=10000")
    filtered_hundred = await statements(
        f"{API}/products?limit=100&in_stock=false&max_price_cents=10000"
    )
    assert filtered_hundred[1] == 100
    assert filtered_hundred[0] == filtered_one[0]
    skus_one = await statements(f"{API}/skus?limit=1")
    skus_many = await statements(f"{API}/skus?limit=200")
    assert skus_many[1] == 200
    assert skus_many[0] == skus_one[0]


def _cursor(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


async def test_cursors_outside_the_id_range_are_422(client: httpx.AsyncClient) -> None:
    # On PostgreSQL these ids would overflow the integer id columns.
    for key in ([2**31], [-(2**31) - 1], [-1], [2**63], [1.5], [True]):
        for url in (f"{API}/categories", f"{API}/products", f"{API}/skus"):
            response = await client.get(url, params={"cursor": _cursor(key)})
            assert response.status_code == 422, (url, key)
            assert response.json()["code"] == "validation_error"
    largest = await client.get(f"{API}/products", params={"cursor": _cursor([2**31 - 1])})
    assert largest.json() == {"items": [], "next_cursor": None}
