"""Sign-ins end for real: sign-out, a password change, a deactivation and a role change end
access tokens at once, not when they expire; a token without a sign-in is refused."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import jwt
from structlog.testing import capture_logs

from storekeeper.accounts.models import User
from storekeeper.accounts.security import JWT_ALGORITHM
from storekeeper.config import LockingStrategy, Settings
from storekeeper.db import Database
from tests.accounts.conftest import PROBLEM, SignIn, auth
from tests.conftest import TEST_PASSWORD
from tests.inventory.conftest import Receiver, SkuFactory, make_sku, receive  # noqa: F401

ME = "/api/v1/users/me"
USERS = "/api/v1/users"
HOLDS = "/api/v1/inventory/holds"
NEW_PASSWORD = "a fresh and long passphrase 42"


def _assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "unauthorized"


async def test_logout_ends_the_access_token_at_once(
    client: httpx.AsyncClient, customer_user: User, sign_in: SignIn
) -> None:
    pair = await sign_in(customer_user.email)
    assert (await client.get(ME, headers=auth(pair["access_token"]))).status_code == 200
    logout = await client.post("/api/v1/auth/logout", json={"refresh_token": pair["refresh_token"]})
    assert logout.status_code == 204
    _assert_unauthorized(await client.get(ME, headers=auth(pair["access_token"])))
    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}
    )
    _assert_unauthorized(refreshed)


async def test_logout_ends_only_that_sign_in(
    client: httpx.AsyncClient, customer_user: User, sign_in: SignIn
) -> None:
    phone, laptop = await sign_in(customer_user.email), await sign_in(customer_user.email)
    await client.post("/api/v1/auth/logout", json={"refresh_token": phone["refresh_token"]})
    _assert_unauthorized(await client.get(ME, headers=auth(phone["access_token"])))
    assert (await client.get(ME, headers=auth(laptop["access_token"]))).status_code == 200


async def test_a_password_change_ends_every_other_sign_in_but_not_this_one(
    client: httpx.AsyncClient, customer_user: User, sign_in: SignIn
) -> None:
    current, other = await sign_in(customer_user.email), await sign_in(customer_user.email)
    with capture_logs() as logs:
        changed = await client.patch(
            ME,
            headers=auth(current["access_token"]),
            json={"password": NEW_PASSWORD, "current_password": TEST_PASSWORD},
        )
    assert changed.status_code == 200, changed.text
    assert (await client.get(ME, headers=auth(current["access_token"]))).status_code == 200
    _assert_unauthorized(await client.get(ME, headers=auth(other["access_token"])))
    _assert_unauthorized(
        await client.post("/api/v1/auth/refresh", json={"refresh_token": other["refresh_token"]})
    )
    kept = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": current["refresh_token"]}
    )
    assert kept.status_code == 200
    ended = [entry for entry in logs if entry["event"] == "sign_ins_ended"]
    assert len(ended) == 1
    assert ended[0]["reason"] == "password_changed"
    assert ended[0]["actor_id"] == customer_user.id
    assert ended[0]["user_id"] == customer_user.id
    assert ended[0]["sign_ins_ended"] == 1
    assert NEW_PASSWORD not in repr(logs) and TEST_PASSWORD not in repr(logs)


async def test_a_role_change_ends_the_users_sign_ins(
    client: httpx.AsyncClient,
    staff_user: User,
    admin_user: User,
    admin_headers: dict[str, str],
    sign_in: SignIn,
) -> None:
    staff = await sign_in(staff_user.email)
    with capture_logs() as logs:
        response = await client.patch(
            f"{USERS}/{staff_user.id}", headers=admin_headers, json={"role": "customer"}
        )
    assert response.status_code == 200
    _assert_unauthorized(await client.get(ME, headers=auth(staff["access_token"])))
    changed = [entry for entry in logs if entry["event"] == "user_changed"]
    assert changed == [
        {
            "event": "user_changed",
            "log_level": "info",
            "logger": "storekeeper.audit",
            "actor_id": admin_user.id,
            "user_id": staff_user.id,
            "changes": {"role": ["staff", "customer"]},
        }
    ]
    ended = [entry for entry in logs if entry["event"] == "sign_ins_ended"]
    assert [(e["reason"], e["actor_id"], e["user_id"]) for e in ended] == [
        ("role_changed", admin_user.id, staff_user.id)
    ]


async def test_a_deactivation_ends_the_users_sign_ins(
    client: httpx.AsyncClient,
    customer_user: User,
    admin_headers: dict[str, str],
    sign_in: SignIn,
) -> None:
    pair = await sign_in(customer_user.email)
    response = await client.patch(
        f"{USERS}/{customer_user.id}", headers=admin_headers, json={"is_active": False}
    )
    assert response.status_code == 200
    await client.patch(
        f"{USERS}/{customer_user.id}", headers=admin_headers, json={"is_active": True}
    )
    # Active again, but that sign-in stays ended.
    _assert_unauthorized(await client.get(ME, headers=auth(pair["access_token"])))


async def test_an_admin_creating_a_user_is_audited(
    client: httpx.AsyncClient, admin_user: User, admin_headers: dict[str, str]
) -> None:
    body = {"email": "new.staff@example.com", "password": NEW_PASSWORD, "role": "staff"}
    with capture_logs() as logs:
        response = await client.post(USERS, headers=admin_headers, json=body)
    assert response.status_code == 201
    created = [entry for entry in logs if entry["event"] == "user_created_by_admin"]
    assert created == [
        {
            "event": "user_created_by_admin",
            "log_level": "info",
            "logger": "storekeeper.audit",
            "actor_id": admin_user.id,
            "user_id": response.json()["id"],
            "role": "staff",
        }
    ]


def _token(settings: Settings, user: User, **extra: Any) -> str:
    now = int(time.time())
    claims = {
        "sub": str(user.id),
        "role": user.role,
        "type": "access",
        "iat": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
        **extra,
    }
    return jwt.encode(claims, settings.signing_key, algorithm=JWT_ALGORITHM)


async def test_an_access_token_without_a_sign_in_is_refused(
    client: httpx.AsyncClient, settings: Settings, customer_user: User
) -> None:
    # Correctly signed, unexpired, but of no sign-in (as tokens issued before sign-ins were
    # recorded), or of a sign-in that does not exist.
    _assert_unauthorized(await client.get(ME, headers=auth(_token(settings, customer_user))))
    made_up = _token(settings, customer_user, sid=str(uuid.uuid4()))
    _assert_unauthorized(await client.get(ME, headers=auth(made_up)))


async def test_another_users_sign_in_does_not_vouch_for_a_token(
    client: httpx.AsyncClient,
    settings: Settings,
    customer_user: User,
    staff_user: User,
    sign_in: SignIn,
) -> None:
    pair = await sign_in(customer_user.email)
    sid = jwt.decode(pair["access_token"], options={"verify_signature": False})["sid"]
    forged = _token(settings, staff_user, sid=sid)
    _assert_unauthorized(await client.get(ME, headers=auth(forged)))


async def test_a_signed_out_token_cannot_hold_stock(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    staff_user: User,
    sign_in: SignIn,
    make_sku: SkuFactory,  # noqa: F811
    receive: Receiver,  # noqa: F811
) -> None:
    # On PostgreSQL this is the one-statement hold (its `caller` CTE checks the sign-in); on
    # SQLite the unit-of-work path.
    settings.locking = LockingStrategy.ATOMIC
    await make_sku("HOT")
    await receive("HOT", 100)
    pair = await sign_in(staff_user.email)
    body = {"client_token": "a", "items": [{"sku": "HOT", "quantity": 1}], "ttl_seconds": 60}
    held = await client.post(HOLDS, headers=auth(pair["access_token"]), json=body)
    assert held.status_code == 201, held.text
    await client.post("/api/v1/auth/logout", json={"refresh_token": pair["refresh_token"]})
    body = {**body, "client_token": "b"}
    _assert_unauthorized(await client.post(HOLDS, headers=auth(pair["access_token"]), json=body))
