"""Demo orders for `storekeeper seed --demo`: the demo customer's orders in every status,
placed and moved through the orders service so their stock shows in the ledger.
Idempotent: each demo order has its own Idempotency-Key, and orders already placed are
left alone."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storekeeper.accounts.models import Address
from storekeeper.accounts.service import DEMO_USERS, find_user_by_email
from storekeeper.catalog.models import Sku
from storekeeper.inventory.queries import available_by_sku
from storekeeper.orders.models import Order, OrderStatus
from storekeeper.orders.service import change_order_status, place_order

# (Idempotency-Key, lines as (index into the demo SKUs, quantity), the status it ends in)
DEMO_ORDERS: tuple[tuple[str, tuple[tuple[int, int], ...], OrderStatus], ...] = (
    ("demo-order-1", ((0, 2), (1, 1)), OrderStatus.PENDING),
    ("demo-order-2", ((2, 1),), OrderStatus.PAID),
    ("demo-order-3", ((3, 3), (6, 1)), OrderStatus.SHIPPED),
    ("demo-order-4", ((8, 1),), OrderStatus.CANCELLED),
    ("demo-order-5", ((10, 4),), OrderStatus.PENDING),
)
# The moves that take a new order to each status.
PATHS: dict[OrderStatus, tuple[OrderStatus, ...]] = {
    OrderStatus.PENDING: (),
    OrderStatus.PAID: (OrderStatus.PAID,),
    OrderStatus.SHIPPED: (OrderStatus.PAID, OrderStatus.SHIPPED),
    OrderStatus.CANCELLED: (OrderStatus.CANCELLED,),
}


async def seed_demo_orders(session: AsyncSession, skus: Sequence[Sku]) -> int:
    """Place the demo orders not placed yet (skipping any whose stock is gone); returns how
    many were placed."""
    customer = await find_user_by_email(session, DEMO_USERS[2][0])
    staff = await find_user_by_email(session, DEMO_USERS[1][0])
    if (
        customer is None
        or staff is None
        or len(skus) <= max(index for _, lines, _ in DEMO_ORDERS for index, _ in lines)
    ):
        return 0
    placed_keys = set(
        (
            await session.scalars(
                select(Order.idempotency_key).where(
                    Order.created_by == customer.id,
                    Order.idempotency_key.in_([key for key, _, _ in DEMO_ORDERS]),
                )
            )
        ).all()
    )
    address_id = (
        await session.scalars(
            select(Address.id).where(Address.user_id == customer.id).order_by(Address.id)
        )
    ).first()
    available = await available_by_sku(session, [sku.id for sku in skus])
    placed = 0
    for key, lines, status in DEMO_ORDERS:
        if key in placed_keys:
            continue
        if any(available[skus[index].id] < quantity for index, quantity in lines):
            continue
        view = await place_order(
            session,
            actor=customer,
            items=[(skus[index].code, quantity) for index, quantity in lines],
            shipping_address_id=address_id,
            idempotency_key=key,
        )
        for index, quantity in lines:
            available[skus[index].id] -= quantity
        for step in PATHS[status]:
            await change_order_status(
                session, view.order.id, status=step, version=None, actor=staff
            )
        placed += 1
    return placed
