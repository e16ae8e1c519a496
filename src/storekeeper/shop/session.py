"""Who is signed in to the shop, and the CSRF check of every form it posts.

A customer's session is a `sign_ins` row of kind `web`, like a staff member's, carried by
cookies of the shop's own (`SHOP_COOKIES`: path /shop, token type `shop_session`). The
account is re-read with the check that its sign-in is live on every request that needs it
(`load_caller`, as the API and the staff pages do), so signing out ends every copy of the
cookie at once. Pages anyone may see (the catalog) read the session only when the cookie
is there, so browsing costs no sign-in lookup.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import Depends, Request
from starlette.datastructures import FormData

from storekeeper.accounts.dependencies import load_caller
from storekeeper.accounts.models import Role, User
from storekeeper.accounts.security import TokenCaller
from storekeeper.db import get_database
from storekeeper.errors import Forbidden, Unauthorized
from storekeeper.observability import audit_logger
from storekeeper.web.security import CSRF_FIELD, CookieSet, csrf_token_is_valid, read_session
from storekeeper.web.templating import settings_of

audit = audit_logger()

SHOP_PATH = "/shop"
SIGN_IN_PATH = "/shop/sign-in"
SHOP_COOKIES = CookieSet(
    session="storekeeper_shop_session",
    nonce="storekeeper_shop_nonce",
    flash="storekeeper_shop_flash",
    path=SHOP_PATH,
    session_type="shop_session",
)


class CustomerSignInRequired(Exception):
    """Sends the browser to the shop's sign-in page (and back to `next_path` afterwards)."""

    def __init__(self, next_path: str | None = None, message: str | None = None) -> None:
        self.next_path = next_path
        self.message = message
        super().__init__(message or "sign-in required")

    def location(self) -> str:
        if self.next_path and is_safe_next(self.next_path):
            return f"{SIGN_IN_PATH}?{urlencode({'next': self.next_path})}"
        return SIGN_IN_PATH


class ShopCsrfRejected(Forbidden):
    default_detail = (
        "This form could not be accepted: it has expired or did not come from this shop. "
        "Go back, reload the page and try again."
    )


def is_safe_next(path: str) -> bool:
    """Only paths inside the shop: never another site (`//evil`, `https://…`)."""
    return (
        (path == SHOP_PATH or path.startswith(SHOP_PATH + "/") or path.startswith("/shop?"))
        and not path.startswith("//")
        and "\\" not in path
        and path.isprintable()
    )


def _here(request: Request) -> str | None:
    """Where to come back to after signing in: this page, for a GET."""
    if request.method != "GET":
        return None
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


async def _signed_in(request: Request) -> User | None:
    """The customer of the request's session cookie; None without a cookie, and
    `CustomerSignInRequired` for a cookie whose session has ended."""
    cached: User | None = getattr(request.state, "user", None)
    if cached is not None:
        return cached
    settings = settings_of(request)
    web_session = read_session(
        settings, request.cookies.get(SHOP_COOKIES.session), SHOP_COOKIES.session_type
    )
    if web_session is None:
        return None
    try:
        user = await load_caller(
            get_database(request), TokenCaller(web_session.user_id, web_session.sign_in_id)
        )
    except Unauthorized:
        # Signed out, expired, ended by a password change, or the account is deactivated.
        raise CustomerSignInRequired(
            _here(request), message="Your session has ended. Sign in again."
        ) from None
    request.state.web_session = web_session
    request.state.user = user
    return user


async def get_optional_customer(request: Request) -> User | None:
    return await _signed_in(request)


async def get_customer(request: Request) -> User:
    user = await _signed_in(request)
    if user is None:
        raise CustomerSignInRequired(_here(request))
    if user.role != Role.CUSTOMER.value:
        # Staff orders would list every customer's: the shop is for customer accounts.
        raise Forbidden("The shop is for customer accounts; staff use the pages at /admin.")
    return user


OptionalCustomer = Annotated[User | None, Depends(get_optional_customer)]
Customer = Annotated[User, Depends(get_customer)]


async def _verified_form(request: Request, binding: str | None) -> FormData:
    form = await request.form()
    if not csrf_token_is_valid(settings_of(request), binding, form.get(CSRF_FIELD)):
        user = getattr(request.state, "user", None)
        audit.warning(
            "csrf_refused",
            actor_id=user.id if user is not None else None,
            address=request.client.host if request.client else None,
            method=request.method,
            path=request.url.path,
        )
        raise ShopCsrfRejected()
    return form


async def get_customer_form(request: Request, _user: Customer) -> FormData:
    """The posted form of a signed-in customer, once its CSRF token checks out."""
    return await _verified_form(request, request.state.web_session.session_id)


async def get_visitor_form(request: Request) -> FormData:
    """A form posted before signing in (sign-in, register): bound to the nonce cookie."""
    return await _verified_form(request, request.cookies.get(SHOP_COOKIES.nonce))


CustomerForm = Annotated[FormData, Depends(get_customer_form)]
VisitorForm = Annotated[FormData, Depends(get_visitor_form)]
