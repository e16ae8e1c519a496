"""Password hashing parameters and access-token claims, without a database."""

from __future__ import annotations

import uuid

import jwt
import pytest

from storekeeper.accounts import security
from storekeeper.config import Environment, Settings
from storekeeper.errors import Unauthorized
from tests.accounts.conftest import SERVICE_HASHER


def test_service_hashes_with_argon2id_and_strong_parameters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Undo the fast hasher the other accounts tests use.
    monkeypatch.setattr(security, "password_hasher", SERVICE_HASHER)
    hashed = security.hash_password("a long enough password")
    assert hashed.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert "a long enough password" not in hashed
    assert security.verify_password("a long enough password", hashed) == (True, None)
    assert security.verify_password("another password", hashed) == (False, None)


def test_access_token_round_trip_and_pinned_algorithm() -> None:
    settings = Settings(env=Environment.TEST, _env_file=None)  # type: ignore[call-arg]
    sign_in_id = uuid.uuid4()
    token = security.create_access_token(settings, user_id=42, role="staff", sign_in_id=sign_in_id)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    assert security.decode_access_token(settings, token) == security.TokenCaller(42, sign_in_id)
    with pytest.raises(Unauthorized):
        security.decode_access_token(settings, token + "x")


def test_a_remembered_token_still_expires_and_other_keys_do_not_share_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings(env=Environment.TEST, access_token_ttl_seconds=60, _env_file=None)  # type: ignore[call-arg]
    token = security.create_access_token(settings, user_id=7, role="staff", sign_in_id=uuid.uuid4())
    assert security.decode_access_token(settings, token).user_id == 7
    assert security.decode_access_token(settings, token).user_id == 7
    expires_at = jwt.decode(token, options={"verify_signature": False})["exp"]
    monkeypatch.setattr(security.time, "time", lambda: float(expires_at))
    with pytest.raises(Unauthorized, match="expired"):
        security.decode_access_token(settings, token)
    monkeypatch.undo()
    rotated = Settings(env=Environment.TEST, secret_key="another-key-" + "x" * 40, _env_file=None)  # type: ignore[call-arg]
    with pytest.raises(Unauthorized, match="not valid"):
        security.decode_access_token(rotated, token)
