"""Input PostgreSQL cannot take (NUL in text, ids beyond the id columns, naive times) and
SKU codes that cannot exist are bad input: 422, nothing changed, never a 500 — on SQLite,
which would accept some of them, as on PostgreSQL."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
from sqlalchemy import func, select

from storekeeper.db import Database
from storekeeper.inventory.models import Location, Reservation, StockMovement
from tests.inventory.conftest import Receiver, SkuFactory

API = "/api/v1"
NUL = "a\x00b"

WRITES: list[tuple[str, dict[str, Any]]] = [
    ("/inventory/A/adjustments", {"delta": 1, "reason": "receive", "note": NUL}),
    ("/locations", {"code": "EAST", "name": NUL}),
    ("/inventory/holds", {"client_token": NUL, "items": [{"sku": "A", "quantity": 1}]}),
    (
        "/inventory/holds",
        {"client_token": "t-1", "reference": NUL, "items": [{"sku": "A", "quantity": 1}]},
    ),
    ("/inventory/allocations", {"client_token": NUL, "items": [{"sku": "A", "quantity": 1}]}),
    (
        "/inventory/allocations",
        {"client_token": "t-2", "reference": NUL, "items": [{"sku": "A", "quantity": 1}]},
    ),
    ("/inventory/A%00B/adjustments", {"delta": 1, "reason": "receive"}),
    ("/inventory/bad%20code/adjustments", {"delta": 1, "reason": "receive"}),
]


def _cursor(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


NAIVE_TIME = _cursor(["2026-01-01T00:00:00", "6f1c1e4e-1111-4111-8111-111111111111"])
READS = [
    f"/inventory/availability?cursor={_cursor([2**31])}",
    f"/inventory/availability?cursor={_cursor([-1])}",
    f"/inventory/movements?cursor={_cursor([2**63])}",
    f"/inventory/A/movements?cursor={_cursor([2**63])}",
    f"/inventory/holds?cursor={NAIVE_TIME}",
    f"/inventory/allocations?cursor={NAIVE_TIME}",
    "/inventory/A%00B",
    "/inventory/bad%20code",
    f"/inventory/{'X' * 65}",
    "/inventory/A%00B/movements",
    "/inventory/availability?sku=A%00B",
    "/inventory/availability?sku=A&sku=bad%20code",
    "/inventory/holds?sku=A%00B",
    "/inventory/allocations?sku=A%00B",
]


async def _counts(db: Database) -> tuple[int, int, int]:
    async with db.transaction(write=False) as session:
        row = await session.execute(
            select(
                select(func.count()).select_from(StockMovement).scalar_subquery(),
                select(func.count()).select_from(Reservation).scalar_subquery(),
                select(func.count()).select_from(Location).scalar_subquery(),
            )
        )
        movements, reservations, locations = row.one()
    return movements, reservations, locations


async def test_unstorable_text_and_impossible_codes_are_422(
    client: httpx.AsyncClient,
    db: Database,
    staff_headers: dict[str, str],
    make_sku: SkuFactory,
    receive: Receiver,
) -> None:
    await make_sku("A")
    await receive("A", 5)
    before = await _counts(db)
    for path, body in WRITES:
        response = await client.post(f"{API}{path}", json=body, headers=staff_headers)
        assert response.status_code == 422, (path, body, response.text)
        assert response.json()["code"] == "validation_error", path
    for path in READS:
        response = await client.get(f"{API}{path}", headers=staff_headers)
        assert response.status_code == 422, (path, response.text)
        assert response.json()["code"] == "validation_error", path
    assert await _counts(db) == before
    stock = (await client.get(f"{API}/inventory/a", headers=staff_headers)).json()
    assert (stock["on_hand"], stock["available"]) == (5, 5)
