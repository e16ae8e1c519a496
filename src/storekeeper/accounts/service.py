"""Accounts business logic: sign-up, sign-in, refresh-token rotation, profiles, addresses,
user administration, the bootstrap admin and demo users.

Refresh tokens are opaque random strings; only their SHA-256 is stored. Each sign-in starts
a family; every refresh spends the presented token (a conditional UPDATE, so two concurrent
refreshes cannot both succeed) and issues its successor in the same family. Presenting a
spent token means it was copied: the whole family is revoked.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

import structlog
from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper.accounts.models import Address, RefreshToken, Role, User
from storekeeper.accounts.schemas import (
    EMAIL_MAX_LENGTH,
    AddressCreate,
    AddressUpdate,
    MeUpdate,
    TokenResponse,
    UserUpdate,
)
from storekeeper.accounts.security import create_access_token, hash_password, verify_password
from storekeeper.accounts.throttle import LoginThrottle
from storekeeper.config import Settings
from storekeeper.db import Database, utcnow
from storekeeper.errors import Conflict, NotFound, Unauthorized, ValidationFailed
from storekeeper.pagination import decode_cursor, page_of

log = structlog.get_logger("storekeeper.accounts")

# Integer primary keys are 32-bit on PostgreSQL; larger cursor values are refused early.
MAX_ID = 2**31 - 1

DEMO_USERS: tuple[tuple[str, str, Role, str], ...] = (
    ("admin@storekeeper.local", "admin-password-123", Role.ADMIN, "Demo Admin"),
    ("staff@storekeeper.local", "staff-password-123", Role.STAFF, "Demo Staff"),
    ("customer@storekeeper.local", "customer-password-123", Role.CUSTOMER, "Demo Customer"),
)


# --- users ------------------------------------------------------------------------------


def normalize_operator_email(value: str) -> str:
    """Light syntax check for addresses given by operators (environment, command line).

    Unlike the public API it accepts internal domains such as `.local`, which operators
    use for service and demo accounts.
    """
    email = value.strip()
    local, at, domain = email.rpartition("@")
    if (
        not at
        or not local
        or "." not in domain.strip(".")
        or len(email) > EMAIL_MAX_LENGTH
        or any(ch.isspace() or ch == "\x00" for ch in email)
    ):
        raise ValueError(f"{value!r} is not a valid email address")
    return f"{local}@{domain.lower()}"


def _email_matches(email: str) -> Any:
    return func.lower(User.email) == email.strip().lower()


async def find_user_by_email(session: AsyncSession, email: str) -> User | None:
    if "\x00" in email:
        return None
    result = await session.execute(select(User).where(_email_matches(email)))
    return result.scalar_one_or_none()


async def get_user(session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("No such user.")
    return user


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    password: str,
    role: Role = Role.CUSTOMER,
    full_name: str | None = None,
) -> User:
    """A new user; 409 when the email is taken (compared case-insensitively)."""
    if await find_user_by_email(session, email) is not None:
        raise Conflict("A user with this email already exists.")
    password_hash = await asyncio.to_thread(hash_password, password)
    user = User(email=email, password_hash=password_hash, role=role.value, full_name=full_name)
    session.add(user)
    try:
        await session.flush()
    except IntegrityError:
        # Two sign-ups with the same email raced; the unique index decided.
        raise Conflict("A user with this email already exists.") from None
    log.info("user_created", user_id=user.id, role=user.role)
    return user


async def insert_user_if_absent(
    session: AsyncSession,
    *,
    email: str,
    password_hash: str,
    role: Role,
    full_name: str | None,
) -> bool:
    """Insert a user unless the email exists; whether it was inserted.

    `ON CONFLICT DO NOTHING` lets the unique index settle races between processes doing
    this at the same moment, without an error to recover from.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    now = utcnow()
    statement = (
        insert(User)
        .values(
            email=email,
            password_hash=password_hash,
            role=role.value,
            full_name=full_name,
            is_active=True,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing()
        .returning(User.id)
    )
    inserted = (await session.execute(statement)).scalar_one_or_none()
    return inserted is not None


async def update_me(session: AsyncSession, user: User, changes: MeUpdate) -> User:
    if "full_name" in changes.model_fields_set:
        user.full_name = changes.full_name
    if changes.password is not None:
        matches, _ = await asyncio.to_thread(
            verify_password, changes.current_password or "", user.password_hash
        )
        if not matches:
            raise ValidationFailed.field(
                ["body", "current_password"], "does not match the current password"
            )
        user.password_hash = await asyncio.to_thread(hash_password, changes.password)
        # A new password ends every other signed-in session.
        await _revoke_user_tokens(session, user.id)
        log.info("password_changed", user_id=user.id)
    await session.flush()
    return user


async def update_user(session: AsyncSession, user_id: int, changes: UserUpdate) -> User:
    """An admin's change of role, active flag or name; effective on the user's next request
    because every request re-reads the user."""
    user = await get_user(session, user_id)
    new_role = changes.role.value if changes.role is not None else user.role
    new_active = changes.is_active if changes.is_active is not None else user.is_active
    loses_admin = user.role == Role.ADMIN.value and user.is_active
    loses_admin = loses_admin and (new_role != Role.ADMIN.value or not new_active)
    if loses_admin:
        await _ensure_another_active_admin(session, user.id)
    if "full_name" in changes.model_fields_set:
        user.full_name = changes.full_name
    user.role = new_role
    if user.is_active and not new_active:
        await _revoke_user_tokens(session, user.id)
    user.is_active = new_active
    await session.flush()
    log.info("user_updated", user_id=user.id, role=user.role, is_active=user.is_active)
    return user


async def _ensure_another_active_admin(session: AsyncSession, user_id: int) -> None:
    # Locking every active admin row (in key order) serialises concurrent demotions, so
    # two admins demoting each other cannot leave the service without one.
    admin_ids = (
        await session.scalars(
            select(User.id)
            .where(User.role == Role.ADMIN.value, User.is_active.is_(True))
            .order_by(User.id)
            .with_for_update()
        )
    ).all()
    if not any(admin_id != user_id for admin_id in admin_ids):
        raise Conflict("This is the last active admin; appoint another admin first.")


def _int_cursor(cursor: str | None) -> int | None:
    key = decode_cursor(cursor)
    if key is None:
        return None
    value = key[0]
    if not isinstance(value, int) or not 0 <= value <= MAX_ID:
        raise ValidationFailed.field(["query", "cursor"], "malformed cursor")
    return value


async def list_users(
    session: AsyncSession,
    *,
    limit: int,
    cursor: str | None,
    role: Role | None = None,
    is_active: bool | None = None,
    q: str | None = None,
) -> tuple[list[User], str | None]:
    """Users in id order, one keyset page; `q` matches email or name, case-insensitively."""
    statement = select(User).order_by(User.id).limit(limit + 1)
    after = _int_cursor(cursor)
    if after is not None:
        statement = statement.where(User.id > after)
    if role is not None:
        statement = statement.where(User.role == role.value)
    if is_active is not None:
        statement = statement.where(User.is_active.is_(is_active))
    if q:
        needle = q.lower()
        statement = statement.where(
            or_(
                func.lower(User.email).contains(needle, autoescape=True),
                func.lower(func.coalesce(User.full_name, "")).contains(needle, autoescape=True),
            )
        )
    rows = (await session.scalars(statement)).all()
    return page_of(rows, limit, lambda user: [user.id])


# --- sign-in and tokens -----------------------------------------------------------------


@cache
def _decoy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def _digest(raw_token: str) -> str:
    return hashlib.sha256(raw_token.encode()).hexdigest()


async def issue_tokens(
    session: AsyncSession,
    settings: Settings,
    user: User,
    family_id: uuid.UUID | None = None,
) -> TokenResponse:
    """A fresh access token and a refresh token in `family_id` (a new family if None)."""
    now = utcnow()
    raw_refresh = secrets.token_urlsafe(32)
    session.add(
        RefreshToken(
            user_id=user.id,
            family_id=family_id or uuid.uuid4(),
            token_hash=_digest(raw_refresh),
            created_at=now,
            expires_at=now + timedelta(seconds=settings.refresh_token_ttl_seconds),
        )
    )
    await session.flush()
    return TokenResponse(
        access_token=create_access_token(settings, user_id=user.id, role=user.role),
        refresh_token=raw_refresh,
        expires_in=settings.access_token_ttl_seconds,
    )


async def login(
    session: AsyncSession,
    settings: Settings,
    throttle: LoginThrottle,
    *,
    client_address: str,
    username: str,
    password: str,
) -> TokenResponse:
    """Check the credentials and start a new token family. A stored hash made with older
    parameters is replaced by one made with the current ones."""
    await throttle.check(client_address, username)
    user = await find_user_by_email(session, username)
    # An unknown email costs as much as a wrong password, so timing tells nothing.
    stored_hash = user.password_hash if user is not None else _decoy_hash()
    matches, upgraded_hash = await asyncio.to_thread(verify_password, password, stored_hash)
    if user is None or not matches:
        await throttle.record_failure(client_address, username)
        raise Unauthorized("Wrong email or password.")
    if not user.is_active:
        raise Unauthorized("The account is deactivated.")
    if upgraded_hash is not None:
        user.password_hash = upgraded_hash
        log.info("password_hash_upgraded", user_id=user.id)
    return await issue_tokens(session, settings, user)


@dataclass(frozen=True)
class _Refused:
    reason: str


async def refresh(db: Database, settings: Settings, raw_token: str) -> TokenResponse:
    """Spend a refresh token for a new pair.

    Runs as its own unit of work: when a spent token comes back, the revocation of its
    family must be committed even though the request is refused.
    """
    outcome = await db.run(lambda session: _rotate(session, settings, raw_token))
    if isinstance(outcome, _Refused):
        raise Unauthorized(outcome.reason)
    return outcome


async def _rotate(
    session: AsyncSession, settings: Settings, raw_token: str
) -> TokenResponse | _Refused:
    now = utcnow()
    token_hash = _digest(raw_token)
    claimed = (
        await session.execute(
            update(RefreshToken)
            .where(
                RefreshToken.token_hash == token_hash,
                RefreshToken.used_at.is_(None),
                RefreshToken.revoked_at.is_(None),
                RefreshToken.expires_at > now,
            )
            .values(used_at=now)
            .returning(RefreshToken.user_id, RefreshToken.family_id)
            .execution_options(synchronize_session=False)
        )
    ).one_or_none()
    if claimed is None:
        return await _refusal(session, token_hash, now)
    user = await session.get(User, claimed.user_id)
    if user is None or not user.is_active:
        await _revoke_family(session, claimed.family_id, now)
        return _Refused("The account is deactivated.")
    return await issue_tokens(session, settings, user, family_id=claimed.family_id)


async def _refusal(session: AsyncSession, token_hash: str, now: datetime) -> _Refused:
    token = (
        await session.execute(select(RefreshToken).where(RefreshToken.token_hash == token_hash))
    ).scalar_one_or_none()
    if token is None:
        return _Refused("The refresh token is not valid.")
    if token.revoked_at is not None:
        return _Refused("The refresh token has been revoked.")
    if token.used_at is not None:
        await _revoke_family(session, token.family_id, now)
        log.warning("refresh_token_reused", user_id=token.user_id, family_id=str(token.family_id))
        return _Refused("The refresh token was already used; the session has been revoked.")
    return _Refused("The refresh token has expired.")


async def _revoke_family(session: AsyncSession, family_id: uuid.UUID, now: datetime) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )


