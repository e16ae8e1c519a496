"""FastAPI dependencies for the caller's identity and role.

The user is re-read on every request (in a short read-only unit of work of its own), in the
same statement as the check that the token's sign-in is live, so a sign-out, a password
change, a deactivation or a role change takes effect on the caller's next request, not when
their token expires. A bearer `sk_…` is an API key: the caller is the key's account, held
to the key's scopes. The role rules themselves live in `storekeeper.accounts.policy`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from storekeeper.accounts import api_keys, service
from storekeeper.accounts.models import Role, User
from storekeeper.accounts.policy import require_role
from storekeeper.accounts.scopes import access_of
from storekeeper.accounts.security import TokenCaller, decode_access_token
from storekeeper.config import Settings, StockPolicy
from storekeeper.db import Database, UnitOfWork, get_database
from storekeeper.errors import Forbidden, Unauthorized
from storekeeper.ratelimit import RequestLimiter

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def load_caller(db: Database, caller: TokenCaller) -> User:
    """The active account of `caller` whose sign-in is live, read in one statement in a
    short read-only unit of work of its own; 401 otherwise."""
    return await UnitOfWork(db, write=False).run(
        service.get_signed_in_user, caller.user_id, caller.sign_in_id
    )


# --- API keys (`accounts.api_keys`): read like a user, then held to the operation: its
# access class and scope (`accounts.scopes`), the key's own rate limit (always enforced,
# through the application's request limiter, shared through Redis when configured), and a
# `last_used_at` refreshed at most once a minute in a short write unit of its own.


def require_key_access(request: Request, key_scopes: list[str]) -> None:
    """Forbidden unless a key with `key_scopes` may reach this request's operation."""
    route: Any = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    access = access_of(request.method, path)
    if access.kind == "closed":
        raise Forbidden(
            "API keys cannot use this operation: it takes "
            + ("an administrator signed in." if access.scope == "admin" else "a person signed in."),
            required_scope=access.scope,
        )
    if access.kind == "scoped" and access.scope not in key_scopes:
        raise Forbidden(
            f"This API key lacks the {access.scope} scope.", required_scope=access.scope
        )


async def key_caller(request: Request, raw_key: str) -> api_keys.KeyCaller:
    """The live key `raw_key` and its account, allowed to make this request; Unauthorized,
    Forbidden or RateLimited otherwise."""
    db = get_database(request)
    caller = await UnitOfWork(db, write=False).run(api_keys.caller_of_key, raw_key)
    require_key_access(request, caller.key.scopes)
    limit = caller.key.rate_limit_per_minute
    if limit is not None:
        await _spend_key_budget(request, caller.key.id, limit)
    if caller.needs_touch:
        await UnitOfWork(db).run(api_keys.touch, caller.key.id)
    return caller


async def _spend_key_budget(request: Request, key_id: int, per_minute: int) -> None:
    """Count the request against the key's own budget (429 `rate_limited` past it)."""
    limiter: RequestLimiter = request.app.state.rate_limiter
    state = await limiter.hit(f"{per_minute}/minute", "api-key", str(key_id))
    if not state.allowed:
        raise state.error(f"This API key may make {per_minute} requests a minute.")


async def get_optional_user(request: Request) -> User | None:
    # The token is read here rather than through `Depends(oauth2_scheme)`: a public read
    # takes a token without requiring one, so it declares no security in OpenAPI.
    token = await oauth2_scheme(request)
    if not token:
        return None
    if api_keys.looks_like_key(token):
        return (await key_caller(request, token)).user
    caller = decode_access_token(get_settings(request), token)
    return await load_caller(get_database(request), caller)


async def get_current_user(
    user: Annotated[User | None, Depends(get_optional_user)],
    _token: Annotated[str | None, Depends(oauth2_scheme)],  # declares the bearer scheme
) -> User:
    if user is None:
        raise Unauthorized()
    return user


async def get_access_token_subject(
    request: Request,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> TokenCaller:
    """The user and sign-in in the caller's access token, whose signature, type and expiry
    are checked; neither the account nor the sign-in is read here (the service checks both
    inside its unit of work, or the one-statement hold checks them in its SQL)."""
    if not token:
        raise Unauthorized()
    if api_keys.looks_like_key(token):
        # A key's account has no sign-in to check; the hold's SQL checks the account.
        return TokenCaller((await key_caller(request, token)).user.id, None)
    return decode_access_token(get_settings(request), token)


def require_roles(*roles: Role) -> Callable[[User], Awaitable[User]]:
    allowed = frozenset(role.value for role in roles)

    async def _dependency(user: Annotated[User, Depends(get_current_user)]) -> User:
        return require_role(user, allowed)

    return _dependency


OptionalUser = Annotated[User | None, Depends(get_optional_user)]
CurrentUser = Annotated[User, Depends(get_current_user)]
AccessTokenSubject = Annotated[TokenCaller, Depends(get_access_token_subject)]
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
