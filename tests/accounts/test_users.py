"""The caller's profile and addresses, and user administration."""

from __future__ import annotations

import httpx
import pytest

from storekeeper.accounts.models import Role, User
from storekeeper.config import Settings
from storekeeper.db import Database
from tests.accounts.conftest import PROBLEM, TOKEN_URL, SignIn, count_statements
from tests.conftest import TEST_PASSWORD, UserFactory, bearer

ME = "/api/v1/users/me"
ADDRESSES = "/api/v1/users/me/addresses"
USERS = "/api/v1/users"

HOME = {
    "name": "Ada Lovelace",
    "line1": "12 St James's Square",
    "city": "London",
    "postal_code": "SW1Y 4JH",
    "country": "gb",
}


async def test_read_and_rename_me(
    client: httpx.AsyncClient, customer_headers: dict[str, str], customer_user: User
) -> None:
    me = await client.get(ME, headers=customer_headers)
    assert me.status_code == 200
    assert me.json()["email"] == customer_user.email
    assert set(me.json()) == {
        "id",
        "email",
        "full_name",
        "role",
        "is_active",
        "created_at",
        "updated_at",
    }
    renamed = await client.patch(ME, json={"full_name": "New Name"}, headers=customer_headers)
    assert renamed.status_code == 200
    assert renamed.json()["full_name"] == "New Name"
    cleared = await client.patch(ME, json={"full_name": None}, headers=customer_headers)
    assert cleared.json()["full_name"] is None
    # Only the documented fields may change.
    role = await client.patch(ME, json={"role": "admin"}, headers=customer_headers)
    assert role.status_code == 422
    assert (await client.get(ME, headers=customer_headers)).json()["role"] == "customer"


async def test_password_change_needs_the_current_password(
    client: httpx.AsyncClient,
    sign_in: SignIn,
    customer_headers: dict[str, str],
    customer_user: User,
) -> None:
    pair = await sign_in(customer_user.email)
    missing = await client.patch(ME, json={"password": "brand-new-pass"}, headers=customer_headers)
    assert missing.status_code == 422
    assert missing.json()["code"] == "validation_error"
    wrong = await client.patch(
        ME,
        json={"password": "brand-new-pass", "current_password": "not it"},
        headers=customer_headers,
    )
    assert wrong.status_code == 422
    assert wrong.json()["errors"][0]["loc"] == ["body", "current_password"]
    too_short = await client.patch(
        ME, json={"password": "short", "current_password": TEST_PASSWORD}, headers=customer_headers
    )
    assert too_short.status_code == 422

    changed = await client.patch(
        ME,
        json={"password": "brand-new-pass", "current_password": TEST_PASSWORD},
        headers=customer_headers,
    )
    assert changed.status_code == 200
    assert "password" not in changed.text
    old = await client.post(
        TOKEN_URL, data={"username": customer_user.email, "password": TEST_PASSWORD}
    )
    assert old.status_code == 401
    await sign_in(customer_user.email, "brand-new-pass")
    # Sessions opened with the old password are over.
    stale = await client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert stale.status_code == 401


async def test_address_crud(client: httpx.AsyncClient, customer_headers: dict[str, str]) -> None:
    created = await client.post(ADDRESSES, json=HOME, headers=customer_headers)
    assert created.status_code == 201
    address = created.json()
    assert address["country"] == "GB"
    assert address["line2"] is None
    address_url = f"{ADDRESSES}/{address['id']}"

    listed = await client.get(ADDRESSES, headers=customer_headers)
    assert listed.status_code == 200
    assert [item["id"] for item in listed.json()["items"]] == [address["id"]]
    assert listed.json()["next_cursor"] is None

    patched = await client.patch(
        address_url, json={"line2": "Flat 2", "city": "Bath"}, headers=customer_headers
    )
    assert patched.status_code == 200
    assert patched.json()["line2"] == "Flat 2"
    assert patched.json()["city"] == "Bath"
    assert patched.json()["name"] == "Ada Lovelace"
    cleared = await client.patch(address_url, json={"line2": None}, headers=customer_headers)
    assert cleared.json()["line2"] is None
    not_nullable = await client.patch(address_url, json={"city": None}, headers=customer_headers)
    assert not_nullable.status_code == 422

    assert (await client.get(address_url, headers=customer_headers)).json()["city"] == "Bath"
    deleted = await client.delete(address_url, headers=customer_headers)
    assert deleted.status_code == 204
    gone = await client.get(address_url, headers=customer_headers)
    assert gone.status_code == 404
    assert (await client.delete(address_url, headers=customer_headers)).status_code == 404


