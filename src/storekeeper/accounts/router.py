"""HTTP routes of the accounts domain: sign-up and tokens, the caller's profile and
addresses, user administration and API keys. Each route runs one service function as one
unit of work and shapes its result."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Path, Query, Request, Response, status

from storekeeper.accounts import api_keys, service
from storekeeper.accounts.api_key_schemas import ApiKeyCreate, ApiKeyOut, ApiKeyWithSecret
from storekeeper.accounts.dependencies import (
    AccessTokenSubject,
    AdminUser,
    CurrentUser,
    SettingsDep,
)
from storekeeper.accounts.models import ApiKey, Role
from storekeeper.accounts.schemas import (
    EMAIL_MAX_LENGTH,
    NAME_MAX_LENGTH,
    PASSWORD_MAX_LENGTH,
    AddressCreate,
    AddressOut,
    AddressUpdate,
    ApiKeyIdPath,
    MeUpdate,
    RefreshRequest,
    RegisterRequest,
    TokenResponse,
    UserCreate,
    UserOut,
    UserUpdate,
)
from storekeeper.accounts.throttle import LoginThrottle
from storekeeper.db import UnitOfWorkDep
from storekeeper.errors import (
    Conflict,
    Forbidden,
    NotFound,
    RateLimited,
    Unauthorized,
    ValidationFailed,
    problem_responses,
)
from storekeeper.pagination import DEFAULT_LIMIT, MAX_ID, CursorQuery, LimitQuery, Page

router = APIRouter()

IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]


def _throttle(request: Request) -> LoginThrottle:
    throttle: LoginThrottle = request.app.state.login_throttle
    return throttle


# --- authentication ---------------------------------------------------------------------


@router.post(
    "/auth/register",
    tags=["auth"],
    status_code=status.HTTP_201_CREATED,
    summary="Create a customer account.",
    responses=problem_responses(Conflict, ValidationFailed),
)
async def register(body: RegisterRequest, uow: UnitOfWorkDep) -> UserOut:
    """Anyone may sign up; the account gets the `customer` role. An email already in use is
    409 `conflict`; a common, repetitive or email-like password is 422 `validation_error`.
    Sign in afterwards with `POST /api/v1/auth/token`."""
    user = await uow.run(
        service.create_user, email=body.email, password=body.password, full_name=body.full_name
    )
    return UserOut.model_validate(user)


@router.post(
    "/auth/token",
    tags=["auth"],
    summary="Sign in with email and password (OAuth2 password flow).",
    responses=problem_responses(Unauthorized, ValidationFailed, RateLimited),
)
async def token(
    request: Request,
    uow: UnitOfWorkDep,
    settings: SettingsDep,
    username: Annotated[
        str, Form(min_length=1, max_length=EMAIL_MAX_LENGTH, description="The email.")
    ],
    password: Annotated[
        str, Form(min_length=1, max_length=PASSWORD_MAX_LENGTH, description="The password.")
    ],
    grant_type: Annotated[
        str | None, Form(pattern="^password$", description="`password` when sent.")
    ] = None,
) -> TokenResponse:
    """The OAuth2 password flow: form fields `username` (the email) and `password`. Answers
    an access token (send it as `Authorization: Bearer ...`) and a refresh token. Wrong
    credentials or an inactive account: 401; repeated failures from one address: 429 with
    `Retry-After`."""
    return await uow.run(
        service.login,
        settings,
        _throttle(request),
        client_address=request.client.host if request.client else "unknown",
        username=username,
        password=password,
    )


@router.post(
    "/auth/refresh",
    tags=["auth"],
    summary="Exchange a refresh token for a new pair; the presented one stops working.",
    responses=problem_responses(Unauthorized, ValidationFailed),
)
async def refresh(body: RefreshRequest, uow: UnitOfWorkDep, settings: SettingsDep) -> TokenResponse:
    """Refresh tokens rotate: the answer is a new pair and the presented token stops working.
    Presenting one that was already used revokes its whole sign-in (401)."""
    outcome = await uow.run(service.refresh, settings, body.refresh_token)
    # Raised only now that the unit has committed: a reused token's family stays revoked.
    if isinstance(outcome, service.RefreshRefused):
        raise Unauthorized(outcome.reason)
    return outcome


@router.post(
    "/auth/logout",
    tags=["auth"],
    status_code=status.HTTP_204_NO_CONTENT,
    summary="End the sign-in of a refresh token: its refresh and access tokens stop working.",
    responses=problem_responses(ValidationFailed),
)
async def logout(body: RefreshRequest, uow: UnitOfWorkDep) -> Response:
    """Revoke the sign-in the refresh token belongs to: its refresh and access tokens are
    refused (401) from the next request on. 204 also for an unknown or revoked token."""
    await uow.run(service.logout, body.refresh_token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- the caller -------------------------------------------------------------------------


@router.get(
    "/users/me",
    tags=["users"],
    summary="The signed-in user.",
    responses=problem_responses(Unauthorized),
)
async def read_me(user: CurrentUser) -> UserOut:
    """The account of the access token: email, name, role and active flag."""
    return UserOut.model_validate(user)


@router.patch(
    "/users/me",
    tags=["users"],
    summary="Change your name or password (a new password needs current_password).",
    responses=problem_responses(Unauthorized, ValidationFailed),
)
async def update_me(
    body: MeUpdate, user: CurrentUser, caller: AccessTokenSubject, uow: UnitOfWorkDep
) -> UserOut:
    """Change `full_name`, or `password` together with `current_password` (a wrong one is
    422). A new password ends your other sign-ins; this one goes on."""
    # A new password ends the caller's other sign-ins; this one goes on.
    updated = await uow.run(service.update_me, user.id, body, caller.sign_in_id)
    return UserOut.model_validate(updated)


@router.get(
    "/users/me/addresses",
    tags=["users"],
    summary="Your addresses.",
    responses=problem_responses(Unauthorized, ValidationFailed),
)
async def list_addresses(
    user: CurrentUser,
    uow: UnitOfWorkDep,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Page[AddressOut]:
    """Your saved addresses in id order, page by page."""
    rows, next_cursor = await uow.run(service.list_addresses, user.id, limit=limit, cursor=cursor)
    return Page(items=[AddressOut.model_validate(row) for row in rows], next_cursor=next_cursor)


@router.post(
    "/users/me/addresses",
    tags=["users"],
    status_code=status.HTTP_201_CREATED,
    summary="Add an address.",
    responses=problem_responses(Unauthorized, ValidationFailed),
)
async def create_address(body: AddressCreate, user: CurrentUser, uow: UnitOfWorkDep) -> AddressOut:
    """Save an address (`country` is an ISO 3166-1 alpha-2 code) to ship orders to."""
    return AddressOut.model_validate(await uow.run(service.create_address, user.id, body))


@router.get(
    "/users/me/addresses/{address_id}",
    tags=["users"],
    summary="One of your addresses.",
    responses=problem_responses(Unauthorized, NotFound, ValidationFailed),
)
async def read_address(address_id: IdPath, user: CurrentUser, uow: UnitOfWorkDep) -> AddressOut:
    """One of your addresses; someone else's is 404."""
    return AddressOut.model_validate(await uow.run(service.get_own_address, user.id, address_id))


