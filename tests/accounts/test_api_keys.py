"""API keys: the admin API, keys as principals with scopes, revocation and expiry at once,
`last_used_at` kept to the minute, and every route of the application in one access class
for keys."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select, update
from typer.testing import CliRunner

from storekeeper.accounts.models import ApiKey, User
from storekeeper.accounts.scopes import (
    CLOSED_TO_ADMINS,
    CLOSED_TO_PEOPLE,
    PUBLIC,
    SCOPES,
    Access,
    access_of,
)
from storekeeper.cli import app as cli
from storekeeper.db import Database, utcnow
from storekeeper.inventory.models import Reservation, StockMovement
from tests.inventory.conftest import Receiver, SkuFactory, make_sku, receive

# The inventory's fixtures, used here to stock a SKU.
__all__ = ["make_sku", "receive"]

API = "/api/v1"
HOLDS = f"{API}/inventory/holds"

Json = dict[str, Any]


async def _create_key(
    client: httpx.AsyncClient, admin_headers: dict[str, str], scopes: list[str], **fields: Any
) -> Json:
    response = await client.post(
        f"{API}/api-keys",
        headers=admin_headers,
        json={"name": "Storefront", "scopes": scopes, **fields},
    )
    assert response.status_code == 201, response.text
    body: Json = response.json()
    return body


def _bearer(key: Json) -> dict[str, str]:
    return {"Authorization": f"Bearer {key['key']}"}


async def test_a_key_is_shown_once_and_listed_without_it(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db: Database
) -> None:
    created = await _create_key(
        client, admin_headers, ["reservations:write"], rate_limit_per_minute=600
    )
    assert created["key"].startswith("sk_") and len(created["key"]) >= 3 + 32
    assert created["prefix"] == created["key"][:10]
    assert created["scopes"] == ["reservations:write"]
    assert created["rate_limit_per_minute"] == 600
    assert created["last_used_at"] is None and created["expires_at"] is None

    listed = await client.get(f"{API}/api-keys", headers=admin_headers)
    assert listed.status_code == 200
    shown = listed.json()["items"]
    assert [item["id"] for item in shown] == [created["id"]]
    assert "key" not in shown[0]
    one = await client.get(f"{API}/api-keys/{created['id']}", headers=admin_headers)
    assert one.status_code == 200 and "key" not in one.json()
    async with db.transaction(write=False) as session:
        stored = await session.get(ApiKey, created["id"])
        assert stored is not None
        assert created["key"] not in (stored.key_digest, stored.prefix)
        assert len(stored.key_digest) == 64
    # Key accounts are not people: the user list leaves them out.
    users = (await client.get(f"{API}/users", headers=admin_headers)).json()["items"]
    assert created["actor_id"] not in [user["id"] for user in users]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "scopes": []}, "scopes"),
        ({"name": "x", "scopes": ["everything"]}, "scopes"),
        ({"name": "x", "scopes": ["orders:read", "orders:read"]}, "scopes"),
        ({"name": "", "scopes": ["orders:read"]}, "name"),
        (
            {"name": "x", "scopes": ["orders:read"], "rate_limit_per_minute": 0},
            "rate_limit_per_minute",
        ),
        (
            {"name": "x", "scopes": ["orders:read"], "expires_at": "2020-01-01T00:00:00Z"},
            "expires_at",
        ),
        (
            {"name": "x", "scopes": ["orders:read"], "expires_at": "2099-01-01T00:00:00"},
            "expires_at",
        ),
        ({"name": "x", "scopes": ["orders:read"], "key": "sk_mine"}, "key"),
    ],
)
async def test_bad_key_requests_are_422_and_make_nothing(
    client: httpx.AsyncClient, admin_headers: dict[str, str], body: Json, field: str
) -> None:
    response = await client.post(f"{API}/api-keys", headers=admin_headers, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"
    assert field in response.text
    assert (await client.get(f"{API}/api-keys", headers=admin_headers)).json()["items"] == []


async def test_only_admins_manage_keys(
    client: httpx.AsyncClient, staff_headers: dict[str, str], admin_headers: dict[str, str]
) -> None:
    refused = await client.post(
        f"{API}/api-keys", headers=staff_headers, json={"name": "x", "scopes": ["orders:read"]}
    )
    assert refused.status_code == 403
    assert (await client.get(f"{API}/api-keys")).status_code == 401
    # Not even a key with every scope reaches keys, users or webhooks.
    key = await _create_key(client, admin_headers, list(SCOPES))
    for method, path, needed in (
        ("GET", f"{API}/api-keys", "admin"),
        ("POST", f"{API}/api-keys", "admin"),
        ("GET", f"{API}/users", "admin"),
        ("PATCH", f"{API}/users/1", "admin"),
        ("GET", f"{API}/users/me", "user"),
        ("GET", f"{API}/webhooks", "admin"),
        ("GET", f"{API}/carts/me", "user"),
    ):
        response = await client.request(
            method, path, headers=_bearer(key), json={"name": "x", "scopes": ["orders:read"]}
        )
        assert response.status_code == 403, (path, response.text)
        assert response.json()["code"] == "forbidden"
        assert response.json()["required_scope"] == needed


async def test_a_reservations_key_holds_and_converts_but_needs_scopes_elsewhere(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    db: Database,
    make_sku: SkuFactory,
    receive: Receiver,
) -> None:
    await make_sku("MUG")
    await receive("MUG", 50)
    key = await _create_key(client, admin_headers, ["reservations:write"])
    headers = _bearer(key)
    # Above the low-stock threshold (the one-statement path), then a multi-line unit.
    hold = await client.post(
        HOLDS,
        headers=headers,
        json={"client_token": "k-1", "items": [{"sku": "MUG", "quantity": 2}]},
    )
    assert hold.status_code == 201, hold.text
    converted = await client.post(f"{HOLDS}/{hold.json()['id']}/convert", headers=headers)
    assert converted.status_code == 200, converted.text
    assert converted.json()["status"] == "allocated"

    for method, path, scope in (
        ("POST", f"{API}/inventory/MUG/adjustments", "inventory:write"),
        ("GET", f"{API}/inventory/MUG", "inventory:read"),
        ("GET", f"{HOLDS}/{hold.json()['id']}", "inventory:read"),
        ("POST", f"{API}/orders", "orders:write"),
        ("GET", f"{API}/orders", "orders:read"),
        ("POST", f"{API}/skus", "catalog:write"),
        ("GET", f"{API}/events", "inventory:read"),
    ):
        response = await client.request(
            method, path, headers=headers, json={"delta": 1, "reason": "count"}
        )
        assert response.status_code == 403, (path, response.text)
        assert response.json()["code"] == "forbidden"
        assert response.json()["required_scope"] == scope
    # Public reads need no scope.
    assert (await client.get(f"{API}/skus/MUG", headers=headers)).status_code == 200

    # The ledger and the hold record the key's account as their actor.
    async with db.transaction(write=False) as session:
        creator = await session.scalar(select(Reservation.created_by))
        actors = set(
            (
                await session.scalars(
                    select(StockMovement.actor_id).where(
                        StockMovement.kind.in_(["hold", "convert"])
                    )
                )
            ).all()
        )
    assert creator == key["actor_id"]
    assert actors == {key["actor_id"]}


async def test_revoked_and_expired_keys_are_refused_at_once(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    db: Database,
    make_sku: SkuFactory,
    receive: Receiver,
) -> None:
    await make_sku("MUG")
    await receive("MUG", 50)
    key = await _create_key(client, admin_headers, ["reservations:write", "inventory:read"])
    body = {"client_token": "r-1", "items": [{"sku": "MUG", "quantity": 1}]}
    assert (await client.post(HOLDS, headers=_bearer(key), json=body)).status_code == 201
    revoked = await client.delete(f"{API}/api-keys/{key['id']}", headers=admin_headers)
    assert revoked.status_code == 204
    for attempt in range(2):  # the one-statement path and a read alike
        again = await client.post(
            HOLDS, headers=_bearer(key), json={**body, "client_token": f"r-{attempt + 2}"}
        )
        assert again.status_code == 401, again.text
    assert (await client.get(f"{API}/inventory/MUG", headers=_bearer(key))).status_code == 401
    assert (
        await client.get(f"{API}/api-keys/{key['id']}", headers=admin_headers)
    ).status_code == 404
    assert (
        await client.delete(f"{API}/api-keys/{key['id']}", headers=admin_headers)
    ).status_code == 404

    later = await _create_key(
        client,
        admin_headers,
        ["inventory:read"],
        expires_at=(utcnow() + timedelta(hours=1)).isoformat(),
    )
    assert (await client.get(f"{API}/inventory/MUG", headers=_bearer(later))).status_code == 200
    async with db.transaction() as session:
        await session.execute(
            update(ApiKey)
            .where(ApiKey.id == later["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    expired = await client.get(f"{API}/inventory/MUG", headers=_bearer(later))
    assert expired.status_code == 401
    assert expired.json()["code"] == "unauthorized"
    forged = await client.get(
        f"{API}/inventory/MUG", headers={"Authorization": "Bearer sk_" + "x" * 43}
    )
    assert forged.status_code == 401


async def test_last_used_at_is_written_at_most_once_a_minute(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db: Database
) -> None:
    key = await _create_key(client, admin_headers, ["inventory:read"])
    writes: list[str] = []

    def collect(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE API_KEYS"):
            writes.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", collect)
    try:
        for _ in range(3):
            assert (await client.get(f"{API}/locations", headers=_bearer(key))).status_code == 200
        assert len(writes) == 1
        async with db.transaction() as session:
            await session.execute(
                update(ApiKey)
                .where(ApiKey.id == key["id"])
                .values(last_used_at=utcnow() - timedelta(minutes=2))
            )
        writes.clear()
        assert (await client.get(f"{API}/locations", headers=_bearer(key))).status_code == 200
        assert (await client.get(f"{API}/locations", headers=_bearer(key))).status_code == 200
        assert len(writes) == 1  # one touch for the two uses
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", collect)
    shown = (await client.get(f"{API}/api-keys/{key['id']}", headers=admin_headers)).json()
    assert shown["last_used_at"] is not None


async def test_a_key_account_cannot_sign_in(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db: Database
) -> None:
    key = await _create_key(client, admin_headers, ["orders:read"])
    async with db.transaction(write=False) as session:
        account = await session.get(User, key["actor_id"])
        assert account is not None
        email = account.email
    response = await client.post(
        f"{API}/auth/token", data={"username": email, "password": key["key"]}
    )
    assert response.status_code == 401


def test_every_route_has_one_access_class(app: Any) -> None:
    """Every API route is public, scoped or closed for keys, and the classes are the ones
    the contract names (a new route is closed until it is given a scope)."""
    expected: dict[tuple[str, str], Access] = {}
    for path, operations in app.openapi()["paths"].items():
        if not path.startswith(API):
            continue
        for method in operations:
            expected[(method.upper(), path.removeprefix(API))] = access_of(
                method.upper(), path.removeprefix(API)
            )
    scoped = {key: access.scope for key, access in expected.items() if access.kind == "scoped"}
    assert scoped[("POST", "/inventory/holds")] == "reservations:write"
    assert scoped[("POST", "/inventory/allocations/{allocation_id}/fulfil")] == "reservations:write"
    assert scoped[("GET", "/inventory/holds/{hold_id}")] == "inventory:read"
    assert scoped[("POST", "/inventory/{sku}/adjustments")] == "inventory:write"
    assert scoped[("POST", "/locations")] == "inventory:write"
    assert scoped[("GET", "/events")] == "inventory:read"
    assert scoped[("PATCH", "/orders/{order_id}/status")] == "orders:write"
    assert scoped[("GET", "/orders/{order_id}")] == "orders:read"
    assert scoped[("DELETE", "/categories/{category_id}")] == "catalog:write"
    assert expected[("GET", "/products")] == PUBLIC
    for closed in (
        ("GET", "/users"),
        ("PATCH", "/users/{user_id}"),
        ("POST", "/api-keys"),
        ("DELETE", "/api-keys/{key_id}"),
        ("POST", "/webhooks"),
        ("GET", "/webhooks/{endpoint_id}/deliveries"),
    ):
        assert expected[closed] == CLOSED_TO_ADMINS, closed
    for personal in (
        ("POST", "/auth/token"),
        ("GET", "/users/me"),
        ("PATCH", "/users/me"),
        ("GET", "/carts/me"),
        ("POST", "/skus/{code}/waitlist"),
        ("GET", "/users/me/waitlist"),
    ):
        assert expected[personal] == CLOSED_TO_PEOPLE, personal
    assert set(scoped.values()) == set(SCOPES)


async def test_a_key_s_own_rate_limit_is_always_enforced(
    client: httpx.AsyncClient, admin_headers: dict[str, str], settings: Any
) -> None:
    assert settings.rate_limit_enabled is False  # the general limits are off here
    key = await _create_key(client, admin_headers, ["inventory:read"], rate_limit_per_minute=3)
    other = await _create_key(client, admin_headers, ["inventory:read"])
    answers = [
        (await client.get(f"{API}/locations", headers=_bearer(key))).status_code for _ in range(4)
    ]
    assert answers == [200, 200, 200, 429]
    refused = await client.get(f"{API}/locations", headers=_bearer(key))
    assert refused.json()["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # Another key has its own budget (none here).
    for _ in range(5):
        assert (await client.get(f"{API}/locations", headers=_bearer(other))).status_code == 200


async def test_the_command_line_creates_a_key_and_prints_it_once(
    client: httpx.AsyncClient, db: Database, test_database: Any
) -> None:
    runner = CliRunner()
    env = {"STOREKEEPER_DATABASE_URL": test_database.url, "STOREKEEPER_ENV": "test"}

    def invoke(arguments: list[str]) -> Any:
        return runner.invoke(cli, ["api-keys", "create", *arguments], env=env)

    made = await asyncio.to_thread(
        invoke, ["--name", "Warehouse", "--scope", "inventory:read", "--scope", "orders:read"]
    )
    assert made.exit_code == 0, made.output
    key = made.output.strip().splitlines()[-1]
    assert key.startswith("sk_")
    assert (
        await client.get(f"{API}/locations", headers={"Authorization": f"Bearer {key}"})
    ).status_code == 200
    async with db.transaction(write=False) as session:
        stored = (await session.scalars(select(ApiKey))).one()
    assert (stored.name, stored.scopes, stored.created_by) == (
        "Warehouse",
        ["inventory:read", "orders:read"],
        None,
    )
    refused = await asyncio.to_thread(invoke, ["--name", "x", "--scope", "everything"])
    assert refused.exit_code == 2
    assert "unknown scope" in refused.output