async def _revoke_user_tokens(session: AsyncSession, user_id: int) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )


async def logout(session: AsyncSession, raw_token: str) -> None:
    """Revoke the presented token's family. Unknown tokens are ignored: signing out twice is
    not an error."""
    family_of_token = (
        select(RefreshToken.family_id)
        .where(RefreshToken.token_hash == _digest(raw_token))
        .scalar_subquery()
    )
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_of_token, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )


# --- addresses --------------------------------------------------------------------------


def _own_addresses(user_id: int) -> Select[Address]:
    return select(Address).where(Address.user_id == user_id)


async def get_own_address(session: AsyncSession, user_id: int, address_id: int) -> Address:
    """The user's address; another user's address is indistinguishable from a missing one."""
    address = (
        await session.scalars(_own_addresses(user_id).where(Address.id == address_id))
    ).one_or_none()
    if address is None:
        raise NotFound("No such address.")
    return address


async def list_addresses(
    session: AsyncSession, user_id: int, *, limit: int, cursor: str | None
) -> tuple[list[Address], str | None]:
    statement = _own_addresses(user_id).order_by(Address.id).limit(limit + 1)
    after = _int_cursor(cursor)
    if after is not None:
        statement = statement.where(Address.id > after)
    rows: Sequence[Address] = (await session.scalars(statement)).all()
    return page_of(rows, limit, lambda address: [address.id])


