"""API keys: creating, listing and revoking them, and finding the caller behind one.

A key is `sk_` and 43 random URL-safe characters; only its SHA-256 is stored. Each key acts
through an account of its own, made with it (role `staff`, a random password nobody knows,
an address under the reserved `.invalid` domain), so every rule that records or checks an
actor — ledger rows, reservations, orders, the one-statement hold's SQL check — treats a
key as the principal it is, and revoking the key deactivates that account in the same
transaction. What a key may reach is narrowed by its scopes (`accounts.scopes`, checked by
`accounts.dependencies`).

`last_used_at` is kept to the minute: reading a key never writes, and `touch` (a separate
short unit, only when the stored time is a minute old) updates it conditionally, so a busy
key costs one write a minute across every process.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper.accounts.api_key_schemas import ApiKeyCreate
from storekeeper.accounts.models import ApiKey, Role, User
from storekeeper.accounts.security import hash_password
from storekeeper.db import after_commit, utcnow
from storekeeper.errors import NotFound, Unauthorized
from storekeeper.pagination import decode_id_cursor, page_of

audit = structlog.get_logger("storekeeper.audit")

KEY_PREFIX = "sk_"
PREFIX_LENGTH = 10
# How stale `last_used_at` may get before a use writes it again.
LAST_USED_PRECISION = timedelta(minutes=1)
SERVICE_EMAIL_DOMAIN = "api-keys.invalid"


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_digest(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def looks_like_key(token: str) -> bool:
    return token.startswith(KEY_PREFIX)


@dataclass(frozen=True)
class CreatedKey:
    key: ApiKey
    raw_key: str


@dataclass(frozen=True)
class KeyPage:
    rows: list[ApiKey]
    next_cursor: str | None


@dataclass(frozen=True)
class KeyCaller:
    """A valid key and the account it acts through."""

    key: ApiKey
    user: User

    @property
    def needs_touch(self) -> bool:
        last = self.key.last_used_at
        return last is None or utcnow() - last >= LAST_USED_PRECISION


async def create_api_key(
    session: AsyncSession, data: ApiKeyCreate, *, created_by: int | None
) -> CreatedKey:
    """A new key and its account; the raw key is in the result only."""
    now = utcnow()
    raw_key = new_key()
    account = User(
        email=f"key-{uuid.uuid4().hex}@{SERVICE_EMAIL_DOMAIN}",
        password_hash=hash_password(secrets.token_urlsafe(32)),
        full_name=f"API key: {data.name}",
        role=Role.STAFF.value,
        is_active=True,
    )
    session.add(account)
    await session.flush()
    key = ApiKey(
        user_id=account.id,
        name=data.name,
        prefix=raw_key[:PREFIX_LENGTH],
        key_digest=key_digest(raw_key),
        scopes=list(data.scopes),
        rate_limit_per_minute=data.rate_limit_per_minute,
        created_by=created_by,
        created_at=now,
        expires_at=data.expires_at,
    )
    session.add(key)
    await session.flush()
    key_id, scopes = key.id, list(key.scopes)
    after_commit(
        session,
        lambda: audit.info(
            "api_key_created", actor_id=created_by, api_key_id=key_id, scopes=scopes
        ),
    )
    return CreatedKey(key, raw_key)


_LIVE = ApiKey.revoked_at.is_(None)


async def list_api_keys(session: AsyncSession, *, limit: int, cursor: str | None) -> KeyPage:
    """Keys not revoked, in id order."""
    query = select(ApiKey).where(_LIVE)
    after = decode_id_cursor(cursor)
    if after is not None:
        query = query.where(ApiKey.id > after)
    rows = (await session.scalars(query.order_by(ApiKey.id).limit(limit + 1))).all()
    items, next_cursor = page_of(rows, limit, lambda row: [row.id])
    return KeyPage(list(items), next_cursor)


async def get_api_key(session: AsyncSession, key_id: int) -> ApiKey:
    key = await session.scalar(select(ApiKey).where(ApiKey.id == key_id, _LIVE))
    if key is None:
        raise NotFound(f"No API key with id {key_id}.")
    return key


async def revoke_api_key(session: AsyncSession, key_id: int, *, actor_id: int | None) -> None:
    """Revoke a key at once: its next use is 401, and its account is deactivated in the same
    transaction (the one-statement hold checks the account). A revoked key is NotFound."""
    now = utcnow()
    user_id = await session.scalar(
        update(ApiKey)
        .where(ApiKey.id == key_id, _LIVE)
        .values(revoked_at=now)
        .returning(ApiKey.user_id)
    )
    if user_id is None:
        raise NotFound(f"No API key with id {key_id}.")
    await session.execute(
        update(User).where(User.id == user_id).values(is_active=False, updated_at=now)
    )
    after_commit(
        session, lambda: audit.info("api_key_revoked", actor_id=actor_id, api_key_id=key_id)
    )


async def caller_of_key(session: AsyncSession, raw_key: str) -> KeyCaller:
    """The key `raw_key` and its account, when the key is live (not revoked or expired)
    and its account active; Unauthorized otherwise. Reads only."""
    row = (
        await session.execute(
            select(ApiKey, User)
            .join(User, User.id == ApiKey.user_id)
            .where(ApiKey.key_digest == key_digest(raw_key))
        )
    ).one_or_none()
    if row is None:
        raise Unauthorized("The API key is not valid.")
    key, user = row
    now = utcnow()
    if key.revoked_at is not None or not user.is_active:
        raise Unauthorized("The API key has been revoked.")
    if key.expires_at is not None and key.expires_at <= now:
        raise Unauthorized("The API key has expired.")
    return KeyCaller(key, user)


async def touch(session: AsyncSession, key_id: int) -> None:
    """Record a use, unless one within the last minute is recorded already (by any
    process)."""
    now = utcnow()
    await session.execute(
        update(ApiKey)
        .where(
            ApiKey.id == key_id,
            or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at <= now - LAST_USED_PRECISION),
        )
        .values(last_used_at=now)
    )
