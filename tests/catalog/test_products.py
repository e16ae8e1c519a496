"""Products and SKUs: creation in one transaction, codes, versions, soft delete, filters,
search, availability."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import insert, select

from storekeeper.db import Database
from storekeeper.inventory.models import Location, StockLevel
from storekeeper.inventory.queries import available_by_sku
from tests.catalog.conftest import API, Maker, catalog_row_counts


def _sku(code: str, price_cents: int = 1000, **fields: Any) -> dict[str, Any]:
    return {"code": code, "price_cents": price_cents, **fields}


async def _stock(db: Database, sku_id: int, on_hand: int, reserved: int = 0, **extra: int) -> None:
    """Put a stock level in place directly (the inventory service owns real stock writes)."""
    async with db.transaction() as session:
        location_id = extra.get("location_id")
        if location_id is None:
            location_id = (
                await session.scalars(select(Location.id).where(Location.code == "MAIN"))
            ).one()
        await session.execute(
            insert(StockLevel).values(
                sku_id=sku_id,
                location_id=location_id,
                on_hand=on_hand,
                reserved=reserved,
                allocated=extra.get("allocated", 0),
            )
        )


async def test_product_is_created_with_its_skus(
    client: httpx.AsyncClient, make_category: Maker, make_product: Maker
) -> None:
    category = await make_category("Shirts")
    product = await make_product(
        "Oxford shirt",
        category["id"],
        description="Cotton, button-down collar",
        attributes={"brand": "Acme"},
        skus=[
            _sku("ox-s-blue", 2999, attributes={"size": "S", "colour": "blue"}),
            _sku("OX-M-BLUE", 3199, currency="eur"),
        ],
    )
    assert product["name"] == "Oxford shirt"
    assert product["category_id"] == category["id"]
    assert product["attributes"] == {"brand": "Acme"}
    assert product["version"] == 1
    assert [sku["code"] for sku in product["skus"]] == ["OX-S-BLUE", "OX-M-BLUE"]
    first, second = product["skus"]
    assert first["price_cents"] == 2999
    assert first["currency"] == "USD"
    assert first["attributes"] == {"size": "S", "colour": "blue"}
    assert first["available"] == 0
    assert first["version"] == 1
    assert first["product_id"] == product["id"]
    assert second["currency"] == "EUR"

    fetched = await client.get(f"{API}/products/{product['id']}")
    assert fetched.json() == product
    by_code = await client.get(f"{API}/skus/ox-s-blue")
    assert by_code.status_code == 200
    assert by_code.json() == first


async def test_duplicate_sku_code_fails_the_whole_product(
    client: httpx.AsyncClient,
    db: Database,
    make_category: Maker,
    make_product: Maker,
    staff_headers: dict[str, str],
) -> None:
    category = await make_category("Shoes")
    await make_product("Runner", category["id"], skus=[_sku("RUN-42")])
    before = await catalog_row_counts(db)

    taken = await client.post(
        f"{API}/products",
        json={"name": "Other", "category_id": category["id"], "skus": [_sku("a1"), _sku("run-42")]},
        headers=staff_headers,
    )
    assert taken.status_code == 409
    assert taken.json()["code"] == "conflict"
    assert taken.json()["codes"] == ["RUN-42"]
    twice = await client.post(
        f"{API}/products",
        json={"name": "Other", "category_id": category["id"], "skus": [_sku("b1"), _sku("B1")]},
        headers=staff_headers,
    )
    assert twice.status_code == 422
    assert await catalog_row_counts(db) == before


async def test_sku_codes_stay_taken_after_delete(
    client: httpx.AsyncClient,
    make_category: Maker,
    make_product: Maker,
    staff_headers: dict[str, str],
) -> None:
    category = await make_category("Hats")
    product = await make_product("Cap", category["id"], skus=[_sku("CAP-1")])
    assert (await client.delete(f"{API}/skus/cap-1", headers=staff_headers)).status_code == 204
    again = await client.post(
        f"{API}/skus", json={"product_id": product["id"], **_sku("Cap-1")}, headers=staff_headers
    )
    assert again.status_code == 409
    assert again.json()["code"] == "conflict"


async def test_sku_lifecycle(
    client: httpx.AsyncClient,
    make_category: Maker,
    make_product: Maker,
    staff_headers: dict[str, str],
    customer_headers: dict[str, str],
) -> None:
    category = await make_category("Socks")
    product = await make_product("Wool socks", category["id"])
    created = await client.post(
        f"{API}/skus",
        json={"product_id": product["id"], "code": "sock.w_1-a", "price_cents": 0},
        headers=staff_headers,
    )
    assert created.status_code == 201
    sku = created.json()
    assert sku["code"] == "SOCK.W_1-A"
    assert sku["price_cents"] == 0
    assert sku["available"] == 0

    denied = await client.patch(
        f"{API}/skus/SOCK.W_1-A", json={"price_cents": 5}, headers=customer_headers
    )
    assert denied.status_code == 403
    patched = await client.patch(
        f"{API}/skus/sock.w_1-a",
        json={"price_cents": 1299, "attributes": {"size": "M"}, "version": 1},
        headers=staff_headers,
    )
    assert patched.status_code == 200
    assert patched.json()["price_cents"] == 1299
    assert patched.json()["attributes"] == {"size": "M"}
    assert patched.json()["version"] == 2
    stale = await client.patch(
        f"{API}/skus/SOCK.W_1-A", json={"price_cents": 1, "version": 1}, headers=staff_headers
    )
    assert stale.status_code == 409
    assert stale.json()["code"] == "version_conflict"
    assert (await client.get(f"{API}/skus/SOCK.W_1-A")).json()["price_cents"] == 1299

    listed = await client.get(f"{API}/skus", params={"product_id": product["id"]})
    assert [item["code"] for item in listed.json()["items"]] == ["SOCK.W_1-A"]
    assert (await client.delete(f"{API}/skus/SOCK.W_1-A", headers=staff_headers)).status_code == 204
    assert (await client.get(f"{API}/skus/SOCK.W_1-A")).status_code == 404
    staff_view = await client.get(
        f"{API}/skus/SOCK.W_1-A", params={"include_deleted": "true"}, headers=staff_headers
    )
    assert staff_view.json()["is_deleted"] is True
    assert staff_view.json()["version"] == 3
    listed = await client.get(f"{API}/skus", params={"product_id": product["id"]})
    assert listed.json()["items"] == []
    product_now = (await client.get(f"{API}/products/{product['id']}")).json()
    assert product_now["skus"] == []
    patch_deleted = await client.patch(
        f"{API}/skus/SOCK.W_1-A", json={"price_cents": 1}, headers=staff_headers
    )
    assert patch_deleted.status_code == 404
    assert (await client.get(f"{API}/skus/NOPE")).status_code == 404


async def test_product_update_and_versions(
    client: httpx.AsyncClient,
    make_category: Maker,
    make_product: Maker,
    staff_headers: dict[str, str],
) -> None:
    shirts = await make_category("Shirts")
    tops = await make_category("Tops")
    product = await make_product("Tee", shirts["id"], skus=[_sku("TEE-1")])
    url = f"{API}/products/{product['id']}"

    moved = await client.patch(
        url,
        json={"category_id": tops["id"], "name": "Tee shirt", "description": None, "version": 1},
        headers=staff_headers,
    )
    assert moved.status_code == 200
    body = moved.json()
    assert body["category_id"] == tops["id"]
    assert body["name"] == "Tee shirt"
    assert body["version"] == 2
    assert [sku["code"] for sku in body["skus"]] == ["TEE-1"]

    stale = await client.patch(url, json={"name": "Old", "version": 1}, headers=staff_headers)
    assert stale.status_code == 409
    assert stale.json()["code"] == "version_conflict"
    unknown = await client.patch(url, json={"category_id": 999_999}, headers=staff_headers)
    assert unknown.status_code == 422
    assert (await client.get(url)).json() == body


async def test_product_soft_delete_takes_its_skus_along(
    client: httpx.AsyncClient,
    make_category: Maker,
    make_product: Maker,
    staff_headers: dict[str, str],
) -> None:
    category = await make_category("Gloves")
    product = await make_product("Mitten", category["id"], skus=[_sku("M-1"), _sku("M-2")])
    assert (
        await client.delete(f"{API}/products/{product['id']}", headers=staff_headers)
    ).status_code == 204
    assert (await client.get(f"{API}/products/{product['id']}")).status_code == 404
    assert (await client.get(f"{API}/skus/M-1")).status_code == 404
    staff_sku = await client.get(
        f"{API}/skus/M-2", params={"include_deleted": "true"}, headers=staff_headers
    )
    assert staff_sku.json()["is_deleted"] is True
    assert staff_sku.json()["version"] == 2
    staff_product = await client.get(
        f"{API}/products/{product['id']}", params={"include_deleted": "true"}, headers=staff_headers
    )
    assert staff_product.json()["is_deleted"] is True
    assert staff_product.json()["version"] == 2
    listed = await client.get(f"{API}/products")
    assert listed.json()["items"] == []
    # Only staff may look at deleted rows; anybody else asking still does not see them.
    anonymous = {"include_deleted": "true"}
    assert (
        await client.get(f"{API}/products/{product['id']}", params=anonymous)
    ).status_code == 404
    assert (await client.get(f"{API}/skus/M-2", params=anonymous)).status_code == 404
    assert (await client.get(f"{API}/products", params=anonymous)).json()["items"] == []
    staff_listed = await client.get(
        f"{API}/products", params={"include_deleted": "true"}, headers=staff_headers
    )
    assert [item["id"] for item in staff_listed.json()["items"]] == [product["id"]]
    # Deleting again changes nothing.
    assert (
        await client.delete(f"{API}/products/{product['id']}", headers=staff_headers)
    ).status_code == 204
    new_sku = await client.post(
        f"{API}/skus", json={"product_id": product["id"], **_sku("M-3")}, headers=staff_headers
    )
    assert new_sku.status_code == 422


async def test_available_sums_levels_across_locations(
    client: httpx.AsyncClient,
    db: Database,
    make_category: Maker,
    make_product: Maker,
    staff_headers: dict[str, str],
) -> None:
    category = await make_category("Boots")
    product = await make_product("Hiker", category["id"], skus=[_sku("H-1"), _sku("H-2")])
    h1, h2 = (sku["id"] for sku in product["skus"])
    async with db.transaction() as session:
        session.add(Location(code="EAST", name="East warehouse"))
        await session.flush()
        east = (await session.scalars(select(Location.id).where(Location.code == "EAST"))).one()
    await _stock(db, h1, on_hand=10, reserved=3, allocated=2)
    await _stock(db, h1, on_hand=4, location_id=east)

    body = (await client.get(f"{API}/products/{product['id']}")).json()
    assert [(sku["code"], sku["available"]) for sku in body["skus"]] == [("H-1", 9), ("H-2", 0)]
    assert (await client.get(f"{API}/skus/H-1")).json()["available"] == 9
    async with db.transaction(write=False) as session:
        assert await available_by_sku(session, [h2, h1, h1]) == {h1: 9, h2: 0}
        assert await available_by_sku(session, []) == {}


async def test_filters(
    client: httpx.AsyncClient,
    db: Database,
    make_category: Maker,
    make_product: Maker,
    staff_headers: dict[str, str],
) -> None:
    clothing = await make_category("Clothing")
    shirts = await make_category("Shirts", clothing["id"])
    polos = await make_category("Polos", shirts["id"])
    garden = await make_category("Garden")
    polo = await make_product(
        "Piqué polo", polos["id"], description="Breathable cotton", skus=[_sku("P-1", 2500)]
    )
    oxford = await make_product(
        "Oxford shirt", shirts["id"], description="Woven cotton shirts", skus=[_sku("O-1", 4500)]
    )
    jacket = await make_product("Rain jacket", clothing["id"], skus=[_sku("J-1", 9900)])
    hose = await make_product(
        "Garden hose", garden["id"], description="Rubber, 20 m", skus=[_sku("G-1", 1500)]
    )
    await make_product("Empty", garden["id"])
    await _stock(db, oxford["skus"][0]["id"], on_hand=5)
    await _stock(db, hose["skus"][0]["id"], on_hand=2, reserved=2)

    async def ids(**params: Any) -> list[int]:
        response = await client.get(f"{API}/products", params=params)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert await ids(category_id=clothing["id"]) == [polo["id"], oxford["id"], jacket["id"]]
    assert await ids(category_id=shirts["id"]) == [polo["id"], oxford["id"]]
    assert await ids(category_id=polos["id"]) == [polo["id"]]
    assert await ids(q="cotton") == [polo["id"], oxford["id"]]
    assert await ids(q="shirt") == [oxford["id"]]  # stems: "shirts" matches too
    assert await ids(q="COTTON woven") == [oxford["id"]]
    assert await ids(q="hose!") == [hose["id"]]
    assert await ids(q="nothing-like-this") == []
    assert await ids(q="(((") == []
    assert await ids(q='"unbalanced') == []
    assert await ids(min_price_cents=2500, max_price_cents=4500) == [polo["id"], oxford["id"]]
    assert await ids(max_price_cents=1500) == [hose["id"]]
    assert await ids(min_price_cents=9900) == [jacket["id"]]
    assert await ids(in_stock="true") == [oxford["id"]]
    assert await ids(in_stock="true", category_id=garden["id"]) == []
    assert await ids(category_id=clothing["id"], in_stock="false") == [polo["id"], jacket["id"]]
    assert await ids(category_id=clothing["id"], q="cotton", max_price_cents=3000) == [polo["id"]]

    renamed = await client.patch(
        f"{API}/products/{jacket['id']}",
        json={"description": "Waterproof cotton shell"},
        headers=staff_headers,
    )
    assert renamed.status_code == 200
    assert await ids(q="waterproof") == [jacket["id"]]
    unknown = await client.get(f"{API}/products", params={"category_id": 999_999})
    assert unknown.status_code == 422


BAD_QUERIES: list[dict[str, Any]] = [
    {"min_price_cents": -1},
    {"max_price_cents": 10**30},
    {"category_id": 10**30},
    {"category_id": "x"},
    {"q": ""},
    {"q": "x" * 201},
    {"q": "a\x00b"},
    {"in_stock": "maybe"},
    {"limit": 0},
    {"limit": 201},
    {"cursor": "not-a-cursor"},
    {"cursor": "WyJ4Il0"},
]


async def test_bad_product_queries_are_422(client: httpx.AsyncClient) -> None:
    for params in BAD_QUERIES:
        response = await client.get(f"{API}/products", params=params)
        assert response.status_code == 422, params
        assert response.json()["code"] == "validation_error"
