"""Customers registering, signing in and out of the shop.

The credentials are checked by accounts' `authenticate` (the API's and the staff pages'
check: the failed-sign-in throttle, an unknown email costing a hash like a wrong password)
and accounts are made by `create_user` (the API's registration: the password policy, one
account per email). What is the shop's own: a refusal reads the same whatever was wrong,
staff are sent to /admin, and a sign-in is recorded as a web sign-in in the same unit.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper.accounts.models import Role, SignInKind, User
from storekeeper.accounts.service import (
    CredentialsRefused,
    authenticate,
    create_user,
    end_sign_in,
    start_sign_in,
)
from storekeeper.accounts.throttle import LoginThrottle
from storekeeper.web.security import SESSION_TTL, WebSession

WRONG_CREDENTIALS = "The email or password is not right."
NOT_CUSTOMER = "This sign-in is for customers. Staff accounts sign in at /admin."


class ShopSignInRefused(Exception):
    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


@dataclass(frozen=True)
class CustomerSignIn:
    user: User
    sign_in_id: uuid.UUID


async def sign_in_customer(
    session: AsyncSession,
    throttle: LoginThrottle,
    *,
    client_address: str,
    email: str,
    password: str,
) -> CustomerSignIn:
    """The customer with these credentials and the web sign-in their cookie carries, or
    `ShopSignInRefused` with the form's message."""
    try:
        user = await authenticate(
            session, throttle, client_address=client_address, email=email, password=password
        )
    except CredentialsRefused:
        raise ShopSignInRefused(WRONG_CREDENTIALS) from None
    if user.role != Role.CUSTOMER.value:
        raise ShopSignInRefused(NOT_CUSTOMER)
    sign_in_id = await start_sign_in(session, user.id, SignInKind.WEB, SESSION_TTL)
    return CustomerSignIn(user, sign_in_id)


async def register_customer(
    session: AsyncSession, *, email: str, password: str, full_name: str | None
) -> CustomerSignIn:
    """A new customer account (`create_user`, as `POST /auth/register`), signed in."""
    user = await create_user(session, email=email, password=password, full_name=full_name)
    sign_in_id = await start_sign_in(session, user.id, SignInKind.WEB, SESSION_TTL)
    return CustomerSignIn(user, sign_in_id)


async def end_customer_session(session: AsyncSession, web_session: WebSession) -> None:
    await end_sign_in(session, web_session.user_id, web_session.sign_in_id, reason="sign_out")
