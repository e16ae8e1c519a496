"""Order pages: the list by status (newest first, cursor paging), an order's page, and its
status changes as buttons.

Reads and changes go through `storekeeper.orders.service`, so a button does exactly what
`PATCH /orders/{id}/status` does: the same allowed moves, the same version check, shipping
fulfils the allocation and cancelling returns the stock, with ledger rows for both.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from storekeeper.accounts.models import User
from storekeeper.catalog.schemas import MAX_ID
from storekeeper.db import Database, DatabaseDep
from storekeeper.errors import ValidationFailed
from storekeeper.orders import service as orders
from storekeeper.orders.models import OrderStatus
from storekeeper.pagination import CursorQuery
from storekeeper.web.dependencies import StaffForm, StaffUser
from storekeeper.web.forms import FORM_ERROR, FormInvalid, Refusal, attempt, refusal_errors, text
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


async def _customers(session: AsyncSession, user_ids: set[int]) -> dict[int, User]:
    """The users the orders belong to, in one statement."""
    if not user_ids:
        return {}
    users = await session.scalars(select(User).where(User.id.in_(user_ids)))
    return {user.id: user for user in users}


@router.get("/orders")
async def orders_page(
    request: Request,
    user: StaffUser,
    db: DatabaseDep,
    status: Annotated[str | None, Query(max_length=16)] = None,
    user_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    cursor: CursorQuery = None,
) -> Response:
    wanted = OrderStatus(status) if status in STATUSES else None
    errors: dict[str, str] = {}
    if status and wanted is None:
        errors["status"] = "Choose a status from the list."
    views: list[orders.OrderView] = []
    customers: dict[int, User] = {}
    next_cursor = None
    async with db.transaction(write=False) as session:
        if not errors:
            try:
                page = await orders.list_orders(
                    session,
                    viewer=user,
                    status=wanted,
                    user_id=user_id,
                    limit=PAGE_SIZE,
                    cursor=cursor,
                )
            except ValidationFailed as refused:
                errors = refusal_errors(refused)
            else:
                views, next_cursor = page.items, page.next_cursor
        ids = {view.order.user_id for view in views} | ({user_id} if user_id else set())
        customers = await _customers(session, ids)
    return render(
        request,
        "orders/list.html",
        {
            "section": ORDERS_PATH,
            "orders": views,
            "customers": customers,
            "status": wanted.value if wanted else "",
            "statuses": STATUSES,
            "user_id": user_id,
            "cursor": cursor,
            "next_cursor": next_cursor,
            "errors": errors,
        },
        status_code=422 if errors else 200,
    )


async def _order_page(
    request: Request,
    db: Database,
    user: User,
    order_id: uuid.UUID,
    *,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    async with db.transaction(write=False) as session:
        view = await orders.get_order(session, order_id, viewer=user)
        people = await _customers(session, {view.order.user_id, view.order.created_by})
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
            "customer": people.get(view.order.user_id),
            "placed_by": people.get(view.order.created_by),
            "actions": actions,
            "errors": errors or {},
        },
        status_code=status_code,
    )


@router.get("/orders/{order_id}")
async def order_page(
    request: Request, order_id: uuid.UUID, user: StaffUser, db: DatabaseDep
) -> Response:
    return await _order_page(request, db, user, order_id)


@router.post("/orders/{order_id}/status")
async def change_status(
    request: Request, order_id: uuid.UUID, user: StaffUser, db: DatabaseDep, form: StaffForm
) -> Response:
    settings = settings_of(request)
    raw_status, raw_version = text(form, "status"), text(form, "version")

    async def work(session: AsyncSession) -> orders.OrderView:
        if raw_status not in STATUSES:
            raise FormInvalid({FORM_ERROR: "Choose one of the status buttons."})
        if not raw_version.isdecimal() or not 1 <= int(raw_version) <= MAX_ID:
            raise FormInvalid({FORM_ERROR: "This form is missing the order's version."})
        return await orders.change_order_status(
            session,
            order_id,
            status=raw_status,
            version=int(raw_version),
            actor=user,
        )

    outcome = await attempt(db, work)
    if isinstance(outcome, Refusal):
        return await _order_page(
            request, db, user, order_id, errors=outcome.errors, status_code=outcome.status
        )
    response = see_other(f"{ORDERS_PATH}/{order_id}")
    set_flash(response, settings, f"Order {ACTIONS[outcome.status][1]}.")
    return response