async def create_address(session: AsyncSession, user_id: int, data: AddressCreate) -> Address:
    address = Address(user_id=user_id, **data.model_dump())
    session.add(address)
    await session.flush()
    return address


async def update_address(
    session: AsyncSession, user_id: int, address_id: int, changes: AddressUpdate
) -> Address:
    address = await get_own_address(session, user_id, address_id)
    for field, value in changes.model_dump(exclude_unset=True).items():
        setattr(address, field, value)
    await session.flush()
    return address


async def delete_address(session: AsyncSession, user_id: int, address_id: int) -> None:
    address = await get_own_address(session, user_id, address_id)
    await session.delete(address)
    await session.flush()


# --- start-up and seed data -------------------------------------------------------------


async def ensure_bootstrap_admin(db: Database, settings: Settings) -> None:
    """Create the admin named by STOREKEEPER_BOOTSTRAP_ADMIN_EMAIL/_PASSWORD if missing.

    Safe when several processes start together: the unique email index lets exactly one
    insert win. An existing account is never altered (its password may have been changed
    since).
    """
    raw_email, password = settings.bootstrap_admin_email, settings.bootstrap_admin_password
    if not raw_email and not password:
        return
    if not raw_email or not password:
        raise ValueError(
            "Set both STOREKEEPER_BOOTSTRAP_ADMIN_EMAIL and STOREKEEPER_BOOTSTRAP_ADMIN_PASSWORD."
        )
    if not 8 <= len(password) <= 128:
        raise ValueError("STOREKEEPER_BOOTSTRAP_ADMIN_PASSWORD must be 8-128 characters.")
    email = normalize_operator_email(raw_email)
    async with db.transaction(write=False) as session:
        existing = await find_user_by_email(session, email)
    if existing is None:
        password_hash = await asyncio.to_thread(hash_password, password)
        async with db.transaction() as session:
            created = await insert_user_if_absent(
                session,
                email=email,
                password_hash=password_hash,
                role=Role.ADMIN,
                full_name="Administrator",
            )
        if created:
            log.info("bootstrap_admin_created", email=email)
        return
    if existing.role != Role.ADMIN.value or not existing.is_active:
        log.warning(
            "bootstrap_admin_not_admin",
            email=email,
            role=existing.role,
            is_active=existing.is_active,
        )


async def seed_demo_users(session: AsyncSession) -> None:
    """The demo admin, staff member and customer (with an address); idempotent."""
    for email, password, role, full_name in DEMO_USERS:
        if await find_user_by_email(session, email) is not None:
            continue
        password_hash = await asyncio.to_thread(hash_password, password)
        await insert_user_if_absent(
            session, email=email, password_hash=password_hash, role=role, full_name=full_name
        )
    customer = await find_user_by_email(session, DEMO_USERS[2][0])
    if customer is None:
        return
    has_address = (
        await session.scalars(select(Address.id).where(Address.user_id == customer.id).limit(1))
    ).first()
    if has_address is None:
        session.add(
            Address(
                user_id=customer.id,
                name="Demo Customer",
                line1="1 Example Street",
                city="Springfield",
                postal_code="12345",
                country="US",
            )
        )
        await session.flush()
