"""Accounts business logic: sign-up, sign-in, refresh-token rotation, profiles, addresses,
user administration, the bootstrap admin and demo users.

Every function takes the session of the caller's unit of work, flushes and never commits.
`authenticate` is the one check of typed-in credentials (the API's sign-in and the staff
pages' both use it).

Every sign-in is a `sign_ins` row (`SignIn`): an API sign-in (`login`) or a staff web
session (`start_sign_in(kind=WEB)`). Access tokens carry its id as `sid` and web cookies
carry it too; the caller is loaded together with the check that the sign-in is live
(`get_signed_in_user`, one statement), so ending a sign-in ends every token and cookie of it
on their next request. Sign-out ends one; a password change, a deactivation or a role change
ends every other one of the user (`end_sign_ins`).

Refresh tokens are opaque random strings; only their SHA-256 is stored. The tokens of one
API sign-in form a family whose id is the sign-in's; every refresh spends the presented token
(a conditional UPDATE that also asks for a live sign-in, so two concurrent refreshes cannot
both succeed and an ended sign-in cannot be refreshed) and issues its successor in the same
family. Presenting a spent token means it was copied: the whole sign-in is ended.

Audit records (logger `storekeeper.audit`) name the acting principal: failed sign-ins (with
the client address, never the password), sign-outs, sign-ins ended by a change of the
account, and users created or changed by an admin.
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
from sqlalchemy import Select, exists, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper.accounts.models import (
    Address,
    ApiKey,
    RefreshToken,
    Role,
    SignIn,
    SignInKind,
    User,
)
from storekeeper.accounts.passwords import check_password_policy
from storekeeper.accounts.schemas import (
    EMAIL_MAX_LENGTH,
    PASSWORD_MAX_LENGTH,
    PASSWORD_MIN_LENGTH,
    AddressCreate,
    AddressUpdate,
    MeUpdate,
    TokenResponse,
    UserUpdate,
)
from storekeeper.accounts.security import create_access_token, hash_password, verify_password
from storekeeper.accounts.throttle import LoginThrottle
from storekeeper.config import Settings
from storekeeper.db import after_commit, utcnow
from storekeeper.errors import Conflict, NotFound, RateLimited, Unauthorized, ValidationFailed
from storekeeper.observability import audit_logger
from storekeeper.pagination import decode_id_cursor, page_of

log = structlog.get_logger("storekeeper.accounts")
audit = audit_logger()

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


async def get_active_user(session: AsyncSession, user_id: int) -> User:
    """The caller behind a verified token: an account that exists and is active."""
    user = await session.get(User, user_id)
    if user is None or not user.is_active:
        raise Unauthorized("The account is unknown or deactivated.")
    return user


def _sign_in_is_live(sign_in_id: uuid.UUID, now: datetime) -> Any:
    return exists().where(
        SignIn.id == sign_in_id,
        SignIn.user_id == User.id,
        SignIn.ended_at.is_(None),
        SignIn.expires_at > now,
    )


async def get_signed_in_user(
    session: AsyncSession, user_id: int, sign_in_id: uuid.UUID | None
) -> User:
    """The caller behind a verified credential: an active account whose sign-in
    `sign_in_id` has neither ended nor expired, read in one statement. `sign_in_id` None
    (a credential that belongs to no sign-in) checks the account alone; every access token
    and web session has one."""
    statement = select(User).where(User.id == user_id)
    if sign_in_id is not None:
        statement = statement.where(_sign_in_is_live(sign_in_id, utcnow()))
    user = (await session.execute(statement)).scalar_one_or_none()
    if user is None or not user.is_active:
        raise Unauthorized("The sign-in has ended, or the account is unknown or deactivated.")
    return user


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    password: str,
    role: Role = Role.CUSTOMER,
    full_name: str | None = None,
    actor_id: int | None = None,
) -> User:
    """A new user; 409 when the email is taken (compared case-insensitively), 422 when the
    password is too easy to guess (`passwords.check_password_policy`). `actor_id`: the admin
    who creates it (None: the user themselves, or an operator), for the audit record."""
    check_password_policy(password, email, loc=["body", "password"])
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
    if actor_id is not None:
        created_id, role_value = user.id, user.role
        after_commit(
            session,
            lambda: audit.info(
                "user_created_by_admin", actor_id=actor_id, user_id=created_id, role=role_value
            ),
        )
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


async def update_me(
    session: AsyncSession,
    user_id: int,
    changes: MeUpdate,
    current_sign_in_id: uuid.UUID | None = None,
) -> User:
    """The caller's change of their own name or password (a new password needs the current
    one, must pass the password policy and ends every other sign-in of theirs:
    `current_sign_in_id`, the one the change is made in, goes on). The caller is read in
    this unit of work: 401 if they are gone or deactivated by now."""
    user = await get_active_user(session, user_id)
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
        check_password_policy(changes.password, user.email, loc=["body", "password"])
        user.password_hash = await asyncio.to_thread(hash_password, changes.password)
        # A new password ends every other sign-in, API and web alike.
        await end_sign_ins(
            session,
            user.id,
            reason="password_changed",
            actor_id=user.id,
            keep=current_sign_in_id,
        )
        log.info("password_changed", user_id=user.id)
    await session.flush()
    return user


async def update_user(
    session: AsyncSession, user_id: int, changes: UserUpdate, actor_id: int | None = None
) -> User:
    """An admin's (`actor_id`) change of role, active flag or name; effective on the user's
    next request because every request re-reads the user. A deactivation or a role change
    ends every sign-in of the user."""
    user = await get_user(session, user_id)
    new_role = changes.role.value if changes.role is not None else user.role
    new_active = changes.is_active if changes.is_active is not None else user.is_active
    loses_admin = user.role == Role.ADMIN.value and user.is_active
    loses_admin = loses_admin and (new_role != Role.ADMIN.value or not new_active)
    if loses_admin:
        await _ensure_another_active_admin(session, user.id)
    changed: dict[str, Any] = {}
    if "full_name" in changes.model_fields_set and changes.full_name != user.full_name:
        changed["full_name"] = "changed"
        user.full_name = changes.full_name
    if new_role != user.role:
        changed["role"] = [user.role, new_role]
    if new_active != user.is_active:
        changed["is_active"] = [user.is_active, new_active]
    deactivated = user.is_active and not new_active
    role_changed = new_role != user.role
    user.role = new_role
    user.is_active = new_active
    if deactivated or role_changed:
        reason = "deactivated" if deactivated else "role_changed"
        await end_sign_ins(session, user.id, reason=reason, actor_id=actor_id)
    await session.flush()
    log.info("user_updated", user_id=user.id, role=user.role, is_active=user.is_active)
    target_id = user.id
    after_commit(
        session,
        lambda: audit.info("user_changed", actor_id=actor_id, user_id=target_id, changes=changed),
    )
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


async def list_users(
    session: AsyncSession,
    *,
    limit: int,
    cursor: str | None,
    role: Role | None = None,
    is_active: bool | None = None,
    q: str | None = None,
) -> tuple[list[User], str | None]:
    """People in id order, one keyset page (API keys' accounts are listed as keys, not
    here); `q` matches email or name, case-insensitively."""
    statement = (
        select(User)
        .where(~select(ApiKey.id).where(ApiKey.user_id == User.id).exists())
        .order_by(User.id)
        .limit(limit + 1)
    )
    after = decode_id_cursor(cursor)
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


WRONG_CREDENTIALS = "Wrong email or password."


@cache
def _decoy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def _digest(raw_token: str) -> str:
    return hashlib.sha256(raw_token.encode()).hexdigest()


async def start_sign_in(
    session: AsyncSession, user_id: int, kind: SignInKind, ttl: timedelta
) -> uuid.UUID:
    """Record a new sign-in of `user_id`, live for `ttl`; its id."""
    now = utcnow()
    sign_in = SignIn(
        id=uuid.uuid4(),
        user_id=user_id,
        kind=kind.value,
        created_at=now,
        expires_at=now + ttl,
    )
    session.add(sign_in)
    await session.flush()
    return sign_in.id


async def end_sign_in(
    session: AsyncSession, user_id: int, sign_in_id: uuid.UUID, reason: str = "sign_out"
) -> None:
    """End one sign-in of `user_id` (and its refresh tokens): every token and cookie of it
    stops working at once. Ending one that has ended already changes nothing."""
    now = utcnow()
    ended = (
        await session.execute(
            update(SignIn)
            .where(SignIn.id == sign_in_id, SignIn.user_id == user_id, SignIn.ended_at.is_(None))
            .values(ended_at=now, ended_reason=reason)
            .returning(SignIn.kind)
            .execution_options(synchronize_session=False)
        )
    ).scalar_one_or_none()
    await _revoke_family(session, sign_in_id, now)
    if ended is not None:
        after_commit(
            session,
            lambda: audit.info(
                "signed_out",
                actor_id=user_id,
                user_id=user_id,
                sign_in_id=str(sign_in_id),
                kind=ended,
                reason=reason,
            ),
        )


async def end_sign_ins(
    session: AsyncSession,
    user_id: int,
    *,
    reason: str,
    actor_id: int | None,
    keep: uuid.UUID | None = None,
) -> None:
    """End every live sign-in of `user_id` but `keep` (API and web alike, with the refresh
    tokens of the API ones), because of `reason` (password_changed, role_changed,
    deactivated) done by `actor_id`."""
    now = utcnow()
    sign_ins = update(SignIn).where(SignIn.user_id == user_id, SignIn.ended_at.is_(None))
    tokens = update(RefreshToken).where(
        RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None)
    )
    if keep is not None:
        sign_ins = sign_ins.where(SignIn.id != keep)
        tokens = tokens.where(RefreshToken.family_id != keep)
    ended = (
        (
            await session.execute(
                sign_ins.values(ended_at=now, ended_reason=reason)
                .returning(SignIn.id)
                .execution_options(synchronize_session=False)
            )
        )
        .scalars()
        .all()
    )
    await session.execute(
        tokens.values(revoked_at=now).execution_options(synchronize_session=False)
    )
    count = len(ended)
    after_commit(
        session,
        lambda: audit.info(
            "sign_ins_ended",
            actor_id=actor_id,
            user_id=user_id,
            reason=reason,
            sign_ins_ended=count,
            kept_current=keep is not None,
        ),
    )


async def issue_tokens(
    session: AsyncSession,
    settings: Settings,
    user: User,
    family_id: uuid.UUID | None = None,
) -> TokenResponse:
    """A fresh access token and a refresh token of the API sign-in `family_id` (a new
    sign-in if None), which then lasts as long as this refresh token."""
    now = utcnow()
    ttl = timedelta(seconds=settings.refresh_token_ttl_seconds)
    if family_id is None:
        family_id = await start_sign_in(session, user.id, SignInKind.API, ttl)
    else:
        await session.execute(
            update(SignIn)
            .where(SignIn.id == family_id)
            .values(expires_at=now + ttl)
            .execution_options(synchronize_session=False)
        )
    raw_refresh = secrets.token_urlsafe(32)
    session.add(
        RefreshToken(
            user_id=user.id,
            family_id=family_id,
            token_hash=_digest(raw_refresh),
            created_at=now,
            expires_at=now + ttl,
        )
    )
    await session.flush()
    return TokenResponse(
        access_token=create_access_token(
            settings, user_id=user.id, role=user.role, sign_in_id=family_id
        ),
        refresh_token=raw_refresh,
        expires_in=settings.access_token_ttl_seconds,
    )


class CredentialsRefused(Unauthorized):
    """Typed-in credentials that sign no one in (401): a wrong email or password, or the
    right password of a deactivated account."""


async def authenticate(
    session: AsyncSession,
    throttle: LoginThrottle,
    *,
    client_address: str,
    email: str,
    password: str,
) -> User:
    """The active user with these credentials, or `CredentialsRefused` (`RateLimited` while the
    client address or the account has too many recent failed sign-ins).

    Input beyond the contract's lengths is refused like a wrong password. An unknown email
    costs one password hash like a wrong password, so neither the answer nor its timing
    tells which accounts exist; both count as failures for the throttle. A stored hash made
    with older parameters is replaced (flushed) by one made with the current ones.
    """
    if len(email) > EMAIL_MAX_LENGTH or len(password) > PASSWORD_MAX_LENGTH:
        audit.warning("sign_in_failed", address=client_address, user_id=None, reason="too_long")
        raise CredentialsRefused(WRONG_CREDENTIALS)
    try:
        await throttle.check(client_address, email)
    except RateLimited:
        audit.warning("sign_in_failed", address=client_address, user_id=None, reason="throttled")
        raise
    user = await find_user_by_email(session, email)
    stored_hash = user.password_hash if user is not None else _decoy_hash()
    # Hashing is deliberately slow: off the event loop, so other requests keep flowing.
    matches, upgraded_hash = await asyncio.to_thread(verify_password, password, stored_hash)
    if user is None or not matches:
        await throttle.record_failure(client_address, email)
        # The address and the account (when there is one), never the typed-in text.
        audit.warning(
            "sign_in_failed",
            address=client_address,
            user_id=user.id if user is not None else None,
            reason="wrong_credentials",
        )
        raise CredentialsRefused(WRONG_CREDENTIALS)
    if not user.is_active:
        audit.warning(
            "sign_in_failed", address=client_address, user_id=user.id, reason="deactivated"
        )
        raise CredentialsRefused("The account is deactivated.")
    if upgraded_hash is not None:
        user.password_hash = upgraded_hash
        await session.flush()
        user_id = user.id
        after_commit(session, lambda: log.info("password_hash_upgraded", user_id=user_id))
    return user


async def login(
    session: AsyncSession,
    settings: Settings,
    throttle: LoginThrottle,
    *,
    client_address: str,
    username: str,
    password: str,
) -> TokenResponse:
    """Check the credentials (`authenticate`) and start a new token family."""
    user = await authenticate(
        session, throttle, client_address=client_address, email=username, password=password
    )
    return await issue_tokens(session, settings, user)


@dataclass(frozen=True)
class RefreshRefused:
    """Why a refresh token was not accepted (the caller answers 401 with `reason`)."""

    reason: str


async def refresh(
    session: AsyncSession, settings: Settings, raw_token: str
) -> TokenResponse | RefreshRefused:
    """Spend a refresh token for a new pair, or say why not.

    A refusal is returned, not raised: when a spent token comes back, the revocation of its
    family must be committed even though the request is refused, so the caller raises
    `Unauthorized(reason)` once its unit of work has committed.
    """
    now = utcnow()
    token_hash = _digest(raw_token)
    live_sign_ins = select(SignIn.id).where(SignIn.ended_at.is_(None), SignIn.expires_at > now)
    claimed = (
        await session.execute(
            update(RefreshToken)
            .where(
                RefreshToken.token_hash == token_hash,
                RefreshToken.used_at.is_(None),
                RefreshToken.revoked_at.is_(None),
                RefreshToken.expires_at > now,
                RefreshToken.family_id.in_(live_sign_ins),
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
        await _end_family(session, claimed.family_id, now, "deactivated")
        return RefreshRefused("The account is deactivated.")
    return await issue_tokens(session, settings, user, family_id=claimed.family_id)


async def _refusal(session: AsyncSession, token_hash: str, now: datetime) -> RefreshRefused:
    token = (
        await session.execute(select(RefreshToken).where(RefreshToken.token_hash == token_hash))
    ).scalar_one_or_none()
    if token is None:
        return RefreshRefused("The refresh token is not valid.")
    if token.revoked_at is not None:
        return RefreshRefused("The refresh token has been revoked.")
    if token.used_at is not None:
        await _end_family(session, token.family_id, now, "token_reused")
        log.warning("refresh_token_reused", user_id=token.user_id, family_id=str(token.family_id))
        return RefreshRefused("The refresh token was already used; the session has been revoked.")
    if token.expires_at > now:
        # Neither used nor revoked nor expired: its sign-in has ended or expired.
        return RefreshRefused("The sign-in has ended.")
    return RefreshRefused("The refresh token has expired.")


async def _revoke_family(session: AsyncSession, family_id: uuid.UUID, now: datetime) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )


async def _end_family(
    session: AsyncSession, family_id: uuid.UUID, now: datetime, reason: str
) -> None:
    """End the API sign-in `family_id`: its refresh tokens and its access tokens."""
    await session.execute(
        update(SignIn)
        .where(SignIn.id == family_id, SignIn.ended_at.is_(None))
        .values(ended_at=now, ended_reason=reason)
        .execution_options(synchronize_session=False)
    )
    await _revoke_family(session, family_id, now)


async def logout(session: AsyncSession, raw_token: str) -> None:
    """End the sign-in of the presented refresh token: its refresh tokens and its access
    tokens stop working at once. Unknown tokens are ignored: signing out twice is not an
    error."""
    token = (
        await session.execute(
            select(RefreshToken.user_id, RefreshToken.family_id).where(
                RefreshToken.token_hash == _digest(raw_token)
            )
        )
    ).one_or_none()
    if token is None:
        return
    await end_sign_in(session, token.user_id, token.family_id, reason="sign_out")


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
    after = decode_id_cursor(cursor)
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


@dataclass(frozen=True)
class BootstrapAdmin:
    """The admin account STOREKEEPER_BOOTSTRAP_ADMIN_EMAIL/_PASSWORD name (email
    normalised)."""

    email: str
    password: str


def bootstrap_admin_of(settings: Settings) -> BootstrapAdmin | None:
    """The bootstrap admin the settings name, None when they name none; `ValueError` when
    the settings are incomplete or invalid.

    Needs no database: a process configured without a bootstrap admin starts (and answers
    readiness probes with 503) while the database is down, and a bad setting is reported
    before the database is touched.
    """
    raw_email, password = settings.bootstrap_admin_email, settings.bootstrap_admin_password
    if not raw_email and not password:
        return None
    if not raw_email or not password:
        raise ValueError(
            "Set both STOREKEEPER_BOOTSTRAP_ADMIN_EMAIL and STOREKEEPER_BOOTSTRAP_ADMIN_PASSWORD."
        )
    if not PASSWORD_MIN_LENGTH <= len(password) <= PASSWORD_MAX_LENGTH:
        raise ValueError(
            "STOREKEEPER_BOOTSTRAP_ADMIN_PASSWORD must be "
            f"{PASSWORD_MIN_LENGTH}-{PASSWORD_MAX_LENGTH} characters."
        )
    return BootstrapAdmin(normalize_operator_email(raw_email), password)


async def ensure_bootstrap_admin(session: AsyncSession, admin: BootstrapAdmin) -> None:
    """Create the bootstrap admin (`bootstrap_admin_of`) if no account has its email.

    Safe when several processes start together: the insert is `ON CONFLICT DO NOTHING`, so
    the unique email index lets exactly one insert win and the others do nothing (no error
    to recover from). An existing account is never altered (its password may have been
    changed since); one that is not an active admin is logged.
    """
    email = admin.email
    existing = await find_user_by_email(session, email)
    if existing is None:
        password_hash = await asyncio.to_thread(hash_password, admin.password)
        created = await insert_user_if_absent(
            session,
            email=email,
            password_hash=password_hash,
            role=Role.ADMIN,
            full_name="Administrator",
        )
        if created:
            after_commit(session, lambda: log.info("bootstrap_admin_created", email=email))
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
