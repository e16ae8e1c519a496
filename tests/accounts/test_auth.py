"""Sign-up, sign-in, refresh-token rotation and reuse detection, sign-out, access tokens."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import timedelta

import httpx
import jwt
import pytest
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import select

from storekeeper.accounts.models import RefreshToken, Role, User
from storekeeper.accounts.security import JWT_ALGORITHM, verify_password
from storekeeper.config import Settings
from storekeeper.db import Database, utcnow
from tests.accounts.conftest import PROBLEM, TOKEN_URL, SignIn, auth
from tests.conftest import TEST_PASSWORD, UserFactory, access_token_for, bearer

REGISTER = "/api/v1/auth/register"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/users/me"


async def test_register_sign_in_refresh_and_sign_out(client: httpx.AsyncClient) -> None:
    registered = await client.post(
        REGISTER,
        json={"email": "Ada@Example.COM", "password": "s3cret-pass", "full_name": " Ada "},
    )
    assert registered.status_code == 201
    user = registered.json()
    assert user["email"] == "Ada@example.com"
    assert user["full_name"] == "Ada"
    assert user["role"] == "customer"
    assert user["is_active"] is True
    assert "password" not in registered.text and "hash" not in registered.text

    signed_in = await client.post(
        TOKEN_URL, data={"username": "ada@EXAMPLE.com", "password": "s3cret-pass"}
    )
    assert signed_in.status_code == 200
    pair = signed_in.json()
    assert pair["token_type"] == "bearer"
    assert pair["expires_in"] == 900
    me = await client.get(ME, headers=auth(pair["access_token"]))
    assert me.status_code == 200
    assert me.json()["id"] == user["id"]

    refreshed = await client.post(REFRESH, json={"refresh_token": pair["refresh_token"]})
    assert refreshed.status_code == 200
    new_pair = refreshed.json()
    assert new_pair["refresh_token"] != pair["refresh_token"]
    assert (await client.get(ME, headers=auth(new_pair["access_token"]))).status_code == 200

    logged_out = await client.post(LOGOUT, json={"refresh_token": new_pair["refresh_token"]})
    assert logged_out.status_code == 204
    assert logged_out.content == b""
    after = await client.post(REFRESH, json={"refresh_token": new_pair["refresh_token"]})
    assert after.status_code == 401
    assert after.headers["content-type"] == PROBLEM
    assert after.json()["code"] == "unauthorized"
    # Signing out again is not an error.
    again = await client.post(LOGOUT, json={"refresh_token": new_pair["refresh_token"]})
    assert again.status_code == 204


async def test_duplicate_email_is_409_case_insensitively(client: httpx.AsyncClient) -> None:
    first = await client.post(
        REGISTER, json={"email": "bob@example.com", "password": "bobs first passphrase"}
    )
    assert first.status_code == 201
    second = await client.post(
        REGISTER, json={"email": "BOB@example.com", "password": "bobs second passphrase"}
    )
    assert second.status_code == 409
    assert second.headers["content-type"] == PROBLEM
    assert second.json()["code"] == "conflict"


async def test_wrong_credentials_are_401(client: httpx.AsyncClient, customer_user: User) -> None:
    for username, password in [
        (customer_user.email, "wrong password"),
        ("nobody@example.com", TEST_PASSWORD),
        ("nul\x00@example.com", TEST_PASSWORD),
    ]:
        response = await client.post(TOKEN_URL, data={"username": username, "password": password})
        assert response.status_code == 401
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["code"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"


async def test_sign_in_form_is_validated(client: httpx.AsyncClient) -> None:
    missing = await client.post(TOKEN_URL, data={"username": "a@example.com"})
    assert missing.status_code == 422
    too_long = await client.post(
        TOKEN_URL, data={"username": "a" * 250 + "@x.io", "password": "password"}
    )
    assert too_long.status_code == 422
    wrong_grant = await client.post(
        TOKEN_URL,
        data={"username": "a@example.com", "password": "password", "grant_type": "client"},
    )
    assert wrong_grant.status_code == 422
    assert wrong_grant.json()["code"] == "validation_error"


async def test_refresh_rotation_refuses_the_spent_token(
    client: httpx.AsyncClient, sign_in: SignIn, customer_user: User
) -> None:
    first = await sign_in(customer_user.email)
    second = (await client.post(REFRESH, json={"refresh_token": first["refresh_token"]})).json()
    spent = await client.post(REFRESH, json={"refresh_token": first["refresh_token"]})
    assert spent.status_code == 401
    assert spent.json()["code"] == "unauthorized"
    assert "already used" in spent.json()["detail"]
    # Reuse of a spent token revoked the family, the legitimate successor included.
    successor = await client.post(REFRESH, json={"refresh_token": second["refresh_token"]})
    assert successor.status_code == 401


async def test_reuse_revokes_only_that_family(
    client: httpx.AsyncClient, sign_in: SignIn, db: Database, customer_user: User
) -> None:
    stolen_session = await sign_in(customer_user.email)
    other_session = await sign_in(customer_user.email)
    rotated = (
        await client.post(REFRESH, json={"refresh_token": stolen_session["refresh_token"]})
    ).json()
    third = (await client.post(REFRESH, json={"refresh_token": rotated["refresh_token"]})).json()

    reused = await client.post(REFRESH, json={"refresh_token": stolen_session["refresh_token"]})
    assert reused.status_code == 401

    async with db.transaction(write=False) as session:
        tokens = (await session.scalars(select(RefreshToken).order_by(RefreshToken.id))).all()
    families = {token.family_id for token in tokens}
    assert len(families) == 2
    revoked_family = {token.family_id for token in tokens if token.revoked_at is not None}
    assert len(revoked_family) == 1
    assert sum(1 for token in tokens if token.revoked_at is not None) == 3
    assert (
        await client.post(REFRESH, json={"refresh_token": third["refresh_token"]})
    ).status_code == 401
    still_good = await client.post(REFRESH, json={"refresh_token": other_session["refresh_token"]})
    assert still_good.status_code == 200


async def test_refresh_tokens_are_stored_only_as_hashes(
    client: httpx.AsyncClient, sign_in: SignIn, db: Database, customer_user: User
) -> None:
    pair = await sign_in(customer_user.email)
    async with db.transaction(write=False) as session:
        stored = (await session.scalars(select(RefreshToken.token_hash))).all()
    assert len(stored) == 1
    assert pair["refresh_token"] not in stored[0]
    assert len(stored[0]) == 64


async def test_expired_and_unknown_refresh_tokens_are_401(
    client: httpx.AsyncClient, sign_in: SignIn, db: Database, customer_user: User
) -> None:
    pair = await sign_in(customer_user.email)
    async with db.transaction() as session:
        token = (await session.scalars(select(RefreshToken))).one()
        token.expires_at = utcnow() - timedelta(seconds=1)
    expired = await client.post(REFRESH, json={"refresh_token": pair["refresh_token"]})
    assert expired.status_code == 401
    assert expired.json()["detail"] == "The refresh token has expired."
    unknown = await client.post(REFRESH, json={"refresh_token": "not-a-token"})
    assert unknown.status_code == 401
    empty = await client.post(REFRESH, json={"refresh_token": ""})
    assert empty.status_code == 422
    huge = await client.post(REFRESH, json={"refresh_token": "x" * 10_000})
    assert huge.status_code == 422


def _forged(settings: Settings, user: User, **overrides: object) -> dict[str, object]:
    """The claims of an access token of `user`, of a sign-in recorded in the database."""
    now = utcnow()
    sid = jwt.decode(access_token_for(settings, user), options={"verify_signature": False})["sid"]
    claims: dict[str, object] = {
        "sid": sid,
        "sub": str(user.id),
        "role": user.role,
        "type": "access",
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=5)).timestamp()),
    }
    claims.update(overrides)
    return claims


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


# Forging an HS512 token with the service's (HS256-sized) key is the point of the test.
@pytest.mark.filterwarnings("ignore:The HMAC key is")
async def test_bad_access_tokens_are_401_problem_json(
    client: httpx.AsyncClient, settings: Settings, customer_user: User
) -> None:
    key = settings.signing_key
    past = int((utcnow() - timedelta(minutes=1)).timestamp())
    valid = jwt.encode(_forged(settings, customer_user), key, algorithm=JWT_ALGORITHM)
    header, payload, signature = valid.split(".")
    tampered_payload = _b64(_forged(settings, customer_user, sub="1", role="admin"))
    tokens = {
        "expired": jwt.encode(_forged(settings, customer_user, exp=past), key, algorithm="HS256"),
        "tampered payload": f"{header}.{tampered_payload}.{signature}",
        "tampered signature": f"{header}.{payload}.{signature[:-4]}AAAA",
        "wrong algorithm": jwt.encode(_forged(settings, customer_user), key, algorithm="HS512"),
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        "wrong key": jwt.encode(_forged(settings, customer_user), "k" * 40, algorithm="HS256"),
        "not a jwt": "garbage",
        "not an access token": jwt.encode(
            _forged(settings, customer_user, type="refresh"), key, algorithm="HS256"
        ),
    }
    assert (await client.get(ME, headers=auth(valid))).status_code == 200
    for name, token in tokens.items():
        response = await client.get(ME, headers=auth(token))
        assert response.status_code == 401, name
        assert response.headers["content-type"] == PROBLEM, name
        assert response.json()["code"] == "unauthorized", name
    missing = await client.get(ME)
    assert missing.status_code == 401
    assert missing.json()["code"] == "unauthorized"


async def test_deactivated_user_is_refused_on_next_request(
    client: httpx.AsyncClient,
    sign_in: SignIn,
    admin_headers: dict[str, str],
    customer_user: User,
) -> None:
    pair = await sign_in(customer_user.email)
    assert (await client.get(ME, headers=auth(pair["access_token"]))).status_code == 200
    deactivated = await client.patch(
        f"/api/v1/users/{customer_user.id}", json={"is_active": False}, headers=admin_headers
    )
    assert deactivated.status_code == 200
    assert deactivated.json()["is_active"] is False

    refused = await client.get(ME, headers=auth(pair["access_token"]))
    assert refused.status_code == 401
    assert refused.json()["code"] == "unauthorized"
    assert (
        await client.post(REFRESH, json={"refresh_token": pair["refresh_token"]})
    ).status_code == 401
    sign_in_again = await client.post(
        TOKEN_URL, data={"username": customer_user.email, "password": TEST_PASSWORD}
    )
    assert sign_in_again.status_code == 401

    # Reactivation does not bring back the sign-ins that were open before: the deactivation
    # ended them, access tokens included.
    await client.patch(
        f"/api/v1/users/{customer_user.id}", json={"is_active": True}, headers=admin_headers
    )
    assert (
        await client.post(REFRESH, json={"refresh_token": pair["refresh_token"]})
    ).status_code == 401
    assert (await client.get(ME, headers=auth(pair["access_token"]))).status_code == 401


async def test_role_change_applies_on_next_request(
    client: httpx.AsyncClient,
    settings: Settings,
    admin_headers: dict[str, str],
    staff_user: User,
) -> None:
    staff_headers = bearer(settings, staff_user)
    assert (await client.get("/api/v1/users/me", headers=staff_headers)).json()["role"] == "staff"
    promoted = await client.patch(
        f"/api/v1/users/{staff_user.id}", json={"role": "admin"}, headers=admin_headers
    )
    assert promoted.status_code == 200
    # A role change ends the user's sign-ins: the token minted while staff is refused, and
    # a new sign-in carries the admin rights.
    assert (await client.get("/api/v1/users", headers=staff_headers)).status_code == 401
    admin_now = bearer(settings, staff_user)
    assert (await client.get("/api/v1/users", headers=admin_now)).status_code == 200
    await client.patch(
        f"/api/v1/users/{staff_user.id}", json={"role": "customer"}, headers=admin_headers
    )
    assert (await client.get("/api/v1/users", headers=admin_now)).status_code == 401
    demoted = await client.get("/api/v1/users", headers=bearer(settings, staff_user))
    assert demoted.status_code == 403
    assert demoted.json()["code"] == "forbidden"


async def test_outdated_hash_is_upgraded_on_sign_in(
    client: httpx.AsyncClient, db: Database, make_user: UserFactory
) -> None:
    weak = Argon2Hasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)
    old_hash = weak.hash("old-params-password")
    user = await make_user(Role.CUSTOMER, email="legacy@example.com")
    async with db.transaction() as session:
        stored = await session.get(User, user.id)
        assert stored is not None
        stored.password_hash = old_hash

    response = await client.post(
        TOKEN_URL, data={"username": "legacy@example.com", "password": "old-params-password"}
    )
    assert response.status_code == 200
    async with db.transaction(write=False) as session:
        upgraded = await session.get(User, user.id)
        assert upgraded is not None
    assert upgraded.password_hash != old_hash
    assert "m=8192" in old_hash and "m=8192" not in upgraded.password_hash
    assert verify_password("old-params-password", upgraded.password_hash) == (True, None)


async def test_registration_limits_are_422(client: httpx.AsyncClient) -> None:
    local = "a" * 64
    too_long_email = f"{local}@{'b' * 60}.{'c' * 60}.{'d' * 60}.example.com"
    assert len(too_long_email) > 254
    bad_bodies = [
        {"email": too_long_email, "password": "password"},
        {"email": "not-an-email", "password": "password"},
        {"email": "", "password": "password"},
        {"email": "x@example.com", "password": "short"},
        {"email": "x@example.com", "password": "p" * 129},
        {"email": "x@example.com", "password": "password", "full_name": ""},
        {"email": "x@example.com", "password": "password", "full_name": "   "},
        {"email": "x@example.com", "password": "password", "full_name": "n" * 201},
        {"email": "x@example.com", "password": "password", "full_name": "a\x00b"},
        {"email": "x@example.com", "password": "password", "role": "admin"},
        {"email": ["x@example.com"], "password": "password"},
        {"email": "x@example.com", "password": 12345678},
    ]
    for body in bad_bodies:
        response = await client.post(REGISTER, json=body)
        assert response.status_code == 422, body
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["code"] == "validation_error"
    at_limits = await client.post(
        REGISTER,
        json={"email": "x@example.com", "password": "pq" * 64, "full_name": "n" * 200},
    )
    assert at_limits.status_code == 201
    shortest = await client.post(REGISTER, json={"email": "y@example.com", "password": "pq7z!x2m"})
    assert shortest.status_code == 201


async def test_concurrent_refreshes_of_one_token_let_one_through(
    postgres_only: None, client: httpx.AsyncClient, sign_in: SignIn, customer_user: User
) -> None:
    pair = await sign_in(customer_user.email)
    body = {"refresh_token": pair["refresh_token"]}
    responses = await asyncio.gather(*(client.post(REFRESH, json=body) for _ in range(4)))
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200, 401, 401, 401]
    # The losers presented a spent token, so the winner's successor is revoked as well.
    [winner] = [response.json() for response in responses if response.status_code == 200]
    successor = await client.post(REFRESH, json={"refresh_token": winner["refresh_token"]})
    assert successor.status_code == 401
