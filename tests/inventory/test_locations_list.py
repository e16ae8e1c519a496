"""GET /locations is a keyset-paginated list like every list of the contract."""

from __future__ import annotations

import httpx
from sqlalchemy import event

from storekeeper.db import Database
from storekeeper.pagination import encode_cursor

API = "/api/v1"


async def test_locations_page_by_priority_then_id(
    client: httpx.AsyncClient, staff_headers: dict[str, str], db: Database
) -> None:
    # MAIN exists with priority 100 (from the first migration).
    for code, priority in (("A1", 5), ("A2", 5), ("A3", 5), ("Z", -3), ("TOP", 1000)):
        response = await client.post(
            f"{API}/locations",
            headers=staff_headers,
            json={"code": code, "name": code, "priority": priority},
        )
        assert response.status_code == 201
    seen: list[str] = []
    cursor: str | None = None
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if "FROM locations" in statement:
            statements.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        pages = 0
        while True:
            params: dict[str, str | int] = {"limit": 2}
            if cursor:
                params["cursor"] = cursor
            response = await client.get(f"{API}/locations", headers=staff_headers, params=params)
            assert response.status_code == 200
            body = response.json()
            assert set(body) == {"items", "next_cursor"}
            assert len(body["items"]) <= 2
            seen += [location["code"] for location in body["items"]]
            pages += 1
            cursor = body["next_cursor"]
            if cursor is None:
                break
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    assert seen == ["TOP", "MAIN", "A1", "A2", "A3", "Z"]
    assert pages == 3
    # One statement per page, whatever its depth.
    assert len(statements) == pages


async def test_locations_list_refuses_bad_cursor_and_limit(
    client: httpx.AsyncClient, staff_headers: dict[str, str]
) -> None:
    for params in (
        {"cursor": "not-a-cursor"},
        {"cursor": encode_cursor([1])},
        {"cursor": encode_cursor(["x", 1])},
        {"cursor": encode_cursor([1, 2**40])},
        {"limit": 0},
        {"limit": 201},
    ):
        response = await client.get(f"{API}/locations", headers=staff_headers, params=params)
        assert response.status_code == 422, params
        assert response.json()["code"] == "validation_error"
