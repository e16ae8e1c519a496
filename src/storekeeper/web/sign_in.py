"""Checking the credentials typed into the staff sign-in form.

Unknown email, wrong password and deactivated account all get the same answer, and an
unknown email still costs one password hash, so the form tells nothing about which
accounts exist. A customer with the right password is told plainly that these pages are
for staff.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper.accounts.dependencies import is_staff
from storekeeper.accounts.models import User
from storekeeper.accounts.security import hash_password, verify_password

MAX_EMAIL_LENGTH = 254
MAX_PASSWORD_LENGTH = 128
WRONG_CREDENTIALS = "The email or password is not right."
NOT_STAFF = "This sign-in is for staff. Your account is a customer account; use the shop instead."

_UNKNOWN_USER_HASH = hash_password("a password nobody has, checked to keep timing even")


class SignInRefused(Exception):
    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


async def authenticate_staff(session: AsyncSession, email: str, password: str) -> User:
    """The active staff or admin user with these credentials, or `SignInRefused`.
    A stored hash with outdated parameters is replaced (flushed) on success."""
    if len(email) > MAX_EMAIL_LENGTH or len(password) > MAX_PASSWORD_LENGTH:
        raise SignInRefused(WRONG_CREDENTIALS)
    user = await session.scalar(select(User).where(func.lower(User.email) == email.lower()))
    if user is None:
        await asyncio.to_thread(verify_password, password, _UNKNOWN_USER_HASH)
        raise SignInRefused(WRONG_CREDENTIALS)
    # Hashing is deliberately slow: off the event loop, so other requests keep flowing.
    matches, new_hash = await asyncio.to_thread(verify_password, password, user.password_hash)
    if not matches or not user.is_active:
        raise SignInRefused(WRONG_CREDENTIALS)
    if not is_staff(user):
        raise SignInRefused(NOT_STAFF)
    if new_hash is not None:
        user.password_hash = new_hash
        await session.flush()
    return user
