"""Webhook pages (admins only, as the API): the endpoints with a form that creates one, an
endpoint's page with its buttons (activate or deactivate, ping, rotate the secret, delete)
and its deliveries with a Retry button each.

Every change is the API's own service call in `storekeeper.events.webhooks`, and a URL is
vetted by the API's `webhooks.vet_url` before the unit of work opens (it resolves the host,
which never happens inside a transaction), so the pages refuse exactly what the API refuses.
A signing secret is shown once, in the answer to the form that created or rotated it: it is
never put in a redirect, a cookie or a page that can be opened again.
"""

from __future__ import annotations

from typing import Annotated, Any, get_args

from fastapi import APIRouter, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from storekeeper.db import UnitOfWork, UnitOfWorkDep
from storekeeper.errors import ValidationFailed
from storekeeper.events import webhooks
from storekeeper.events.models import WebhookEndpoint
from storekeeper.events.outbox import EVENT_TYPES
from storekeeper.events.schemas import (
    ALL_EVENTS,
    DeliveryIdPath,
    DeliveryStatusName,
    EndpointIdPath,
    WebhookCreate,
    WebhookUpdate,
)
from storekeeper.pagination import CursorQuery
from storekeeper.web.dependencies import AdminUser, StaffForm
from storekeeper.web.forms import (
    FORM_ERROR,
    FormInvalid,
    Refusal,
    attempt,
    build,
    checked,
    errors_by_field,
    form_refusal,
    optional_text,
    refusal_errors,
    text,
)
from storekeeper.web.routing import WebRoute, see_other
from storekeeper.web.security import set_flash
from storekeeper.web.templating import render, settings_of

router = APIRouter(route_class=WebRoute)

WEBHOOKS_PATH = "/admin/webhooks"
PAGE_SIZE = 50
DELIVERY_STATUSES: tuple[str, ...] = get_args(DeliveryStatusName)
CREATE_FIELDS = ("url", "event_types", "description")
NO_EVENT_TYPES = "Choose at least one event type, or all events."


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
        page = await uow.run(webhooks.list_endpoints, limit=PAGE_SIZE, cursor=cursor)
    except ValidationFailed as refused:
        errors.update(refusal_errors(refused))
        page = webhooks.EndpointPage([], None)
        status_code = 422
    return render(
        request,
        "webhooks/list.html",
        {
            "section": WEBHOOKS_PATH,
            "endpoints": page.rows,
            "cursor": cursor,
            "next_cursor": page.next_cursor,
            "event_types": EVENT_TYPES,
            "all_events": ALL_EVENTS,
            "errors": errors,
            "values": values or {"url": "", "description": "", "event_types": []},
        },
        status_code=status_code,
    )


@router.get("/webhooks")
async def webhooks_page(
    request: Request, _admin: AdminUser, uow: UnitOfWorkDep, cursor: CursorQuery = None
) -> Response:
    return await _list_page(request, uow, cursor=cursor)


def _secret_page(
    request: Request, endpoint: WebhookEndpoint, *, created: bool, status_code: int
) -> Response:
    return render(
        request,
        "webhooks/secret.html",
        {"section": WEBHOOKS_PATH, "endpoint": endpoint, "created": created},
        status_code=status_code,
    )


@router.post("/webhooks")
async def create_webhook(
    request: Request, admin: AdminUser, uow: UnitOfWorkDep, form: StaffForm
) -> Response:
    values = {
        "url": text(form, "url"),
        "description": optional_text(form, "description"),
        "event_types": checked(form, "event_types"),
    }
    outcome: WebhookEndpoint | Refusal
    try:
        if not values["event_types"]:
            raise FormInvalid({"event_types": NO_EVENT_TYPES})
        data = build(WebhookCreate, values)
        # The API's own check of where a URL may point, before the unit of work opens.
        url = await webhooks.vet_url(data.url, settings_of(request))
    except FormInvalid as invalid:
        outcome = form_refusal(invalid)
    except ValidationFailed as refused:
        outcome = Refusal(refusal_errors(refused), 422, refused)
    else:
        outcome = await attempt(uow, webhooks.create_endpoint, data, url, admin.id)
    if isinstance(outcome, Refusal):
        return await _list_page(
            request,
            uow,
            errors=errors_by_field(outcome.errors, CREATE_FIELDS),
            values=values,
            status_code=outcome.status,
        )
    return _secret_page(request, outcome, created=True, status_code=201)


# --- an endpoint and its deliveries ------------------------------------------------------


async def _endpoint_and_deliveries(
    session: AsyncSession,
    endpoint_id: int,
    *,
    status: str | None,
    cursor: str | None,
) -> tuple[WebhookEndpoint, webhooks.DeliveryPage]:
    endpoint = await webhooks.get_endpoint(session, endpoint_id)
    deliveries = await webhooks.list_deliveries(
        session, endpoint_id, status=status, limit=PAGE_SIZE, cursor=cursor
    )
    return endpoint, deliveries


