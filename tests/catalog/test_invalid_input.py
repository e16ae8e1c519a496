"""Bad input to product and SKU writes is a 422 that changes nothing (and never a 500)."""

from __future__ import annotations

from typing import Any

import httpx

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


SKU_CASES = {
    "bad sku code": {"code": "no spaces"},
    "negative price": {"price_cents": -5},
    "huge price": {"price_cents": 10**30},
    "unknown product": {"product_id": 555_555},
    "huge product id": {"product_id": 10**30},
    "nul in attributes": {"attributes": {"a\x00": 1}},
}


SKU_UPDATE_CASES: list[dict[str, Any]] = [
    {"price_cents": -1},
    {"price_cents": 10**30},
    {"price_cents": None},
    {"attributes": None},
    {"code": "RENAMED"},
    {"version": -3},
]
PRODUCT_UPDATE_CASES: list[dict[str, Any]] = [
    {"name": None},
    {"category_id": None},
    {"name": "n" * 10_000},
    {"category_id": 10**30},
    {"category_id": 987_654},
]
BAD_ADDRESSES = ["/skus/bad%20code", f"/skus/{'X' * 65}", "/products/0", f"/products/{10**30}"]

# Each test walks all its cases: a test per case would pay for a fresh database each time.


async def test_invalid_product_is_422_and_changes_nothing(
    client: httpx.AsyncClient,
    db: Database,
    make_category: Maker,
    staff_headers: dict[str, str],
) -> None:
    category = await make_category("Target")
    before = await catalog_row_counts(db)
    for case, overrides in PRODUCT_CASES.items():
        response = await client.post(
            f"{API}/products", json=_product(category["id"], overrides), headers=staff_headers
        )
        assert response.status_code == 422, case
        assert response.json()["code"] == "validation_error"
    assert await catalog_row_counts(db) == before


async def test_invalid_sku_is_422_and_changes_nothing(
    client: httpx.AsyncClient,
    db: Database,
    make_category: Maker,
    make_product: Maker,
    staff_headers: dict[str, str],
) -> None:
    category = await make_category("Target")
    product = await make_product("Widget", category["id"], skus=[GOOD_SKU])
    before = await catalog_row_counts(db)
    for case, overrides in SKU_CASES.items():
        body = {"product_id": product["id"], "code": "NEW-1", "price_cents": 10, **overrides}
        response = await client.post(f"{API}/skus", json=body, headers=staff_headers)
        assert response.status_code == 422, case
    for body in SKU_UPDATE_CASES:
        response = await client.patch(f"{API}/skus/GOOD-1", json=body, headers=staff_headers)
        assert response.status_code == 422, body
    for body in PRODUCT_UPDATE_CASES:
        url = f"{API}/products/{product['id']}"
        response = await client.patch(url, json=body, headers=staff_headers)
        assert response.status_code == 422, body
    infinite = await client.patch(
        f"{API}/products/{product['id']}",
        content=b'{"attributes": {"deep": 1e999}}',
        headers={**staff_headers, "content-type": "application/json"},
    )
    assert infinite.status_code == 422
    assert await catalog_row_counts(db) == before
    assert (await client.get(f"{API}/products/{product['id']}")).json() == product

    for path in BAD_ADDRESSES:
        response = await client.get(f"{API}{path}")
        assert response.status_code == 422, path
        assert response.json()["code"] == "validation_error"
