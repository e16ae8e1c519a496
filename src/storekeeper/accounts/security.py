"""Password hashing (argon2id) and access tokens (JWT, HS256 pinned).

Every access token names its sign-in (`sid`, the id of a `sign_ins` row): whoever loads the
caller checks that sign-in in the database, so a sign-out or a password change ends the
token at once. A token without `sid` (issued before sign-ins were recorded) is refused.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any

import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from storekeeper.config import Settings
from storekeeper.db import utcnow
from storekeeper.errors import Unauthorized

JWT_ALGORITHM = "HS256"
ACCESS_TOKEN_TYPE = "access"

password_hasher = PasswordHash((Argon2Hasher(),))


def hash_password(password: str) -> str:
    return password_hasher.hash(password)


def verify_password(password: str, password_hash: str) -> tuple[bool, str | None]:
    """Whether the password matches, and a re-computed hash when the stored one uses
    outdated parameters (to be saved by the caller)."""
    return password_hasher.verify_and_update(password, password_hash)


@dataclass(frozen=True)
class TokenCaller:
    """Who a verified bearer credential speaks for: the user and the sign-in to check
    (None only for credentials that belong to no sign-in; every access token has one)."""

    user_id: int
    sign_in_id: uuid.UUID | None


def create_access_token(
    settings: Settings, *, user_id: int, role: str, sign_in_id: uuid.UUID
) -> str:
    now = utcnow()
    claims: dict[str, Any] = {
        "sub": str(user_id),
        "sid": str(sign_in_id),
        "role": role,
        "type": ACCESS_TOKEN_TYPE,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=settings.access_token_ttl_seconds)).timestamp()),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, settings.signing_key, algorithm=JWT_ALGORITHM)


def decode_access_token(settings: Settings, token: str) -> TokenCaller:
    """The user and sign-in inside a valid access token. Only HS256 is accepted: `alg: none`
    and every other algorithm are refused. Whether the sign-in is still live is the
    database's to say (`accounts.service.get_signed_in_user`, the one-statement hold)."""
    caller, expires_at = _verified_access_token(settings.signing_key, token)
    if expires_at <= time.time():
        raise Unauthorized("The access token has expired.")
    return caller


# Checking a token's signature and claims costs more CPU than the rest of a small request,
# and a client sends the same token with every request until it expires. A process keeps
# the outcome for the tokens it verified last: a pure function of the signing key and the
# token, so nothing depends on it but speed. Expiry is checked again on every use; refused
# tokens are not kept (the cache does not keep what raises).
@lru_cache(maxsize=4096)
def _verified_access_token(signing_key: str, token: str) -> tuple[TokenCaller, int]:
    """(caller, expiry as a Unix time) of a token whose signature and claims are valid."""
    try:
        claims = jwt.decode(
            token,
            signing_key,
            algorithms=[JWT_ALGORITHM],
            options={"require": ["exp", "iat", "sub", "type", "sid"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("The access token has expired.") from None
    except jwt.PyJWTError:
        raise Unauthorized("The access token is not valid.") from None
    if claims.get("type") != ACCESS_TOKEN_TYPE:
        raise Unauthorized("The access token is not valid.")
    try:
        caller = TokenCaller(int(claims["sub"]), uuid.UUID(str(claims["sid"])))
        return caller, int(claims["exp"])
    except (TypeError, ValueError):
        raise Unauthorized("The access token is not valid.") from None