async def test_another_customers_address_is_404(
    client: httpx.AsyncClient,
    settings: Settings,
    make_user: UserFactory,
    customer_headers: dict[str, str],
) -> None:
    other = bearer(settings, await make_user(Role.CUSTOMER))
    theirs = (await client.post(ADDRESSES, json=HOME, headers=other)).json()
    url = f"{ADDRESSES}/{theirs['id']}"
    for response in [
        await client.get(url, headers=customer_headers),
        await client.patch(url, json={"city": "Paris"}, headers=customer_headers),
        await client.delete(url, headers=customer_headers),
    ]:
        assert response.status_code == 404
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["code"] == "not_found"
    assert (await client.get(ADDRESSES, headers=customer_headers)).json()["items"] == []
    assert (await client.get(url, headers=other)).json()["city"] == "London"


async def test_address_limits_are_422(
    client: httpx.AsyncClient, customer_headers: dict[str, str]
) -> None:
    bad = [
        {**HOME, "country": "XX"},
        {**HOME, "country": "GBR"},
        {**HOME, "country": "1"},
        {**HOME, "postal_code": ""},
        {**HOME, "postal_code": "1" * 21},
        {**HOME, "name": ""},
        {**HOME, "line1": "l" * 201},
        {**HOME, "city": "\x00"},
        {**HOME, "line2": ""},
        {key: value for key, value in HOME.items() if key != "city"},
        {**HOME, "user_id": 1},
    ]
    for body in bad:
        response = await client.post(ADDRESSES, json=body, headers=customer_headers)
        assert response.status_code == 422, body
        assert response.json()["code"] == "validation_error"
    for address_id in ["0", "-1", str(10**30), "abc"]:
        response = await client.get(f"{ADDRESSES}/{address_id}", headers=customer_headers)
        assert response.status_code == 422, address_id
    edge = {**HOME, "name": "n" * 200, "postal_code": "9" * 20, "country": " us "}
    created = await client.post(ADDRESSES, json=edge, headers=customer_headers)
    assert created.status_code == 201
    assert created.json()["country"] == "US"
    listed = (await client.get(ADDRESSES, headers=customer_headers)).json()["items"]
    assert [item["id"] for item in listed] == [created.json()["id"]]


async def test_customer_and_staff_get_403_on_admin_endpoints(
    client: httpx.AsyncClient,
    customer_headers: dict[str, str],
    staff_headers: dict[str, str],
    customer_user: User,
) -> None:
    for headers in (customer_headers, staff_headers):
        calls = [
            await client.get(USERS, headers=headers),
            await client.post(
                USERS,
                json={"email": "n@example.com", "password": "password", "role": "admin"},
                headers=headers,
            ),
            await client.get(f"{USERS}/{customer_user.id}", headers=headers),
            await client.patch(
                f"{USERS}/{customer_user.id}", json={"role": "admin"}, headers=headers
            ),
        ]
        for response in calls:
            assert response.status_code == 403
            assert response.headers["content-type"] == PROBLEM
            assert response.json()["code"] == "forbidden"
    assert (await client.get(USERS)).status_code == 401


