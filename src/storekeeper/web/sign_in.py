"""Checking the credentials typed into the staff sign-in form.

The credentials themselves are checked by accounts' `authenticate`, the same check as the
API's sign-in (length limits, the shared failed-sign-in throttle, an unknown email costing
one password hash like a wrong password, the hash upgrade). What is the page's own: every
refusal reads the same on the form, so it tells nothing about which accounts exist, and a
customer with the right password is told plainly that these pages are for staff.

A successful sign-in is recorded as a web sign-in (`accounts.service.start_sign_in`) in the
same unit of work; signing out ends it (`end_staff_session`) for every copy of its cookie.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper.accounts.models import SignInKind, User
from storekeeper.accounts.policy import is_staff
from storekeeper.accounts.service import (
    CredentialsRefused,
    authenticate,
    end_sign_in,
    start_sign_in,
)
from storekeeper.accounts.throttle import LoginThrottle
from storekeeper.web.security import SESSION_TTL, WebSession

WRONG_CREDENTIALS = "The email or password is not right."
NOT_STAFF = "This sign-in is for staff. Your account is a customer account; use the shop instead."


class SignInRefused(Exception):
    """A refused sign-in, with the message the form shows."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


async def authenticate_staff(
    session: AsyncSession,
    throttle: LoginThrottle,
    *,
    client_address: str,
    email: str,
    password: str,
) -> User:
    """The active staff or admin user with these credentials, or `SignInRefused` with the
    form's message (`RateLimited` while the address or the account has too many recent
    failures). A customer is refused inside the unit of work, so nothing of theirs changes.
    """
    try:
        user = await authenticate(
            session, throttle, client_address=client_address, email=email, password=password
        )
    except CredentialsRefused:
        raise SignInRefused(WRONG_CREDENTIALS) from None
    if not is_staff(user):
        raise SignInRefused(NOT_STAFF)
    return user


@dataclass(frozen=True)
class StaffSignIn:
    """A signed-in staff member and the web sign-in their cookie is to carry."""

    user: User
    sign_in_id: uuid.UUID


async def sign_in_staff(
    session: AsyncSession,
    throttle: LoginThrottle,
    *,
    client_address: str,
    email: str,
    password: str,
) -> StaffSignIn:
    """`authenticate_staff`, and the web sign-in it starts, recorded in the same unit."""
    user = await authenticate_staff(
        session, throttle, client_address=client_address, email=email, password=password
    )
    sign_in_id = await start_sign_in(session, user.id, SignInKind.WEB, SESSION_TTL)
    return StaffSignIn(user, sign_in_id)


async def end_staff_session(session: AsyncSession, web_session: WebSession) -> None:
    """Sign out: the session ends for every copy of its cookie."""
    await end_sign_in(session, web_session.user_id, web_session.sign_in_id, reason="sign_out")