async def _endpoint_page(
    request: Request,
    uow: UnitOfWork,
    endpoint_id: int,
    *,
    status: str | None = None,
    cursor: str | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    errors = dict(errors or {})
    wanted = status if status in DELIVERY_STATUSES else None
    if status and wanted is None:
        errors["status"] = "Choose a status from the list."
    deliveries = webhooks.DeliveryPage([], None)
    endpoint: WebhookEndpoint | None = None
    if "status" not in errors:
        try:
            endpoint, deliveries = await uow.run(
                _endpoint_and_deliveries, endpoint_id, status=wanted, cursor=cursor
            )
        except ValidationFailed as refused:
            errors.update(refusal_errors(refused))
    if endpoint is None:
        # Refused before any delivery was listed: the endpoint is still shown (or 404).
        endpoint = await uow.run(webhooks.get_endpoint, endpoint_id)
    if errors.keys() & {"status", "cursor"}:
        status_code = 422
    return render(
        request,
        "webhooks/endpoint.html",
        {
            "section": WEBHOOKS_PATH,
            "endpoint": endpoint,
            "deliveries": deliveries.rows,
            "status": wanted or "",
            "statuses": DELIVERY_STATUSES,
            "cursor": cursor,
            "next_cursor": deliveries.next_cursor,
            "errors": errors,
        },
        status_code=status_code,
    )


@router.get("/webhooks/{endpoint_id}")
async def endpoint_page(
    request: Request,
    endpoint_id: EndpointIdPath,
    _admin: AdminUser,
    uow: UnitOfWorkDep,
    status: Annotated[str | None, Query(max_length=16)] = None,
    cursor: CursorQuery = None,
) -> Response:
    return await _endpoint_page(request, uow, endpoint_id, status=status, cursor=cursor)


def _done(request: Request, path: str, message: str) -> Response:
    response = see_other(path)
    set_flash(response, settings_of(request), message)
    return response


async def _refused(
    request: Request, uow: UnitOfWork, endpoint_id: int, refusal: Refusal
) -> Response:
    """The endpoint's page with why the button did nothing (404 when it is gone)."""
    errors = {FORM_ERROR: next(iter(refusal.errors.values()))}
    return await _endpoint_page(
        request, uow, endpoint_id, errors=errors, status_code=refusal.status
    )


@router.post("/webhooks/{endpoint_id}/active")
async def set_active(
    request: Request,
    endpoint_id: EndpointIdPath,
    _admin: AdminUser,
    uow: UnitOfWorkDep,
    form: StaffForm,
) -> Response:
    outcome: WebhookEndpoint | Refusal
    try:
        change = build(WebhookUpdate, {"is_active": text(form, "is_active")})
    except FormInvalid:
        outcome = form_refusal(FormInvalid({FORM_ERROR: "Choose Activate or Deactivate."}))
    else:
        outcome = await attempt(uow, webhooks.update_endpoint, endpoint_id, change, None)
    if isinstance(outcome, Refusal):
        return await _refused(request, uow, endpoint_id, outcome)
    state = "active: it receives events again" if outcome.is_active else "deactivated"
    return _done(request, f"{WEBHOOKS_PATH}/{endpoint_id}", f"The endpoint is {state}.")


@router.post("/webhooks/{endpoint_id}/ping")
async def ping_webhook(
    request: Request,
    endpoint_id: EndpointIdPath,
    _admin: AdminUser,
    uow: UnitOfWorkDep,
    _form: StaffForm,
) -> Response:
    outcome = await attempt(uow, webhooks.ping, endpoint_id)
    if isinstance(outcome, Refusal):
        return await _refused(request, uow, endpoint_id, outcome)
    return _done(
        request,
        f"{WEBHOOKS_PATH}/{endpoint_id}",
        "Ping queued: a webhook.ping delivery appears below once it is published.",
    )


@router.post("/webhooks/{endpoint_id}/rotate-secret")
async def rotate_secret(
    request: Request,
    endpoint_id: EndpointIdPath,
    _admin: AdminUser,
    uow: UnitOfWorkDep,
    _form: StaffForm,
) -> Response:
    outcome = await attempt(uow, webhooks.rotate_secret, endpoint_id)
    if isinstance(outcome, Refusal):
        return await _refused(request, uow, endpoint_id, outcome)
    return _secret_page(request, outcome, created=False, status_code=200)


@router.post("/webhooks/{endpoint_id}/delete")
async def delete_webhook(
    request: Request,
    endpoint_id: EndpointIdPath,
    _admin: AdminUser,
    uow: UnitOfWorkDep,
    _form: StaffForm,
) -> Response:
    outcome = await attempt(uow, webhooks.delete_endpoint, endpoint_id)
    if isinstance(outcome, Refusal):
        return await _refused(request, uow, endpoint_id, outcome)
    return _done(
        request, WEBHOOKS_PATH, f"Webhook endpoint {endpoint_id} deleted with its deliveries."
    )


@router.post("/webhooks/{endpoint_id}/deliveries/{delivery_id}/retry")
async def retry_delivery(
    request: Request,
    endpoint_id: EndpointIdPath,
    delivery_id: DeliveryIdPath,
    _admin: AdminUser,
    uow: UnitOfWorkDep,
    _form: StaffForm,
) -> Response:
    outcome = await attempt(uow, webhooks.retry_delivery, endpoint_id, delivery_id)
    if isinstance(outcome, Refusal):
        return await _refused(request, uow, endpoint_id, outcome)
    return _done(
        request,
        f"{WEBHOOKS_PATH}/{endpoint_id}",
        f"Delivery {delivery_id} is due again: the sender attempts it shortly.",
    )
