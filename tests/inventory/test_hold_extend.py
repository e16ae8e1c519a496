"""Hold extend: a live hold gets a new expiry; expired and final ones are refused."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import httpx
from sqlalchemy import update

from storekeeper.db import Database, utcnow
from storekeeper.inventory.models import Reservation
from tests.inventory.conftest import Receiver, SkuFactory

HOLDS = "/api/v1/inventory/holds"


async def _hold(client: httpx.AsyncClient, headers: dict[str, str], token: str) -> str:
    response = await client.post(
        HOLDS,
        headers=headers,
        json={"client_token": token, "items": [{"sku": "EXT-1", "quantity": 1}], "ttl_seconds": 60},
    )
    assert response.status_code == 201
    hold_id: str = response.json()["id"]
    return hold_id


async def _expire_now(db: Database, hold_id: str) -> None:
    async with db.transaction() as session:
        await session.execute(
            update(Reservation)
            .where(Reservation.id == uuid.UUID(hold_id))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )


async def test_extend_sets_expiry_from_now(
    client: httpx.AsyncClient,
    staff_headers: dict[str, str],
    make_sku: SkuFactory,
    receive: Receiver,
) -> None:
    await make_sku("EXT-1")
    await receive("EXT-1", 3)
    hold_id = await _hold(client, staff_headers, "ext-a")
    before = utcnow()
    response = await client.post(
        f"{HOLDS}/{hold_id}/extend", headers=staff_headers, json={"ttl_seconds": 3600}
    )
    after = utcnow()
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "held"
    assert body["items"] == [{"sku": "EXT-1", "quantity": 1, "location": "MAIN"}]
    expires_at = datetime.fromisoformat(body["expires_at"])
    assert before + timedelta(seconds=3600) <= expires_at <= after + timedelta(seconds=3600)
    read = (await client.get(f"{HOLDS}/{hold_id}", headers=staff_headers)).json()
    assert read["expires_at"] == body["expires_at"]


async def test_extend_of_an_expired_hold_is_hold_expired_swept_or_not(
    client: httpx.AsyncClient,
    staff_headers: dict[str, str],
    make_sku: SkuFactory,
    receive: Receiver,
    db: Database,
) -> None:
    await make_sku("EXT-1")
    await receive("EXT-1", 3)
    hold_id = await _hold(client, staff_headers, "ext-b")
    await _expire_now(db, hold_id)
    response = await client.post(
        f"{HOLDS}/{hold_id}/extend", headers=staff_headers, json={"ttl_seconds": 60}
    )
    assert response.status_code == 409
    assert response.json()["code"] == "hold_expired"
    # Swept: status `expired`.
    async with db.transaction() as session:
        await session.execute(
            update(Reservation).where(Reservation.id == uuid.UUID(hold_id)).values(status="expired")
        )
    response = await client.post(
        f"{HOLDS}/{hold_id}/extend", headers=staff_headers, json={"ttl_seconds": 60}
    )
    assert response.status_code == 409
    assert response.json()["code"] == "hold_expired"


async def test_extend_of_a_released_or_converted_hold_is_invalid_transition(
    client: httpx.AsyncClient,
    staff_headers: dict[str, str],
    make_sku: SkuFactory,
    receive: Receiver,
) -> None:
    await make_sku("EXT-1")
    await receive("EXT-1", 3)
    released = await _hold(client, staff_headers, "ext-c")
    assert (
        await client.post(f"{HOLDS}/{released}/release", headers=staff_headers)
    ).status_code == 200
    converted = await _hold(client, staff_headers, "ext-d")
    assert (
        await client.post(f"{HOLDS}/{converted}/convert", headers=staff_headers)
    ).status_code == 200
    for hold_id in (released, converted):
        response = await client.post(
            f"{HOLDS}/{hold_id}/extend", headers=staff_headers, json={"ttl_seconds": 60}
        )
        assert response.status_code == 409
        assert response.json()["code"] == "invalid_transition"


async def test_extend_refuses_bad_ttl_and_unknown_hold(
    client: httpx.AsyncClient,
    staff_headers: dict[str, str],
    customer_headers: dict[str, str],
    make_sku: SkuFactory,
    receive: Receiver,
) -> None:
    await make_sku("EXT-1")
    await receive("EXT-1", 3)
    hold_id = await _hold(client, staff_headers, "ext-e")
    for ttl in (0, 86_401, "60", None):
        response = await client.post(
            f"{HOLDS}/{hold_id}/extend", headers=staff_headers, json={"ttl_seconds": ttl}
        )
        assert response.status_code == 422, ttl
        assert response.json()["code"] == "validation_error"
    response = await client.post(
        f"{HOLDS}/{uuid.uuid4()}/extend", headers=staff_headers, json={"ttl_seconds": 60}
    )
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    response = await client.post(
        f"{HOLDS}/{hold_id}/extend", headers=customer_headers, json={"ttl_seconds": 60}
    )
    assert response.status_code == 403
