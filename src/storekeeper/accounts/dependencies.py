"""FastAPI dependencies for the caller's identity and role.

The user is re-read on every request (in a short read-only unit of work of its own), so
deactivation or a role change takes effect on the caller's next request, not when their
token expires. The role rules themselves live in `storekeeper.accounts.policy`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from storekeeper.accounts import service
from storekeeper.accounts.models import Role, User
from storekeeper.accounts.policy import require_role
from storekeeper.accounts.security import decode_access_token
from storekeeper.config import Settings, StockPolicy
from storekeeper.db import Database, UnitOfWork, get_database
from storekeeper.errors import Unauthorized

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def load_caller(db: Database, user_id: int) -> User:
    """The active account `user_id`, read in a short read-only unit of work of its own."""
    return await UnitOfWork(db, write=False).run(service.get_active_user, user_id)


async def get_optional_user(
    request: Request,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> User | None:
    if not token:
        return None
    user_id = decode_access_token(get_settings(request), token)
    return await load_caller(get_database(request), user_id)


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
    checked; the account itself is not read here (the service reads it inside its unit of
    work, or the one-statement hold checks it in its SQL)."""
    if not token:
        raise Unauthorized()
    return decode_access_token(get_settings(request), token)


def require_roles(*roles: Role) -> Callable[[User], Awaitable[User]]:
    allowed = frozenset(role.value for role in roles)

    async def _dependency(user: Annotated[User, Depends(get_current_user)]) -> User:
        return require_role(user, allowed)

    return _dependency


OptionalUser = Annotated[User | None, Depends(get_optional_user)]
CurrentUser = Annotated[User, Depends(get_current_user)]
AccessTokenSubject = Annotated[int, Depends(get_access_token_subject)]
StaffUser = Annotated[User, Depends(require_roles(Role.ADMIN, Role.STAFF))]
AdminUser = Annotated[User, Depends(require_roles(Role.ADMIN))]


async def _settings_dependency(request: Request) -> Settings:
    # A coroutine so that FastAPI calls it on the event loop, not in its thread pool.
    return get_settings(request)


async def _stock_policy_dependency(request: Request) -> StockPolicy:
    return get_settings(request).stock_policy


SettingsDep = Annotated[Settings, Depends(_settings_dependency)]
# How stock claims lock their rows, built from the settings once per process.
StockPolicyDep = Annotated[StockPolicy, Depends(_stock_policy_dependency)]
