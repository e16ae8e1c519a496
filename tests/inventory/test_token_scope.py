"""Client tokens are scoped per caller: another caller's identical token makes a hold (or
allocation) of its own, never finds someone else's; the same caller repeating gets the
replay. One-line holds take the one-statement path on PostgreSQL (atomic locking), so both
paths are covered."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import func, select

from storekeeper.accounts.models import Role
from storekeeper.config import LockingStrategy, Settings
from storekeeper.db import Database
from storekeeper.inventory import service
from storekeeper.inventory.lines import StockLine
from storekeeper.inventory.models import Reservation
from tests.conftest import UserFactory, bearer
from tests.inventory.conftest import Receiver, SkuFactory

HOLDS = "/api/v1/inventory/holds"
ALLOCATIONS = "/api/v1/inventory/allocations"


async def _reserved(
    client: httpx.AsyncClient, headers: dict[str, str], sku: str
) -> tuple[int, int]:
    body = (await client.get(f"/api/v1/inventory/{sku}", headers=headers)).json()
    return body["reserved"], body["allocated"]


@pytest.fixture(params=[strategy.value for strategy in LockingStrategy])
def locking(request: pytest.FixtureRequest, settings: Settings) -> LockingStrategy:
    settings.locking = LockingStrategy(request.param)
    return settings.locking


@pytest.mark.parametrize("lines", [1, 2], ids=["one-line", "two-lines"])
async def test_same_token_of_two_callers_makes_two_holds(
    client: httpx.AsyncClient,
    settings: Settings,
    make_user: UserFactory,
    make_sku: SkuFactory,
    receive: Receiver,
    locking: LockingStrategy,
    lines: int,
) -> None:
    ann = bearer(settings, await make_user(Role.STAFF))
    bob = bearer(settings, await make_user(Role.STAFF))
    for code in ("A", "B"):
        await make_sku(code)
        await receive(code, 100)
    items = [{"sku": "A", "quantity": 2}, {"sku": "B", "quantity": 1}][:lines]
    body = {"client_token": "shared-token", "items": items}

    first = await client.post(HOLDS, headers=ann, json=body)
    assert first.status_code == 201, first.text
    other = await client.post(HOLDS, headers=bob, json=body)
    assert other.status_code == 201, other.text
    assert other.json()["id"] != first.json()["id"]
    assert other.json()["client_token"] == "shared-token"

    # Another caller's body may differ: it is another hold, not a reused key.
    different = await client.post(
        HOLDS,
        headers=bearer(settings, await make_user(Role.ADMIN)),
        json={**body, "items": [{"sku": "A", "quantity": 5}]},
    )
    assert different.status_code == 201, different.text

    again = await client.post(HOLDS, headers=ann, json=body)
    assert again.status_code == 200
    assert again.json() == first.json()
    again_bob = await client.post(HOLDS, headers=bob, json=body)
    assert again_bob.status_code == 200
    assert again_bob.json() == other.json()
    reused = await client.post(
        HOLDS, headers=bob, json={**body, "items": [{"sku": "A", "quantity": 3}]}
    )
    assert reused.status_code == 422
    assert reused.json()["code"] == "idempotency_key_reused"

    assert await _reserved(client, ann, "A") == (2 + 2 + 5, 0)


async def test_concurrent_duplicates_of_one_caller_make_one_hold_per_caller(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    make_user: UserFactory,
    make_sku: SkuFactory,
    receive: Receiver,
) -> None:
    callers = [bearer(settings, await make_user(Role.STAFF)) for _ in range(2)]
    await make_sku("A")
    await receive("A", 100)
    body = {"client_token": "race", "items": [{"sku": "A", "quantity": 1}]}
    responses = await asyncio.gather(
        *(client.post(HOLDS, headers=headers, json=body) for headers in callers * 3)
    )
    assert sorted(response.status_code for response in responses) == [200] * 4 + [201] * 2
    assert len({response.json()["id"] for response in responses}) == 2
    async with db.transaction(write=False) as session:
        count = await session.scalar(select(func.count()).select_from(Reservation))
    assert count == 2
    assert await _reserved(client, callers[0], "A") == (2, 0)


async def test_allocation_tokens_are_per_caller_too(
    client: httpx.AsyncClient,
    settings: Settings,
    make_user: UserFactory,
    make_sku: SkuFactory,
    receive: Receiver,
) -> None:
    ann = bearer(settings, await make_user(Role.STAFF))
    bob = bearer(settings, await make_user(Role.STAFF))
    await make_sku("A")
    await receive("A", 10)
    body = {"client_token": "alloc", "items": [{"sku": "A", "quantity": 3}]}
    first = await client.post(ALLOCATIONS, headers=ann, json=body)
    second = await client.post(ALLOCATIONS, headers=bob, json=body)
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["id"] != second.json()["id"]
    replay = await client.post(ALLOCATIONS, headers=bob, json=body)
    assert replay.status_code == 200
    assert replay.json()["id"] == second.json()["id"]
    assert await _reserved(client, ann, "A") == (0, 6)


async def test_reservations_without_a_creator_stay_idempotent_among_themselves(
    db: Database,
    settings: Settings,
    make_user: UserFactory,
    make_sku: SkuFactory,
    receive: Receiver,
) -> None:
    """Internal callers (no actor) share one namespace; a user's same token is apart."""
    apple = await make_sku("APPLE")
    await receive("APPLE", 10)
    staff = await make_user(Role.STAFF)

    async def allocate(actor_id: int | None) -> Reservation:
        async with db.transaction() as session:
            return await service.allocate_stock(
                session,
                [StockLine(apple, 1)],
                client_token="system",
                request_fingerprint="f",
                actor_id=actor_id,
            )

    first = await allocate(None)
    assert (await allocate(None)).id == first.id
    mine = await allocate(staff.id)
    assert mine.id != first.id
    assert (await allocate(staff.id)).id == mine.id
