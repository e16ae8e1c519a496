"""HTTP routes of the accounts domain: sign-up and tokens, the caller's profile and
addresses, and user administration. Each route runs one service function as one unit of
work and shapes its result."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Path, Query, Request, Response, status

from storekeeper.accounts import service
from storekeeper.accounts.dependencies import AdminUser, CurrentUser, SettingsDep
from storekeeper.accounts.models import Role
from storekeeper.accounts.schemas import (
    EMAIL_MAX_LENGTH,
    NAME_MAX_LENGTH,
    PASSWORD_MAX_LENGTH,
    AddressCreate,
    AddressOut,
    AddressUpdate,
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
    password: Annotated[str, Form(min_length=1, max_length=PASSWORD_MAX_LENGTH)],
    grant_type: Annotated[str | None, Form(pattern="^password$")] = None,
) -> TokenResponse:
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
    outcome = await uow.run(service.refresh, settings, body.refresh_token)
    # Raised only now that the unit has committed: a reused token's family stays revoked.
    if isinstance(outcome, service.RefreshRefused):
        raise Unauthorized(outcome.reason)
    return outcome


@router.post(
    "/auth/logout",
    tags=["auth"],
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke a refresh token (and the rest of its session).",
    responses=problem_responses(ValidationFailed),
)
async def logout(body: RefreshRequest, uow: UnitOfWorkDep) -> Response:
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
    return UserOut.model_validate(user)


@router.patch(
    "/users/me",
    tags=["users"],
    summary="Change your name or password (a new password needs current_password).",
    responses=problem_responses(Unauthorized, ValidationFailed),
)
async def update_me(body: MeUpdate, user: CurrentUser, uow: UnitOfWorkDep) -> UserOut:
    return UserOut.model_validate(await uow.run(service.update_me, user.id, body))


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
    return AddressOut.model_validate(await uow.run(service.create_address, user.id, body))


@router.get(
    "/users/me/addresses/{address_id}",
    tags=["users"],
    summary="One of your addresses.",
    responses=problem_responses(Unauthorized, NotFound, ValidationFailed),
)
async def read_address(address_id: IdPath, user: CurrentUser, uow: UnitOfWorkDep) -> AddressOut:
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
async def create_user(body: UserCreate, _admin: AdminUser, uow: UnitOfWorkDep) -> UserOut:
    user = await uow.run(
        service.create_user,
        email=body.email,
        password=body.password,
        role=body.role,
        full_name=body.full_name,
    )
    return UserOut.model_validate(user)


@router.get(
    "/users/{user_id}",
    tags=["users"],
    summary="One user (admin).",
    responses=problem_responses(Unauthorized, Forbidden, NotFound, ValidationFailed),
)
async def read_user(user_id: IdPath, _admin: AdminUser, uow: UnitOfWorkDep) -> UserOut:
    return UserOut.model_validate(await uow.run(service.get_user, user_id))


@router.patch(
    "/users/{user_id}",
    tags=["users"],
    summary="Change a user's role, active flag or name (admin); effective on their next request.",
    responses=problem_responses(Unauthorized, Forbidden, NotFound, Conflict, ValidationFailed),
)
async def update_user(
    user_id: IdPath, body: UserUpdate, _admin: AdminUser, uow: UnitOfWorkDep
) -> UserOut:
    return UserOut.model_validate(await uow.run(service.update_user, user_id, body))
