"""HTTP routes of the events domain: the feed of published events (staff) and the webhook
endpoints with their deliveries (admin).

Each route makes one service call as one unit of work. A webhook URL is vetted (its host
resolved and checked) by a dependency before that unit opens, so no DNS lookup ever runs
inside a transaction, and only after the caller has been found to be an admin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from storekeeper.accounts.dependencies import AdminUser, SettingsDep, StaffUser
from storekeeper.db import UnitOfWorkDep
from storekeeper.errors import (
    Conflict,
    Forbidden,
    NotFound,
    Unauthorized,
    ValidationFailed,
    problem_responses,
)
from storekeeper.events import queries, webhooks
from storekeeper.events.schemas import (
    DeliveryIdPath,
    DeliveryOut,
    DeliveryStatusName,
    EndpointIdPath,
    EventOut,
    PingOut,
    WebhookCreate,
    WebhookOut,
    WebhookUpdate,
    WebhookWithSecret,
)
from storekeeper.pagination import (
    INT64_MAX,
    CursorQuery,
    LimitQuery,
    Page,
    decode_id_cursor,
    page_of,
)

router = APIRouter(tags=["events"])


@router.get(
    "/events",
    response_model=Page[EventOut],
    responses=problem_responses(Unauthorized, Forbidden, ValidationFailed),
)
async def event_feed(
    uow: UnitOfWorkDep,
    _user: StaffUser,
    type: Annotated[str | None, Query(max_length=64, description="Only this type.")] = None,
    after: Annotated[
        int | None, Query(ge=0, le=INT64_MAX, description="The last event id you saw.")
    ] = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[EventOut]:
    """Published events, oldest first. Keep the last `id` you saw and pass it as `after`
    (or follow `next_cursor`): ids are gapless and assigned in the order events became
    visible, so no event is ever missed."""
    after_id = decode_id_cursor(cursor, INT64_MAX) if cursor is not None else after
    rows = await uow.run(queries.event_feed, after_id=after_id, event_type=type, limit=limit + 1)
    items, next_cursor = page_of(rows, limit, lambda event: [event.id])
    return Page(items=[EventOut(**vars(event)) for event in items], next_cursor=next_cursor)


# Webhook endpoints (admin)

ADMIN_ERRORS = (Unauthorized, Forbidden, ValidationFailed)


@dataclass(frozen=True)
class VettedCreate:
    data: WebhookCreate
    url: webhooks.VettedUrl


@dataclass(frozen=True)
class VettedUpdate:
    data: WebhookUpdate
    url: webhooks.VettedUrl | None


async def _vetted_create(
    _admin: AdminUser, data: WebhookCreate, settings: SettingsDep
) -> VettedCreate:
    return VettedCreate(data, await webhooks.vet_url(data.url, settings))


async def _vetted_update(
    _admin: AdminUser, data: WebhookUpdate, settings: SettingsDep
) -> VettedUpdate:
    return VettedUpdate(data, await webhooks.vet_url(data.url, settings))


def _delivery_out(view: webhooks.DeliveryView) -> DeliveryOut:
    return DeliveryOut.model_validate(vars(view))


@router.post(
    "/webhooks",
    status_code=status.HTTP_201_CREATED,
    tags=["webhooks"],
    responses=problem_responses(*ADMIN_ERRORS),
)
async def create_webhook(
    admin: AdminUser,
    body: Annotated[VettedCreate, Depends(_vetted_create)],
    uow: UnitOfWorkDep,
) -> WebhookWithSecret:
    """Register an endpoint. The answer carries its signing `secret`, shown only here and
    by `rotate-secret`. It receives the events that occur from now on."""
    endpoint = await uow.run(webhooks.create_endpoint, body.data, body.url, admin.id)
    return WebhookWithSecret.model_validate(endpoint)


@router.get("/webhooks", tags=["webhooks"], responses=problem_responses(*ADMIN_ERRORS))
async def list_webhooks(
    _admin: AdminUser, uow: UnitOfWorkDep, limit: LimitQuery = 50, cursor: CursorQuery = None
) -> Page[WebhookOut]:
    """Endpoints in id order (without their secrets)."""
    page = await uow.run(webhooks.list_endpoints, limit=limit, cursor=cursor)
    return Page(
        items=[WebhookOut.model_validate(row) for row in page.rows], next_cursor=page.next_cursor
    )


@router.get(
    "/webhooks/{endpoint_id}",
    tags=["webhooks"],
    responses=problem_responses(*ADMIN_ERRORS, NotFound),
)
async def get_webhook(
    endpoint_id: EndpointIdPath, _admin: AdminUser, uow: UnitOfWorkDep
) -> WebhookOut:
    """One endpoint; `deactivated_reason` says why an inactive one was switched off."""
    return WebhookOut.model_validate(await uow.run(webhooks.get_endpoint, endpoint_id))


@router.patch(
    "/webhooks/{endpoint_id}",
    tags=["webhooks"],
    responses=problem_responses(*ADMIN_ERRORS, NotFound),
)
async def update_webhook(
    endpoint_id: EndpointIdPath,
    _admin: AdminUser,
    body: Annotated[VettedUpdate, Depends(_vetted_update)],
    uow: UnitOfWorkDep,
) -> WebhookOut:
    """Change the URL, event types, description or `is_active`; reactivating forgets the
    failures that deactivated the endpoint."""
    endpoint = await uow.run(webhooks.update_endpoint, endpoint_id, body.data, body.url)
    return WebhookOut.model_validate(endpoint)


@router.delete(
    "/webhooks/{endpoint_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["webhooks"],
    responses=problem_responses(*ADMIN_ERRORS, NotFound),
)
async def delete_webhook(
    endpoint_id: EndpointIdPath, _admin: AdminUser, uow: UnitOfWorkDep
) -> Response:
    """Delete the endpoint with its deliveries."""
    await uow.run(webhooks.delete_endpoint, endpoint_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/webhooks/{endpoint_id}/rotate-secret",
    tags=["webhooks"],
    responses=problem_responses(*ADMIN_ERRORS, NotFound),
)
async def rotate_webhook_secret(
    endpoint_id: EndpointIdPath, _admin: AdminUser, uow: UnitOfWorkDep
) -> WebhookWithSecret:
    """A new signing secret, shown only in this answer; attempts from now on are signed
    with it alone."""
    return WebhookWithSecret.model_validate(await uow.run(webhooks.rotate_secret, endpoint_id))


@router.post(
    "/webhooks/{endpoint_id}/ping",
    status_code=status.HTTP_202_ACCEPTED,
    tags=["webhooks"],
    responses=problem_responses(*ADMIN_ERRORS, NotFound, Conflict),
)
async def ping_webhook(
    endpoint_id: EndpointIdPath, _admin: AdminUser, uow: UnitOfWorkDep
) -> PingOut:
    """Queue a `webhook.ping` event for this endpoint alone, whatever its event types
    (409 while it is inactive)."""
    return PingOut(endpoint_id=await uow.run(webhooks.ping, endpoint_id))


@router.get(
    "/webhooks/{endpoint_id}/deliveries",
    tags=["webhooks"],
    responses=problem_responses(*ADMIN_ERRORS, NotFound),
)
async def list_webhook_deliveries(
    endpoint_id: EndpointIdPath,
    _admin: AdminUser,
    uow: UnitOfWorkDep,
    status: Annotated[DeliveryStatusName | None, Query(description="Only this status.")] = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[DeliveryOut]:
    """The endpoint's deliveries, newest first."""
    page = await uow.run(
        webhooks.list_deliveries, endpoint_id, status=status, limit=limit, cursor=cursor
    )
    return Page(items=[_delivery_out(row) for row in page.rows], next_cursor=page.next_cursor)


@router.post(
    "/webhooks/{endpoint_id}/deliveries/{delivery_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    tags=["webhooks"],
    responses=problem_responses(*ADMIN_ERRORS, NotFound, Conflict),
)
async def retry_webhook_delivery(
    endpoint_id: EndpointIdPath,
    delivery_id: DeliveryIdPath,
    _admin: AdminUser,
    uow: UnitOfWorkDep,
) -> DeliveryOut:
    """Attempt the same delivery again now (a dead one gets one more attempt); its
    `attempts` grows by one when the attempt is made. 409 while the endpoint is inactive."""
    return _delivery_out(await uow.run(webhooks.retry_delivery, endpoint_id, delivery_id))
