"""Bad input to product and SKU writes is a 422 that changes nothing (and never a 500)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from storekeeper.db import Database
from tests.catalog.conftest import API, Maker, catalog_row_counts

GOOD_SKU = {"code": "GOOD-1", "price_cents": 100}


def _product(category_id: int, overrides: dict[str, Any]) -> dict[str, Any]:
    return {"name": "Widget", "category_id": category_id, "skus": [GOOD_SKU], **overrides}


PRODUCT_CASES = {
    "bad sku code": {"skus": [{"code": "BAD CODE", "price_cents": 1}]},
    "slash in code": {"skus": [{"code": "A/B", "price_cents": 1}]},
    "empty code": {"skus": [{"code": "", "price_cents": 1}]},
    "65-character code": {"skus": [{"code": "X" * 65, "price_cents": 1}]},
    "unicode code": {"skus": [{"code": "ÄBC", "price_cents": 1}]},
    "negative price": {"skus": [{"code": "NEG", "price_cents": -1}]},
    "huge price": {"skus": [{"code": "HUGE", "price_cents": 10**30}]},
    "price over the limit": {"skus": [{"code": "OVER", "price_cents": 100_000_000_001}]},
    "float price": {"skus": [{"code": "FLOAT", "price_cents": 19.99}]},
    "bad currency": {"skus": [{"code": "CUR", "price_cents": 1, "currency": "DOLLARS"}]},
    "unknown category": {"category_id": 987_654},
    "huge category id": {"category_id": 10**30},
    "long name": {"name": "n" * 10_000},
    "empty name": {"name": ""},
    "long description": {"description": "d" * 5001},
    "big attributes": {"attributes": {"k": "v" * 16_400}},
    "attributes not an object": {"attributes": "flat"},
    "too many skus": {"skus": [{"code": f"S{n}", "price_cents": 1} for n in range(101)]},
}


@pytest.mark.parametrize("overrides", PRODUCT_CASES.values(), ids=PRODUCT_CASES.keys())
async def test_invalid_product_is_422_and_changes_nothing(
    client: httpx.AsyncClient,
    db: Database,
    make_category: Maker,
    staff_headers: dict[str, str],
    overrides: dict[str, Any],
) -> None:
    category = await make_category("Target")
    before = await catalog_row_counts(db)
    response = await client.post(
        f"{API}/products", json=_product(category["id"], overrides), headers=staff_headers
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"
    assert await catalog_row_counts(db) == before


SKU_CASES = {
    "bad sku code": {"code": "no spaces"},
    "negative price": {"price_cents": -5},
    "huge price": {"price_cents": 10**30},
    "unknown product": {"product_id": 555_555},
    "huge product id": {"product_id": 10**30},
    "nul in attributes": {"attributes": {"a\x00": 1}},
}


@pytest.mark.parametrize("overrides", SKU_CASES.values(), ids=SKU_CASES.keys())
async def test_invalid_sku_is_422_and_changes_nothing(
    client: httpx.AsyncClient,
    db: Database,
    make_category: Maker,
    make_product: Maker,
    staff_headers: dict[str, str],
    overrides: dict[str, Any],
) -> None:
    category = await make_category("Target")
    product = await make_product("Widget", category["id"])
    before = await catalog_row_counts(db)
    body = {"product_id": product["id"], "code": "NEW-1", "price_cents": 10, **overrides}
    response = await client.post(f"{API}/skus", json=body, headers=staff_headers)
    assert response.status_code == 422, response.text
    assert await catalog_row_counts(db) == before


@pytest.mark.parametrize(
    "body",
    [
        {"price_cents": -1},
        {"price_cents": 10**30},
        {"price_cents": None},
        {"attributes": None},
        {"code": "RENAMED"},
        {"version": -3},
    ],
)
async def test_invalid_sku_update_is_422_and_changes_nothing(
    client: httpx.AsyncClient,
    make_category: Maker,
    make_product: Maker,
    staff_headers: dict[str, str],
    body: dict[str, Any],
) -> None:
    category = await make_category("Target")
    product = await make_product("Widget", category["id"], skus=[GOOD_SKU])
    response = await client.patch(f"{API}/skus/GOOD-1", json=body, headers=staff_headers)
    assert response.status_code == 422
    assert (await client.get(f"{API}/skus/GOOD-1")).json() == product["skus"][0]


@pytest.mark.parametrize(
    "path", ["/skus/bad%20code", f"/skus/{'X' * 65}", "/products/0", f"/products/{10**30}"]
)
async def test_bad_addresses_are_422(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(f"{API}{path}")
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


@pytest.mark.parametrize(
    "body",
    [
        {"name": None},
        {"category_id": None},
        {"name": "n" * 10_000},
        {"category_id": 10**30},
        {"attributes": {"deep": float("inf")}},
    ],
)
async def test_invalid_product_update_is_422_and_changes_nothing(
    client: httpx.AsyncClient,
    make_category: Maker,
    make_product: Maker,
    staff_headers: dict[str, str],
    body: dict[str, Any],
) -> None:
    category = await make_category("Target")
    product = await make_product("Widget", category["id"])
    response = await client.patch(
        f"{API}/products/{product['id']}",
        content=httpx.Request("POST", "/", json=body).content
        if "attributes" not in body
        else b'{"attributes": {"deep": 1e999}}',
        headers={**staff_headers, "content-type": "application/json"},
    )
    assert response.status_code == 422
    assert (await client.get(f"{API}/products/{product['id']}")).json() == product
