"""FastAPI dependencies for the caller's identity and role.

The user is re-read on every request, so deactivation or a role change takes effect on the
caller's next request, not when their token expires.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from storekeeper.accounts.models import Role, User
from storekeeper.accounts.security import decode_access_token
from storekeeper.config import Settings
from storekeeper.db import Database, DatabaseDep, SessionDep
from storekeeper.errors import Forbidden, Unauthorized

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)

STAFF_ROLES = frozenset({Role.ADMIN.value, Role.STAFF.value})


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_optional_user(
    request: Request,
    session: SessionDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> User | None:
    if not token:
        return None
    user_id = decode_access_token(get_settings(request), token)
    user = await session.get(User, user_id)
    if user is None or not user.is_active:
        raise Unauthorized("The account is unknown or deactivated.")
    return user


async def get_current_user(
    user: Annotated[User | None, Depends(get_optional_user)],
) -> User:
    if user is None:
        raise Unauthorized()
    return user


async def get_access_token_subject(
    request: Request,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> int:
    """The user id in the caller's access token, whose signature, type and expiry are
    checked; the account itself is not read here (`load_caller` reads it, or a route's own
    statement checks it, as the one-statement hold does)."""
    if not token:
        raise Unauthorized()
    return decode_access_token(get_settings(request), token)


async def load_caller(db: Database, user_id: int) -> User:
    """The active account `user_id`, read in a short transaction of its own."""
    async with db.transaction(write=False) as session:
        user = await session.get(User, user_id)
    if user is None or not user.is_active:
        raise Unauthorized("The account is unknown or deactivated.")
    return user


async def get_current_user_outside_request_session(
    db: DatabaseDep, user_id: Annotated[int, Depends(get_access_token_subject)]
) -> User:
    """The caller, read in a short transaction of its own.

    For routes that run their work as whole units through `Database.run` (re-run on a
    retryable conflict) instead of the request's session: holding that session open would
    keep, on SQLite, the write lock those units need.
    """
    return await load_caller(db, user_id)


def require_roles(*roles: Role) -> Callable[[User], Awaitable[User]]:
    allowed = frozenset(role.value for role in roles)

    async def _dependency(user: Annotated[User, Depends(get_current_user)]) -> User:
        if user.role not in allowed:
            raise Forbidden("Your role does not allow this.")
        return user

    return _dependency


OptionalUser = Annotated[User | None, Depends(get_optional_user)]
CurrentUser = Annotated[User, Depends(get_current_user)]
# The caller, for routes that use `DatabaseDep` units of work rather than `SessionDep`.
UnitOfWorkUser = Annotated[User, Depends(get_current_user_outside_request_session)]
AccessTokenSubject = Annotated[int, Depends(get_access_token_subject)]
StaffUser = Annotated[User, Depends(require_roles(Role.ADMIN, Role.STAFF))]
AdminUser = Annotated[User, Depends(require_roles(Role.ADMIN))]


async def _settings_dependency(request: Request) -> Settings:
    # A coroutine so that FastAPI calls it on the event loop, not in its thread pool.
    return get_settings(request)


SettingsDep = Annotated[Settings, Depends(_settings_dependency)]


def is_staff(user: User | None) -> bool:
    return user is not None and user.role in STAFF_ROLES
