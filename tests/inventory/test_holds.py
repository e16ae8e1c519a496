"""Holds over HTTP: all-or-nothing batches, idempotency, convert, release, expiry."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import update

from storekeeper.config import LockingStrategy
from storekeeper.db import Database, utcnow
from storekeeper.inventory.models import Reservation
from storekeeper.pagination import encode_cursor
from tests.inventory.conftest import Receiver, SkuFactory

HOLDS = "/api/v1/inventory/holds"


async def _stock(client: httpx.AsyncClient, headers: dict[str, str], sku: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/inventory/{sku}", headers=headers)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def _figures(client: httpx.AsyncClient, headers: dict[str, str], sku: str) -> tuple[int, ...]:
    body = await _stock(client, headers, sku)
    return body["on_hand"], body["reserved"], body["allocated"], body["available"]


async def _consistent(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    report = (await client.get("/api/v1/inventory/consistency", headers=headers)).json()
    assert report["issues"] == []
    assert report["is_consistent"] is True


async def _expire_now(db: Database, hold_id: str) -> None:
    async with db.transaction() as session:
        await session.execute(
            update(Reservation)
            .where(Reservation.id == __import__("uuid").UUID(hold_id))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )


async def test_hold_is_created_with_contract_shape(
    client: httpx.AsyncClient,
    staff_headers: dict[str, str],
    make_sku: SkuFactory,
    receive: Receiver,
    locking: LockingStrategy,
) -> None:
    await make_sku("TEE-S")
    await make_sku("TEE-M")
    await receive("TEE-S", 5)
    await receive("TEE-M", 2)
    response = await client.post(
        HOLDS,
        headers=staff_headers,
        json={
            "client_token": "cart-1",
            "items": [{"sku": "tee-m", "quantity": 2}, {"sku": "TEE-S", "quantity": 3}],
            "ttl_seconds": 60,
            "reference": "cart 1",
        },
    )
    assert response.status_code == 201
    hold = response.json()
    assert hold["status"] == "held"
    assert hold["client_token"] == "cart-1"
    assert hold["reference"] == "cart 1"
    assert hold["items"] == [
        {"sku": "TEE-S", "quantity": 3, "location": "MAIN"},
        {"sku": "TEE-M", "quantity": 2, "location": "MAIN"},
    ]
    assert hold["expires_at"] > hold["created_at"]
    assert await _figures(client, staff_headers, "TEE-S") == (5, 3, 0, 2)
    assert await _figures(client, staff_headers, "TEE-M") == (2, 2, 0, 0)

    fetched = await client.get(f"{HOLDS}/{hold['id']}", headers=staff_headers)
    assert fetched.status_code == 200
    assert fetched.json() == hold
    await _consistent(client, staff_headers)


async def test_batch_is_all_or_nothing_and_lists_every_short_line(
    client: httpx.AsyncClient,
    staff_headers: dict[str, str],
    make_sku: SkuFactory,
    receive: Receiver,
    locking: LockingStrategy,
) -> None:
    for code, quantity in (("A", 5), ("B", 1), ("C", 0)):
        await make_sku(code)
        if quantity:
            await receive(code, quantity)
    response = await client.post(
        HOLDS,
        headers=staff_headers,
        json={
            "client_token": "t1",
            "items": [
                {"sku": "A", "quantity": 4},
                {"sku": "B", "quantity": 2},
                {"sku": "C", "quantity": 1},
            ],
        },
    )
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "insufficient_stock"
    assert body["shortages"] == [
        {"sku": "B", "requested": 2, "available": 1},
        {"sku": "C", "requested": 1, "available": 0},
    ]
    assert await _figures(client, staff_headers, "A") == (5, 0, 0, 5)
    assert await _figures(client, staff_headers, "B") == (1, 0, 0, 1)
    listed = await client.get(HOLDS, headers=staff_headers)
    assert listed.json() == {"items": [], "next_cursor": None}
    await _consistent(client, staff_headers)


async def test_client_token_makes_holds_idempotent(
    client: httpx.AsyncClient,
    staff_headers: dict[str, str],
    make_sku: SkuFactory,
    receive: Receiver,
) -> None:
    await make_sku("A")
    await make_sku("B")
    await receive("A", 10)
    await receive("B", 10)
    body = {
        "client_token": "same",
        "items": [{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 2}],
    }
    first = await client.post(HOLDS, headers=staff_headers, json=body)
    assert first.status_code == 201
    reordered = {"items": list(reversed(body["items"])), "client_token": "same", "ttl_seconds": 900}
    again = await client.post(HOLDS, headers=staff_headers, json=reordered)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert await _figures(client, staff_headers, "A") == (10, 1, 0, 9)

    different = await client.post(
        HOLDS, headers=staff_headers, json={**body, "items": [{"sku": "A", "quantity": 2}]}
    )
    assert different.status_code == 422
    assert different.json()["code"] == "idempotency_key_reused"

    released = await client.post(f"{HOLDS}/{first.json()['id']}/release", headers=staff_headers)
    assert released.status_code == 200
    replay = await client.post(HOLDS, headers=staff_headers, json=body)
    assert replay.status_code == 200
    assert replay.json()["status"] == "released"
    assert await _figures(client, staff_headers, "A") == (10, 0, 0, 10)


async def test_invalid_hold_requests_are_422_and_change_nothing(
    client: httpx.AsyncClient,
    staff_headers: dict[str, str],
    make_sku: SkuFactory,
    receive: Receiver,
) -> None:
    await make_sku("A")
    await make_sku("GONE", deleted=True)
    await receive("A", 10)
    bad_items: list[Any] = [
        [],
        [{"sku": "A", "quantity": 0}],
        [{"sku": "A", "quantity": 1_000_001}],
        [{"sku": "A", "quantity": 10**30}],
        [{"sku": "A", "quantity": 1.5}],
        [{"sku": "A", "quantity": "1"}],
        [{"sku": "A", "quantity": True}],
        [{"sku": "A", "quantity": 1}, {"sku": "a", "quantity": 1}],
        [{"sku": "NOPE", "quantity": 1}],
        [{"sku": "GONE", "quantity": 1}],
        [{"sku": "A", "quantity": 1, "location": "NOWHERE"}],
        [{"sku": "", "quantity": 1}],
        [{"sku": "Ä☃", "quantity": 1}],
        [{"sku": "A" * 65, "quantity": 1}],
        [{"sku": f"S{i}", "quantity": 1} for i in range(101)],
    ]
    for items in bad_items:
        response = await client.post(
            HOLDS, headers=staff_headers, json={"client_token": "t", "items": items}
        )
        assert response.status_code == 422, items
        assert response.json()["code"] == "validation_error"
    for extra in (
        {"client_token": ""},
        {"client_token": "x" * 129},
        {"ttl_seconds": 0},
        {"ttl_seconds": 86_401},
        {"reference": ""},
        {"unexpected": 1},
    ):
        body = {"client_token": "t", "items": [{"sku": "A", "quantity": 1}], **extra}
        response = await client.post(HOLDS, headers=staff_headers, json=body)
        assert response.status_code == 422, extra
    assert await _figures(client, staff_headers, "A") == (10, 0, 0, 10)


async def test_holds_need_staff(
    client: httpx.AsyncClient, customer_headers: dict[str, str], make_sku: SkuFactory
) -> None:
    await make_sku("A")
    body = {"client_token": "t", "items": [{"sku": "A", "quantity": 1}]}
    assert (await client.post(HOLDS, json=body)).status_code == 401
    forbidden = await client.post(HOLDS, headers=customer_headers, json=body)
    assert forbidden.status_code == 403
    assert forbidden.json()["code"] == "forbidden"
    assert (await client.get("/api/v1/inventory/A", headers=customer_headers)).status_code == 403


async def test_convert_release_and_repeats(
    client: httpx.AsyncClient,
    staff_headers: dict[str, str],
    make_sku: SkuFactory,
    receive: Receiver,
    locking: LockingStrategy,
) -> None:
    await make_sku("A")
    await receive("A", 10)

    async def hold(token: str, quantity: int) -> str:
        response = await client.post(
            HOLDS,
            headers=staff_headers,
            json={"client_token": token, "items": [{"sku": "A", "quantity": quantity}]},
        )
        assert response.status_code == 201
        hold_id: str = response.json()["id"]
        return hold_id

    converted = await hold("c", 3)
    released = await hold("r", 2)
    assert await _figures(client, staff_headers, "A") == (10, 5, 0, 5)

    response = await client.post(f"{HOLDS}/{converted}/convert", headers=staff_headers)
    assert response.status_code == 200
    assert response.json()["status"] == "allocated"
    assert response.json()["id"] == converted
    assert await _figures(client, staff_headers, "A") == (10, 2, 3, 5)
    repeat = await client.post(f"{HOLDS}/{converted}/convert", headers=staff_headers)
    assert repeat.status_code == 200
    assert repeat.json() == response.json()
    refused = await client.post(f"{HOLDS}/{converted}/release", headers=staff_headers)
    assert refused.status_code == 409
    assert refused.json()["code"] == "invalid_transition"

    response = await client.post(f"{HOLDS}/{released}/release", headers=staff_headers)
    assert response.status_code == 200
    assert response.json()["status"] == "released"
    assert await _figures(client, staff_headers, "A") == (10, 0, 3, 7)
    repeat = await client.post(f"{HOLDS}/{released}/release", headers=staff_headers)
    assert repeat.status_code == 200
    assert repeat.json() == response.json()
    refused = await client.post(f"{HOLDS}/{released}/convert", headers=staff_headers)
    assert refused.status_code == 409
    assert refused.json()["code"] == "invalid_transition"
    for action in ("fulfil", "cancel"):
        refused = await client.post(
            f"/api/v1/inventory/allocations/{released}/{action}", headers=staff_headers
        )
        assert refused.status_code == 409
        assert refused.json()["code"] == "invalid_transition"

    fulfilled = await client.post(
        f"/api/v1/inventory/allocations/{converted}/fulfil", headers=staff_headers
    )
    assert fulfilled.status_code == 200
    assert fulfilled.json()["status"] == "fulfilled"
    assert await _figures(client, staff_headers, "A") == (7, 0, 0, 7)
    missing = await client.post(
        f"{HOLDS}/00000000-0000-0000-0000-000000000000/release", headers=staff_headers
    )
    assert missing.status_code == 404
    assert (
        await client.post(f"{HOLDS}/not-a-uuid/release", headers=staff_headers)
    ).status_code == 422
    await _consistent(client, staff_headers)


async def test_convert_after_expiry_is_refused_and_returns_the_stock(
    client: httpx.AsyncClient,
    staff_headers: dict[str, str],
    db: Database,
    make_sku: SkuFactory,
    receive: Receiver,
) -> None:
    await make_sku("A")
    await receive("A", 4)
    hold = (
        await client.post(
            HOLDS,
            headers=staff_headers,
            json={"client_token": "late", "items": [{"sku": "A", "quantity": 4}]},
        )
    ).json()
    await _expire_now(db, hold["id"])
    response = await client.post(f"{HOLDS}/{hold['id']}/convert", headers=staff_headers)
    assert response.status_code == 409
    assert response.json()["code"] == "hold_expired"
    assert await _figures(client, staff_headers, "A") == (4, 0, 0, 4)
    fetched = (await client.get(f"{HOLDS}/{hold['id']}", headers=staff_headers)).json()
    assert fetched["status"] == "expired"
    again = await client.post(f"{HOLDS}/{hold['id']}/convert", headers=staff_headers)
    assert again.status_code == 409
    assert again.json()["code"] == "hold_expired"
    refused = await client.post(f"{HOLDS}/{hold['id']}/release", headers=staff_headers)
    assert refused.json()["code"] == "invalid_transition"
    kinds = [
        m["kind"]
        for m in (await client.get("/api/v1/inventory/A/movements", headers=staff_headers)).json()[
            "items"
        ]
    ]
    assert kinds == ["expire", "hold", "receive"]
    await _consistent(client, staff_headers)


async def test_expired_hold_frees_stock_inline(
    client: httpx.AsyncClient,
    staff_headers: dict[str, str],
    db: Database,
    make_sku: SkuFactory,
    receive: Receiver,
    locking: LockingStrategy,
) -> None:
    await make_sku("A")
    await make_sku("B")
    await receive("A", 3)
    await receive("B", 3)
    old = (
        await client.post(
            HOLDS,
            headers=staff_headers,
            json={
                "client_token": "old",
                "items": [{"sku": "A", "quantity": 3}, {"sku": "B", "quantity": 1}],
            },
        )
    ).json()
    await _expire_now(db, old["id"])
    new = await client.post(
        HOLDS,
        headers=staff_headers,
        json={"client_token": "new", "items": [{"sku": "A", "quantity": 2}]},
    )
    assert new.status_code == 201
    assert (await client.get(f"{HOLDS}/{old['id']}", headers=staff_headers)).json()[
        "status"
    ] == "expired"
    assert await _figures(client, staff_headers, "A") == (3, 2, 0, 1)
    assert await _figures(client, staff_headers, "B") == (3, 0, 0, 3)
    await _consistent(client, staff_headers)


async def test_malformed_reservation_cursors_are_refused(
    client: httpx.AsyncClient, staff_headers: dict[str, str]
) -> None:
    for path in (HOLDS, "/api/v1/inventory/allocations"):
        for cursor in (
            "nonsense",
            encode_cursor(["2026-11-23T10:00:00", str(uuid.uuid4())]),
            encode_cursor(["0001-01-01T00:00:00+14:00", str(uuid.uuid4())]),
            encode_cursor(["9999-12-31T23:59:59-14:00", str(uuid.uuid4())]),
            encode_cursor(["2026-11-23T10:00:00+00:00", "not-a-uuid"]),
        ):
            response = await client.get(path, params={"cursor": cursor}, headers=staff_headers)
            assert response.status_code == 422, (path, cursor)
            assert response.json()["code"] == "validation_error"


async def test_a_hold_expires_its_ttl_after_creation_900_seconds_by_default(
    client: httpx.AsyncClient,
    staff_headers: dict[str, str],
    make_sku: SkuFactory,
    receive: Receiver,
    locking: LockingStrategy,
) -> None:
    await make_sku("A")
    await receive("A", 10)
    for token, ttl, expected in (
        ("default", None, 900),
        ("shortest", 1, 1),
        ("sixty", 60, 60),
        ("longest", 86_400, 86_400),
    ):
        body: dict[str, Any] = {"client_token": token, "items": [{"sku": "A", "quantity": 1}]}
        if ttl is not None:
            body["ttl_seconds"] = ttl
        response = await client.post(HOLDS, headers=staff_headers, json=body)
        assert response.status_code == 201, token
        hold = response.json()
        lifetime = datetime.fromisoformat(hold["expires_at"]) - datetime.fromisoformat(
            hold["created_at"]
        )
        # Both times are taken while the request runs, a moment apart at most.
        assert abs(lifetime - timedelta(seconds=expected)) < timedelta(seconds=1), token


async def test_hold_lists_filter_by_status_and_sku_newest_first(
    client: httpx.AsyncClient,
    staff_headers: dict[str, str],
    make_sku: SkuFactory,
    receive: Receiver,
) -> None:
    for code in ("A", "B"):
        await make_sku(code)
        await receive(code, 10)

    async def hold(token: str, sku: str) -> str:
        body = {"client_token": token, "items": [{"sku": sku, "quantity": 1}]}
        response = await client.post(HOLDS, headers=staff_headers, json=body)
        assert response.status_code == 201
        hold_id: str = response.json()["id"]
        return hold_id

    first_a = await hold("a1", "A")
    only_b = await hold("b1", "B")
    second_a = await hold("a2", "a")
    released = await client.post(f"{HOLDS}/{first_a}/release", headers=staff_headers)
    assert released.status_code == 200

    async def listed(**params: str) -> list[str]:
        response = await client.get(HOLDS, headers=staff_headers, params=params)
        assert response.status_code == 200
        return [item["id"] for item in response.json()["items"]]

    assert await listed() == [second_a, only_b, first_a]
    assert await listed(status="held") == [second_a, only_b]
    assert await listed(status="released") == [first_a]
    assert await listed(sku="a") == [second_a, first_a]
    assert await listed(sku="A", status="held") == [second_a]
    assert await listed(status="expired") == []
