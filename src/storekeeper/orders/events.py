"""What the orders domain announces: `order.*` events, each carrying the order exactly as
the API shows it (`OrderOut`). They are written in the unit of work of the change they
announce, so they commit with it or not at all."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper.events import outbox
from storekeeper.orders.models import OrderStatus
from storekeeper.orders.schemas import OrderOut

if TYPE_CHECKING:
    from storekeeper.orders.service import OrderView

# The event a committed move to each status announces (an order is created pending).
STATUS_EVENTS: dict[OrderStatus, str] = {
    OrderStatus.PAID: outbox.ORDER_PAID,
    OrderStatus.SHIPPED: outbox.ORDER_SHIPPED,
    OrderStatus.CANCELLED: outbox.ORDER_CANCELLED,
}


async def record_order_event(
    session: AsyncSession, event_type: str, view: OrderView, *, reason: str | None = None
) -> None:
    """Write `event_type` with the order as `data` (JSON, as the API shows it), plus the
    `reason` of the change when one is given (`payment_timeout`)."""
    data = OrderOut.from_view(view).model_dump(mode="json")
    if reason is not None:
        data["reason"] = reason
    await outbox.record(session, event_type, data)


async def order_created(session: AsyncSession, view: OrderView) -> None:
    await record_order_event(session, outbox.ORDER_CREATED, view)


async def status_changed(
    session: AsyncSession, view: OrderView, *, reason: str | None = None
) -> None:
    await record_order_event(session, STATUS_EVENTS[view.status], view, reason=reason)
