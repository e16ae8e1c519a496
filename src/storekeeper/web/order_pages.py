"""Order pages: the list by status (newest first, cursor paging), an order's page, and its
status changes as buttons.

Reads go through `storekeeper.orders.queries` (the service's own reads, with the people
they concern) and changes through `storekeeper.orders.service`, so a button does exactly
what `PATCH /orders/{id}/status` does: the same allowed moves, the same version check,
shipping fulfils the allocation and cancelling returns the stock, with ledger rows for both.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from storekeeper.accounts.models import User
from storekeeper.catalog.schemas import MAX_ID
from storekeeper.db import UnitOfWork, UnitOfWorkDep
from storekeeper.errors import ValidationFailed
from storekeeper.orders import queries
from storekeeper.orders import service as orders
from storekeeper.orders.models import OrderStatus
from storekeeper.pagination import CursorQuery
from storekeeper.web.dependencies import StaffForm, StaffUser
from storekeeper.web.forms import (
    FORM_ERROR,
    FormInvalid,
    Refusal,
    attempt,
    form_refusal,
    refusal_errors,
    text,
)
from storekeeper.web.routing import WebRoute, see_other
from storekeeper.web.security import set_flash
from storekeeper.web.templating import render, settings_of

router = APIRouter(route_class=WebRoute)

ORDERS_PATH = "/admin/orders"
PAGE_SIZE = 50
STATUSES = [status.value for status in OrderStatus]
# What each status change is called on its button, and the note shown once it is done.
ACTIONS = {
    OrderStatus.PAID: ("Mark as paid", "marked as paid"),
    OrderStatus.SHIPPED: ("Ship", "shipped: its stock has left the warehouse"),
    OrderStatus.CANCELLED: ("Cancel order", "cancelled: its stock is available again"),
    OrderStatus.PENDING: ("Mark as pending", "pending"),
}


@router.get("/orders")
async def orders_page(
    request: Request,
    user: StaffUser,
    uow: UnitOfWorkDep,
    status: Annotated[str | None, Query(max_length=16)] = None,
    user_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    cursor: CursorQuery = None,
) -> Response:
    wanted = OrderStatus(status) if status in STATUSES else None
    errors: dict[str, str] = {}
    if status and wanted is None:
        errors["status"] = "Choose a status from the list."
    listing: queries.OrderList | None = None
    if not errors:
        try:
            listing = await uow.run(
                queries.orders_with_people,
                viewer=user,
                status=wanted,
                user_id=user_id,
                limit=PAGE_SIZE,
                cursor=cursor,
            )
        except ValidationFailed as refused:
            errors = refusal_errors(refused)
    if listing is None:
        # Refused before any order was listed: the customer asked for is still named.
        people = await uow.run(queries.people_by_id, {user_id} if user_id else set())
        listing = queries.OrderList([], None, people)
    return render(
        request,
        "orders/list.html",
        {
            "section": ORDERS_PATH,
            "orders": listing.orders,
            "customers": listing.people,
            "status": wanted.value if wanted else "",
            "statuses": STATUSES,
            "user_id": user_id,
            "cursor": cursor,
            "next_cursor": listing.next_cursor,
            "errors": errors,
        },
        status_code=422 if errors else 200,
    )


async def _order_page(
    request: Request,
    uow: UnitOfWork,
    user: User,
    order_id: uuid.UUID,
    *,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    detail = await uow.run(queries.order_with_people, order_id, viewer=user)
    view = detail.view
    actions = [
        (target.value, ACTIONS[target][0]) for target in orders.allowed_transitions(view.status)
    ]
    return render(
        request,
        "orders/order.html",
        {
            "section": ORDERS_PATH,
            "view": view,
            "order": view.order,
            "customer": detail.customer,
            "placed_by": detail.placed_by,
            "actions": actions,
            "errors": errors or {},
        },
        status_code=status_code,
    )


@router.get("/orders/{order_id}")
async def order_page(
    request: Request, order_id: uuid.UUID, user: StaffUser, uow: UnitOfWorkDep
) -> Response:
    return await _order_page(request, uow, user, order_id)


def _status_change(form_status: str, form_version: str) -> tuple[str, int]:
    """The status and version a status button posts, or `FormInvalid`."""
    if form_status not in STATUSES:
        raise FormInvalid({FORM_ERROR: "Choose one of the status buttons."})
    if not form_version.isdecimal() or not 1 <= int(form_version) <= MAX_ID:
        raise FormInvalid({FORM_ERROR: "This form is missing the order's version."})
    return form_status, int(form_version)


@router.post("/orders/{order_id}/status")
async def change_status(
    request: Request, order_id: uuid.UUID, user: StaffUser, uow: UnitOfWorkDep, form: StaffForm
) -> Response:
    outcome: orders.OrderView | Refusal
    try:
        status, version = _status_change(text(form, "status"), text(form, "version"))
    except FormInvalid as invalid:
        outcome = form_refusal(invalid)
    else:
        outcome = await attempt(
            uow, orders.change_order_status, order_id, status=status, version=version, actor=user
        )
    if isinstance(outcome, Refusal):
        return await _order_page(
            request, uow, user, order_id, errors=outcome.errors, status_code=outcome.status
        )
    response = see_other(f"{ORDERS_PATH}/{order_id}")
    set_flash(response, settings_of(request), f"Order {ACTIONS[outcome.status][1]}.")
    return response
