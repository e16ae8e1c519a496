"""Checking the credentials typed into the staff sign-in form.

The same rules as the API's sign-in: accounts' email lookup, the shared failed-sign-in
throttle, and an unknown email costing one password hash like a wrong password, so the form
tells nothing about which accounts exist. A customer with the right password is told
plainly that these pages are for staff.
"""

from __future__ import annotations

import asyncio
import secrets
from functools import cache

from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper.accounts.dependencies import is_staff
from storekeeper.accounts.models import User
from storekeeper.accounts.security import hash_password, verify_password
from storekeeper.accounts.service import find_user_by_email
from storekeeper.accounts.throttle import LoginThrottle

MAX_EMAIL_LENGTH = 254
MAX_PASSWORD_LENGTH = 128
WRONG_CREDENTIALS = "The email or password is not right."
NOT_STAFF = "This sign-in is for staff. Your account is a customer account; use the shop instead."


class SignInRefused(Exception):
    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


@cache
def _decoy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


async def authenticate_staff(
    session: AsyncSession,
    throttle: LoginThrottle,
    *,
    client_address: str,
    email: str,
    password: str,
) -> User:
    """The active staff or admin user with these credentials, or `SignInRefused`
    (`RateLimited` while the address or the account has too many recent failures).
    A stored hash made with older parameters is replaced (flushed) on success."""
    if len(email) > MAX_EMAIL_LENGTH or len(password) > MAX_PASSWORD_LENGTH:
        raise SignInRefused(WRONG_CREDENTIALS)
    await throttle.check(client_address, email)
    user = await find_user_by_email(session, email)
    stored_hash = user.password_hash if user is not None else _decoy_hash()
    # Hashing is deliberately slow: off the event loop, so other requests keep flowing.
    matches, upgraded_hash = await asyncio.to_thread(verify_password, password, stored_hash)
    if user is None or not matches:
        await throttle.record_failure(client_address, email)
        raise SignInRefused(WRONG_CREDENTIALS)
    if not user.is_active:
        raise SignInRefused(WRONG_CREDENTIALS)
    if not is_staff(user):
        raise SignInRefused(NOT_STAFF)
    if upgraded_hash is not None:
        user.password_hash = upgraded_hash
        await session.flush()
    return user
