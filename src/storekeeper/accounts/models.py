"""Users, their addresses, their sign-ins and the refresh tokens of API sign-ins."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from storekeeper.db import Base, JSONType, TimestampMixin


class Role(StrEnum):
    ADMIN = "admin"
    STAFF = "staff"
    CUSTOMER = "customer"


class User(TimestampMixin, Base):
    __tablename__ = "users"
    __table_args__ = (
        # Emails are unique case-insensitively; stored as given, compared lower-cased.
        Index("uq_users_email_lower", func.lower(text("email")), unique=True),
        CheckConstraint("role IN ('admin', 'staff', 'customer')", name="role_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    password_hash: Mapped[str] = mapped_column(String(512))
    full_name: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), default=Role.CUSTOMER.value)
    is_active: Mapped[bool] = mapped_column(default=True)


class Address(TimestampMixin, Base):
    __tablename__ = "addresses"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    line1: Mapped[str] = mapped_column(String(200))
    line2: Mapped[str | None] = mapped_column(String(200))
    city: Mapped[str] = mapped_column(String(200))
    postal_code: Mapped[str] = mapped_column(String(20))
    country: Mapped[str] = mapped_column(String(2))


class RefreshToken(Base):
    """One issued refresh token. Only its SHA-256 is stored; tokens of one login share a
    family so that reuse of a spent token can revoke every descendant."""

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    family_id: Mapped[uuid.UUID] = mapped_column(index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()


class ApiKey(Base):
    """A machine client's key. Only its SHA-256 is stored (keys are long random strings,
    so a fast digest is as safe as a slow hash and costs nothing per request); `prefix`
    identifies it to people. Each key acts through an account of its own (`user_id`, role
    `staff`, no password): ledger rows, reservations and orders it makes record that
    account, and what it may do is narrowed by its `scopes` (`accounts.scopes`)."""

    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint(
            "rate_limit_per_minute IS NULL OR rate_limit_per_minute BETWEEN 1 AND 1000000",
            name="rate_limit_in_range",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(10))
    key_digest: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSONType)
    rate_limit_per_minute: Mapped[int | None] = mapped_column()
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime | None] = mapped_column()
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()


class SignInKind(StrEnum):
    API = "api"
    WEB = "web"


class SignIn(Base):
    """One sign-in of a user: an API sign-in (`POST /auth/token`, whose refresh-token family
    has this id and whose access tokens carry it as `sid`) or a staff web session (whose
    cookie carries it). Every request checks that its sign-in exists, belongs to the caller,
    has not ended and has not expired, so ending one (sign-out, a password change, a
    deactivation, a role change) takes effect on the next request, for every copy of its
    tokens or cookie."""

    __tablename__ = "sign_ins"
    __table_args__ = (CheckConstraint("kind IN ('api', 'web')", name="kind_known"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
    # Why it ended: sign_out, password_changed, role_changed, deactivated, token_reused.
    ended_reason: Mapped[str | None] = mapped_column(String(32))
