"""API key pages (admins only, as the API): the live keys with a Revoke button each, and a
form that creates one (name, scopes, optional expiry and requests per minute).

Every change is the API's own service call in `storekeeper.accounts.api_keys`, with the
API's own input model (`ApiKeyCreate`), so the pages refuse exactly what the API refuses.
A new key is shown once, in the answer to the form that created it: it is never put in a
redirect, a cookie or a page that can be opened again (only its digest is stored).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from storekeeper.accounts import api_keys
from storekeeper.accounts.api_key_schemas import ApiKeyCreate
from storekeeper.accounts.schemas import ApiKeyIdPath
from storekeeper.accounts.scopes import SCOPE_DESCRIPTIONS
from storekeeper.db import UnitOfWork, UnitOfWorkDep
from storekeeper.errors import ValidationFailed
from storekeeper.pagination import CursorQuery
from storekeeper.web.dependencies import AdminUser, StaffForm
from storekeeper.web.forms import (
    FormInvalid,
    Refusal,
    attempt,
    build,
    checked,
    errors_by_field,
    form_refusal,
    integer,
    refusal_errors,
    text,
)
from storekeeper.web.routing import WebRoute, see_other
from storekeeper.web.security import set_flash
from storekeeper.web.templating import render, settings_of

router = APIRouter(route_class=WebRoute)

API_KEYS_PATH = "/admin/api-keys"
PAGE_SIZE = 50
CREATE_FIELDS = ("name", "scopes", "expires_at", "rate_limit_per_minute")
# Where a Revoke button's refusal is shown: above the list, not on the create form.
REVOKE_ERROR = "revoke"
NO_SCOPES = "Choose at least one scope."
BAD_EXPIRY = "Enter a date and time such as 2027-01-31 17:00, or nothing for no expiry."


def _expiry(raw: str) -> datetime | None:
    """The date-time field (`2027-01-31T17:00`, as a browser sends it) read as UTC, the time
    every page shows; whether it is in the future is `ApiKeyCreate`'s to say."""
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise FormInvalid({"expires_at": BAD_EXPIRY}) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _create_data(form: FormData, values: dict[str, Any]) -> ApiKeyCreate:
    """The API's input model from the create form, or `FormInvalid` with a message for
    every field refused (the model's own, after what could not be read at all)."""
    errors: dict[str, str] = {}
    expires_at: datetime | None = None
    rate_limit: int | None = None
    data: ApiKeyCreate | None = None
    try:
        expires_at = _expiry(values["expires_at"])
    except FormInvalid as invalid:
        errors.update(invalid.errors)
    try:
        rate_limit = integer(form, "rate_limit_per_minute", "requests per minute", required=False)
    except FormInvalid as invalid:
        errors.update(invalid.errors)
    if not values["scopes"]:
        errors["scopes"] = NO_SCOPES
    try:
        data = build(
            ApiKeyCreate,
            {
                "name": values["name"],
                "scopes": values["scopes"],
                "expires_at": expires_at,
                "rate_limit_per_minute": rate_limit,
            },
        )
    except FormInvalid as invalid:
        for field, message in errors_by_field(invalid.errors, CREATE_FIELDS).items():
            errors.setdefault(field, message)
    if errors or data is None:
        raise FormInvalid(errors)
    return data


# --- the list and the create form --------------------------------------------------------


async def _list_page(
    request: Request,
    uow: UnitOfWork,
    *,
    cursor: str | None = None,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    errors = dict(errors or {})
    try:
        page = await uow.run(api_keys.list_api_keys, limit=PAGE_SIZE, cursor=cursor)
    except ValidationFailed as refused:
        errors.update(refusal_errors(refused))
        page = api_keys.KeyPage([], None)
        status_code = 422
    return render(
        request,
        "api_keys/list.html",
        {
            "section": API_KEYS_PATH,
            "keys": page.rows,
            "cursor": cursor,
            "next_cursor": page.next_cursor,
            "scope_descriptions": SCOPE_DESCRIPTIONS,
            "errors": errors,
            "values": values
            or {"name": "", "scopes": [], "expires_at": "", "rate_limit_per_minute": ""},
        },
        status_code=status_code,
    )


@router.get("/api-keys")
async def api_keys_page(
    request: Request, _admin: AdminUser, uow: UnitOfWorkDep, cursor: CursorQuery = None
) -> Response:
    return await _list_page(request, uow, cursor=cursor)


@router.post("/api-keys")
async def create_api_key(
    request: Request, admin: AdminUser, uow: UnitOfWorkDep, form: StaffForm
) -> Response:
    values = {
        "name": text(form, "name"),
        "scopes": checked(form, "scopes"),
        "expires_at": text(form, "expires_at"),
        "rate_limit_per_minute": text(form, "rate_limit_per_minute"),
    }
    outcome: api_keys.CreatedKey | Refusal
    try:
        data = _create_data(form, values)
    except FormInvalid as invalid:
        outcome = form_refusal(invalid)
    else:
        outcome = await attempt(uow, api_keys.create_api_key, data, created_by=admin.id)
    if isinstance(outcome, Refusal):
        return await _list_page(
            request,
            uow,
            errors=errors_by_field(outcome.errors, CREATE_FIELDS),
            values=values,
            status_code=outcome.status,
        )
    return render(
        request,
        "api_keys/created.html",
        {"section": API_KEYS_PATH, "key": outcome.key, "raw_key": outcome.raw_key},
        status_code=201,
    )


# --- revoking ----------------------------------------------------------------------------


@router.post("/api-keys/{key_id}/revoke")
async def revoke_api_key(
    request: Request,
    key_id: ApiKeyIdPath,
    admin: AdminUser,
    uow: UnitOfWorkDep,
    _form: StaffForm,
) -> Response:
    outcome = await attempt(uow, api_keys.revoke_api_key, key_id, actor_id=admin.id)
    if isinstance(outcome, Refusal):
        # Why the button did nothing (404 when the key is revoked already), over the list.
        errors = {REVOKE_ERROR: next(iter(outcome.errors.values()))}
        return await _list_page(request, uow, errors=errors, status_code=outcome.status)
    response = see_other(API_KEYS_PATH)
    set_flash(
        response,
        settings_of(request),
        f"API key {key_id} revoked: it is refused from its next use on.",
    )
    return response