async def test_admin_creates_and_updates_users(
    client: httpx.AsyncClient, sign_in: SignIn, admin_headers: dict[str, str]
) -> None:
    created = await client.post(
        USERS,
        json={"email": "clerk@example.com", "password": "clerk-pass", "role": "staff"},
        headers=admin_headers,
    )
    assert created.status_code == 201
    clerk = created.json()
    assert clerk["role"] == "staff"
    await sign_in("clerk@example.com", "clerk-pass")
    duplicate = await client.post(
        USERS,
        json={"email": "Clerk@Example.com", "password": "clerk-pass", "role": "customer"},
        headers=admin_headers,
    )
    assert duplicate.status_code == 409
    bad_role = await client.post(
        USERS,
        json={"email": "x@example.com", "password": "password", "role": "root"},
        headers=admin_headers,
    )
    assert bad_role.status_code == 422

    fetched = await client.get(f"{USERS}/{clerk['id']}", headers=admin_headers)
    assert fetched.json()["email"] == "clerk@example.com"
    patched = await client.patch(
        f"{USERS}/{clerk['id']}",
        json={"role": "customer", "full_name": "Clerk"},
        headers=admin_headers,
    )
    assert patched.status_code == 200
    assert (patched.json()["role"], patched.json()["full_name"]) == ("customer", "Clerk")
    missing = await client.patch(f"{USERS}/999999", json={"role": "staff"}, headers=admin_headers)
    assert missing.status_code == 404


async def test_last_active_admin_cannot_be_removed(
    client: httpx.AsyncClient,
    settings: Settings,
    make_user: UserFactory,
    admin_headers: dict[str, str],
    admin_user: User,
) -> None:
    url = f"{USERS}/{admin_user.id}"
    for change in ({"role": "staff"}, {"is_active": False}):
        refused = await client.patch(url, json=change, headers=admin_headers)
        assert refused.status_code == 409
        assert refused.json()["code"] == "conflict"
    second = await make_user(Role.ADMIN)
    demoted = await client.patch(url, json={"role": "staff"}, headers=admin_headers)
    assert demoted.status_code == 200
    last = await client.patch(
        f"{USERS}/{second.id}", json={"is_active": False}, headers=bearer(settings, second)
    )
    assert last.status_code == 409


async def test_user_list_filters_and_pages(
    client: httpx.AsyncClient, make_user: UserFactory, admin_headers: dict[str, str]
) -> None:
    for index in range(5):
        await make_user(Role.CUSTOMER, email=f"shopper{index}@example.com")
    await make_user(Role.STAFF, email="picker@example.com", full_name="Percy 100%_Picker")
    await make_user(Role.CUSTOMER, email="gone@example.com", is_active=False)

    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 3, "role": "customer", "is_active": "true"}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get(USERS, params=params, headers=admin_headers)).json()
        seen.extend(user["id"] for user in page["items"])
        assert all(user["role"] == "customer" and user["is_active"] for user in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 5 and seen == sorted(seen)

    async def emails(**params: str) -> list[str]:
        response = await client.get(USERS, params=params, headers=admin_headers)
        assert response.status_code == 200, response.text
        return [user["email"] for user in response.json()["items"]]

    assert await emails(q="SHOPPER3") == ["shopper3@example.com"]
    assert await emails(q="100%_pick") == ["picker@example.com"]
    assert await emails(q="%") == ["picker@example.com"]
    assert await emails(is_active="false") == ["gone@example.com"]
    assert await emails(role="staff", q="nobody") == []

    for params in (
        {"limit": "0"},
        {"limit": "201"},
        {"cursor": "not-a-cursor"},
        {"cursor": "WyJhIl0"},  # ["a"]
        {"role": "root"},
        {"q": "a\x00"},
        {"q": "q" * 201},
    ):
        response = await client.get(USERS, params=params, headers=admin_headers)
        assert response.status_code == 422, params
        assert response.json()["code"] == "validation_error"


async def test_user_list_statement_count_does_not_grow_with_page_size(
    client: httpx.AsyncClient, db: Database, make_user: UserFactory, admin_headers: dict[str, str]
) -> None:
    for _ in range(12):
        await make_user(Role.CUSTOMER)
    counts = []
    for limit in (1, 12):
        with count_statements(db) as statements:
            response = await client.get(USERS, params={"limit": limit}, headers=admin_headers)
        assert response.status_code == 200
        assert len(response.json()["items"]) == limit
        counts.append(len(statements))
    assert counts[0] == counts[1]


@pytest.mark.parametrize("path", [ME, ADDRESSES])
async def test_caller_endpoints_need_a_token(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
