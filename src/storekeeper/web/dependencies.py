"""Who is signed in to the staff pages, and the CSRF check of every form they post.

The user named by the session cookie is re-read from the database on every request, in its
own short read-only unit of work and in the same statement as the check that the session
(a `sign_ins` row) is live (`load_caller`, as the API re-reads its callers), so a sign-out,
a password change, a deactivation or a role change takes effect on the next click. A form
refused for its CSRF token is recorded in the audit log. Pages run their own units of
work after that (`UnitOfWork.run`), so a refused change rolls back before the form is shown
again.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import Depends, Request
from starlette.datastructures import FormData

from storekeeper.accounts.dependencies import load_caller
from storekeeper.accounts.models import Role, User
from storekeeper.accounts.policy import is_staff, require_role
from storekeeper.accounts.security import TokenCaller
from storekeeper.db import get_database
from storekeeper.errors import Forbidden, Unauthorized
from storekeeper.observability import audit_logger
from storekeeper.web.security import (
    CSRF_FIELD,
    SESSION_COOKIE,
    SIGN_IN_NONCE_COOKIE,
    csrf_token_is_valid,
    read_session,
)
from storekeeper.web.templating import settings_of

audit = audit_logger()

SIGN_IN_PATH = "/admin/sign-in"
ADMIN_ONLY = frozenset({Role.ADMIN.value})
NOT_ADMIN = "This page is for administrators: your role does not allow it."


class SignInRequired(Exception):
    """Sends the browser to the sign-in page, with a message when there is one to give."""

    def __init__(self, next_path: str | None = None, message: str | None = None) -> None:
        self.next_path = next_path
        self.message = message
        super().__init__(message or "sign-in required")

    def location(self) -> str:
        if self.next_path and is_safe_next(self.next_path):
            return f"{SIGN_IN_PATH}?{urlencode({'next': self.next_path})}"
        return SIGN_IN_PATH


class CsrfRejected(Forbidden):
    default_detail = (
        "This form could not be accepted: it has expired or did not come from these pages. "
        "Go back, reload the page and try again."
    )


def is_safe_next(path: str) -> bool:
    """Only paths inside the staff pages: never another site (`//evil`, `https://…`)."""
    return (
        path.startswith("/admin")
        and not path.startswith("//")
        and "\\" not in path
        and path.isprintable()
    )


async def get_staff_user(request: Request) -> User:
    settings = settings_of(request)
    web_session = read_session(settings, request.cookies.get(SESSION_COOKIE))
    next_path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if web_session is None:
        raise SignInRequired(next_path if request.method == "GET" else None)
    caller = TokenCaller(web_session.user_id, web_session.sign_in_id)
    try:
        user = await load_caller(get_database(request), caller)
    except Unauthorized:
        # Signed out, ended by a change of the account, expired, unknown or deactivated.
        raise SignInRequired(
            next_path if request.method == "GET" else None,
            message="Your session has ended. Sign in again.",
        ) from None
    if not is_staff(user):
        raise SignInRequired(message="These pages are for staff; your account cannot use them.")
    request.state.web_session = web_session
    request.state.user = user
    return user


StaffUser = Annotated[User, Depends(get_staff_user)]


async def get_admin_user(user: StaffUser) -> User:
    """A signed-in admin; other staff get the 403 page (as the API answers them 403)."""
    try:
        return require_role(user, ADMIN_ONLY)
    except Forbidden:
        raise Forbidden(NOT_ADMIN) from None


AdminUser = Annotated[User, Depends(get_admin_user)]


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
        raise CsrfRejected()
    return form


async def get_staff_form(request: Request, _user: StaffUser) -> FormData:
    """The posted form of a signed-in staff member, once its CSRF token checks out."""
    return await _verified_form(request, request.state.web_session.session_id)


async def get_sign_in_form(request: Request) -> FormData:
    return await _verified_form(request, request.cookies.get(SIGN_IN_NONCE_COOKIE))


StaffForm = Annotated[FormData, Depends(get_staff_form)]
SignInForm = Annotated[FormData, Depends(get_sign_in_form)]
