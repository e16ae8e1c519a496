"""Read-only order queries: counts by status, orders with the people they concern, and an
order's status history.

The orders themselves are read through `storekeeper.orders.service` (`list_orders`,
`get_order`), the API's own reads with its visibility rule; what is added here is what a
staff page shows around them, read in the same unit of work.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper.accounts.models import User
from storekeeper.events import outbox
from storekeeper.events.models import Event
from storekeeper.orders.models import Order, OrderStatus
from storekeeper.orders.service import OrderView, get_order, list_orders


async def counts_by_status(session: AsyncSession) -> dict[str, int]:
    """How many orders are in each status, every status listed (0 when none), in one
    statement."""
    rows = await session.execute(select(Order.status, func.count()).group_by(Order.status))
    counts: dict[str, int] = dict(rows.all())
    return {status.value: counts.get(status.value, 0) for status in OrderStatus}


async def order_of_allocation(session: AsyncSession, allocation_id: uuid.UUID) -> uuid.UUID | None:
    """The id of the order whose stock `allocation_id` holds, if an order made it."""
    found: uuid.UUID | None = await session.scalar(
        select(Order.id).where(Order.allocation_id == allocation_id)
    )
    return found


async def people_by_id(session: AsyncSession, user_ids: Collection[int]) -> dict[int, User]:
    """The users with these ids (customers, who placed an order), in one statement."""
    if not user_ids:
        return {}
    users = await session.scalars(select(User).where(User.id.in_(set(user_ids))))
    return {user.id: user for user in users}


@dataclass(frozen=True)
class OrderList:
    """A page of orders (`list_orders`) and the users they belong to, by id."""

    orders: list[OrderView]
    next_cursor: str | None
    people: dict[int, User]


async def orders_with_people(
    session: AsyncSession,
    *,
    viewer: User,
    status: OrderStatus | None,
    user_id: int | None,
    limit: int,
    cursor: str | None,
) -> OrderList:
    """`list_orders` as `viewer` may see it, with the customers of its orders and the user
    `user_id` (when the list is of one customer's orders)."""
    page = await list_orders(
        session, viewer=viewer, status=status, user_id=user_id, limit=limit, cursor=cursor
    )
    ids = {view.order.user_id for view in page.items} | ({user_id} if user_id else set())
    return OrderList(page.items, page.next_cursor, await people_by_id(session, ids))


@dataclass(frozen=True)
class OrderDetail:
    """An order (`get_order`), its customer and who placed it (None for a missing user)."""

    view: OrderView
    customer: User | None
    placed_by: User | None


async def order_with_people(
    session: AsyncSession, order_id: uuid.UUID, *, viewer: User
) -> OrderDetail:
    """`get_order` as `viewer` may see it, with its customer and who placed it."""
    view = await get_order(session, order_id, viewer=viewer)
    people = await people_by_id(session, {view.order.user_id, view.order.created_by})
    return OrderDetail(view, people.get(view.order.user_id), people.get(view.order.created_by))


# The status each `order.*` event announces.
EVENT_STATUS = {
    outbox.ORDER_CREATED: OrderStatus.PENDING,
    outbox.ORDER_PAID: OrderStatus.PAID,
    outbox.ORDER_SHIPPED: OrderStatus.SHIPPED,
    outbox.ORDER_CANCELLED: OrderStatus.CANCELLED,
}


@dataclass(frozen=True)
class StatusChange:
    status: OrderStatus
    at: datetime
    # Why, when the change says (`payment_timeout`); None for a person's change.
    reason: str | None


@dataclass(frozen=True)
class OrderWithHistory:
    view: OrderView
    history: list[StatusChange]


async def status_history(session: AsyncSession, order_id: uuid.UUID) -> list[StatusChange]:
    """The order's statuses in the order they were reached, read from the `order.*` events
    its changes wrote in their own units of work (so the history holds exactly the changes
    that committed), in one statement."""
    rows = await session.execute(
        select(Event.type, Event.occurred_at, Event.data["reason"].as_string())
        .where(
            Event.type.in_(list(EVENT_STATUS)),
            Event.data["id"].as_string() == str(order_id),
        )
        .order_by(Event.seq)
    )
    return [StatusChange(EVENT_STATUS[kind], at, reason) for kind, at, reason in rows.all()]


async def order_with_history(
    session: AsyncSession, order_id: uuid.UUID, *, viewer: User
) -> OrderWithHistory:
    """`get_order` as `viewer` may see it (another customer's order is NotFound), with its
    status history."""
    view = await get_order(session, order_id, viewer=viewer)
    return OrderWithHistory(view, await status_history(session, order_id))