@router.patch(
    "/users/me/addresses/{address_id}",
    tags=["users"],
    summary="Change one of your addresses.",
    responses=problem_responses(Unauthorized, NotFound, ValidationFailed),
)
async def update_address(
    address_id: IdPath, body: AddressUpdate, user: CurrentUser, uow: UnitOfWorkDep
) -> AddressOut:
    """Change the fields sent; the others stay. Someone else's address is 404."""
    address = await uow.run(service.update_address, user.id, address_id, body)
    return AddressOut.model_validate(address)


@router.delete(
    "/users/me/addresses/{address_id}",
    tags=["users"],
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete one of your addresses.",
    responses=problem_responses(Unauthorized, NotFound, ValidationFailed),
)
async def delete_address(address_id: IdPath, user: CurrentUser, uow: UnitOfWorkDep) -> Response:
    """Delete one of your addresses; orders keep the copy they were placed with."""
    await uow.run(service.delete_address, user.id, address_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- administration ---------------------------------------------------------------------


@router.get(
    "/users",
    tags=["users"],
    summary="All users (admin), filtered by role, active flag or a search in email and name.",
    responses=problem_responses(Unauthorized, Forbidden, ValidationFailed),
)
async def list_users(
    _admin: AdminUser,
    uow: UnitOfWorkDep,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
    role: Role | None = None,
    is_active: bool | None = None,
    q: Annotated[
        str | None,
        Query(max_length=NAME_MAX_LENGTH, pattern=r"^[^\x00]*$", description="Search text."),
    ] = None,
) -> Page[UserOut]:
    """Every account in id order, narrowed by `role`, `is_active` and `q` (words in the
    email or name). Admins only."""
    rows, next_cursor = await uow.run(
        service.list_users, limit=limit, cursor=cursor, role=role, is_active=is_active, q=q
    )
    return Page(items=[UserOut.model_validate(row) for row in rows], next_cursor=next_cursor)


@router.post(
    "/users",
    tags=["users"],
    status_code=status.HTTP_201_CREATED,
    summary="Create a user with any role (admin).",
    responses=problem_responses(Unauthorized, Forbidden, Conflict, ValidationFailed),
)
async def create_user(body: UserCreate, admin: AdminUser, uow: UnitOfWorkDep) -> UserOut:
    """An account with any role (staff and admins are made this way). Admins only; an email
    already in use is 409 `conflict`."""
    user = await uow.run(
        service.create_user,
        email=body.email,
        password=body.password,
        role=body.role,
        full_name=body.full_name,
        actor_id=admin.id,
    )
    return UserOut.model_validate(user)


@router.get(
    "/users/{user_id}",
    tags=["users"],
    summary="One user (admin).",
    responses=problem_responses(Unauthorized, Forbidden, NotFound, ValidationFailed),
)
async def read_user(user_id: IdPath, _admin: AdminUser, uow: UnitOfWorkDep) -> UserOut:
    """One account by id. Admins only."""
    return UserOut.model_validate(await uow.run(service.get_user, user_id))


@router.patch(
    "/users/{user_id}",
    tags=["users"],
    summary="Change a user's role, active flag or name (admin); effective on their next request.",
    responses=problem_responses(Unauthorized, Forbidden, NotFound, Conflict, ValidationFailed),
)
async def update_user(
    user_id: IdPath, body: UserUpdate, admin: AdminUser, uow: UnitOfWorkDep
) -> UserOut:
    """Change `role`, `is_active` or `full_name`. A deactivation or role change ends the
    user's sign-ins at once. Admins only; the last active admin cannot be demoted or
    deactivated (409)."""
    return UserOut.model_validate(await uow.run(service.update_user, user_id, body, admin.id))


# API keys (admin only; never reachable with a key, see `accounts.scopes`).

KEY_ADMIN_ERRORS = (Unauthorized, Forbidden, ValidationFailed)


def _out(key: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=key.id,
        name=key.name,
        scopes=list(key.scopes),
        prefix=key.prefix,
        actor_id=key.user_id,
        created_at=key.created_at,
        expires_at=key.expires_at,
        last_used_at=key.last_used_at,
        rate_limit_per_minute=key.rate_limit_per_minute,
    )


@router.post(
    "/api-keys",
    status_code=status.HTTP_201_CREATED,
    tags=["api-keys"],
    responses=problem_responses(*KEY_ADMIN_ERRORS),
)
async def create_api_key(
    data: ApiKeyCreate, admin: AdminUser, uow: UnitOfWorkDep
) -> ApiKeyWithSecret:
    """A key for a machine client. The `key` is in this answer only: it is stored as a
    digest and cannot be shown again. Clients send it as `Authorization: Bearer sk_...`."""
    created = await uow.run(api_keys.create_api_key, data, created_by=admin.id)
    return ApiKeyWithSecret(**_out(created.key).model_dump(), key=created.raw_key)


@router.get("/api-keys", tags=["api-keys"], responses=problem_responses(*KEY_ADMIN_ERRORS))
async def list_api_keys(
    _admin: AdminUser, uow: UnitOfWorkDep, limit: LimitQuery = 50, cursor: CursorQuery = None
) -> Page[ApiKeyOut]:
    """Keys not revoked, in id order (never the keys themselves)."""
    page = await uow.run(api_keys.list_api_keys, limit=limit, cursor=cursor)
    return Page(items=[_out(key) for key in page.rows], next_cursor=page.next_cursor)


@router.get(
    "/api-keys/{key_id}",
    tags=["api-keys"],
    responses=problem_responses(*KEY_ADMIN_ERRORS, NotFound),
)
async def get_api_key(key_id: ApiKeyIdPath, _admin: AdminUser, uow: UnitOfWorkDep) -> ApiKeyOut:
    """One key not revoked (never the key itself)."""
    return _out(await uow.run(api_keys.get_api_key, key_id))


@router.delete(
    "/api-keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["api-keys"],
    responses=problem_responses(*KEY_ADMIN_ERRORS, NotFound),
)
async def revoke_api_key(key_id: ApiKeyIdPath, admin: AdminUser, uow: UnitOfWorkDep) -> Response:
    """Revoke at once: the key's next use is 401."""
    await uow.run(api_keys.revoke_api_key, key_id, actor_id=admin.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
