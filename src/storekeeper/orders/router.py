"""HTTP routes of carts, checkout and orders.

Each route makes one service call through the request's unit of work and shapes the answer;
a lost optimistic race or a deadlock re-runs the whole unit (cart, allocation and order
together) instead of failing.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Response

from storekeeper.accounts.dependencies import CurrentUser, SettingsDep, StockPolicyDep
from storekeeper.db import UnitOfWorkDep, WritingUnitOfWorkDep
from storekeeper.errors import (
    Forbidden,
    IdempotencyKeyReused,
    InsufficientStock,
    InvalidTransition,
    NotFound,
    PurchaseLimitExceeded,
    RetryableError,
    Unauthorized,
    ValidationFailed,
    VersionConflict,
    problem_responses,
)
from storekeeper.orders import service
from storekeeper.orders.models import OrderStatus
from storekeeper.orders.schemas import (
    CartItemIn,
    CartItemOut,
    CartItemUpdate,
    CartOut,
    CheckoutIn,
    OrderIn,
    OrderOut,
    StatusChangeIn,
)
from storekeeper.pagination import MAX_ID, CursorQuery, LimitQuery, Page

router = APIRouter()

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=128,
        # Control characters (NUL above all) cannot be stored in PostgreSQL text.
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="Makes the request safe to retry: the same key and request return the "
        "order it created (200).",
    ),
]
PLACE_ERRORS = (
    Unauthorized,
    Forbidden,
    ValidationFailed,
    InsufficientStock,
    PurchaseLimitExceeded,
    IdempotencyKeyReused,
    RetryableError,
)
REPLAYED: dict[int | str, dict[str, Any]] = {
    200: {"model": OrderOut, "description": "The order this Idempotency-Key already created."}
}


def _cart_out(view: service.CartView) -> CartOut:
    return CartOut(
        id=view.cart.id,
        items=[
            CartItemOut(
                id=line.id,
                sku=line.sku,
                product_name=line.product_name,
                quantity=line.quantity,
                unit_price_cents=line.unit_price_cents,
                line_total_cents=line.line_total_cents,
                currency=line.currency,
                available=line.available,
                is_deleted=line.is_deleted,
            )
            for line in view.lines
        ],
        total_cents=view.total_cents,
        currency=view.currency,
        created_at=view.cart.created_at,
        updated_at=view.cart.updated_at,
    )


# --- carts -------------------------------------------------------------------------------


@router.get(
    "/carts/me",
    tags=["carts"],
    response_model=CartOut,
    responses=problem_responses(Unauthorized),
)
async def read_cart(uow: WritingUnitOfWorkDep, user: CurrentUser, settings: SettingsDep) -> CartOut:
    """Your cart with current prices and availability (created on first use)."""
    view = await uow.run(service.my_cart, user.id, default_currency=settings.default_currency)
    return _cart_out(view)


@router.post(
    "/carts/me/items",
    tags=["carts"],
    status_code=201,
    response_model=CartOut,
    responses=problem_responses(Unauthorized, ValidationFailed, RetryableError),
)
async def add_cart_item(
    body: CartItemIn, uow: UnitOfWorkDep, user: CurrentUser, settings: SettingsDep
) -> CartOut:
    """Put a SKU in your cart; a SKU already there has its quantity raised. Unknown or
    deleted SKU: 422. Answers with the whole cart."""
    view = await uow.run(
        service.add_cart_item,
        user_id=user.id,
        sku=body.sku,
        quantity=body.quantity,
        default_currency=settings.default_currency,
    )
    return _cart_out(view)


@router.patch(
    "/carts/me/items/{item_id}",
    tags=["carts"],
    response_model=CartOut,
    responses=problem_responses(Unauthorized, NotFound, ValidationFailed, RetryableError),
)
async def update_cart_item(
    item_id: uuid.UUID,
    body: CartItemUpdate,
    uow: UnitOfWorkDep,
    user: CurrentUser,
    settings: SettingsDep,
) -> CartOut:
    """Set the quantity of one of your cart's lines."""
    view = await uow.run(
        service.update_cart_item,
        user_id=user.id,
        item_id=item_id,
        quantity=body.quantity,
        default_currency=settings.default_currency,
    )
    return _cart_out(view)


@router.delete(
    "/carts/me/items/{item_id}",
    tags=["carts"],
    status_code=204,
    responses=problem_responses(Unauthorized, NotFound, ValidationFailed, RetryableError),
)
async def remove_cart_item(item_id: uuid.UUID, uow: UnitOfWorkDep, user: CurrentUser) -> Response:
    """Take a line out of your cart."""
    await uow.run(service.remove_cart_item, user_id=user.id, item_id=item_id)
    return Response(status_code=204)


@router.post(
    "/carts/me/checkout",
    tags=["carts"],
    status_code=201,
    response_model=OrderOut,
    responses={**problem_responses(*PLACE_ERRORS), **REPLAYED},
)
async def checkout(
    response: Response,
    uow: UnitOfWorkDep,
    user: CurrentUser,
    policy: StockPolicyDep,
    idempotency_key: IdempotencyKeyHeader = None,
    body: Annotated[CheckoutIn | None, Body()] = None,
) -> OrderOut:
    """Turn your cart into an order in one transaction: every line is allocated at its
    current price, the cart is emptied. A short line: 409 `insufficient_stock` listing
    every short line, and nothing changes (the cart is kept). Empty cart: 422. More units
    of a SKU than its `max_per_customer` allows you: 409 `purchase_limit_exceeded`."""
    view = await uow.run(
        service.checkout,
        user=user,
        shipping_address_id=body.shipping_address_id if body is not None else None,
        idempotency_key=idempotency_key,
        policy=policy,
    )
    if not view.created:
        response.status_code = 200
    return OrderOut.from_view(view)


# --- orders ------------------------------------------------------------------------------


@router.post(
    "/orders",
    tags=["orders"],
    status_code=201,
    response_model=OrderOut,
    responses={**problem_responses(*PLACE_ERRORS), **REPLAYED},
)
async def place_order(
    body: OrderIn,
    response: Response,
    uow: UnitOfWorkDep,
    user: CurrentUser,
    policy: StockPolicyDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> OrderOut:
    """An order of explicit lines, stock allocated (all lines or none). Customers order for
    themselves; staff may pass `user_id` to order for a customer (the customer's
    `max_per_customer` limits count it: beyond them 409 `purchase_limit_exceeded`)."""
    view = await uow.run(
        service.place_order,
        actor=user,
        items=[(item.sku, item.quantity) for item in body.items],
        user_id=body.user_id,
        shipping_address_id=body.shipping_address_id,
        idempotency_key=idempotency_key,
        policy=policy,
    )
    if not view.created:
        response.status_code = 200
    return OrderOut.from_view(view)


@router.get(
    "/orders",
    tags=["orders"],
    response_model=Page[OrderOut],
    responses=problem_responses(Unauthorized, ValidationFailed),
)
async def list_orders(
    uow: UnitOfWorkDep,
    user: CurrentUser,
    status: OrderStatus | None = None,
    user_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[OrderOut]:
    """Orders, newest first. Customers see only their own; staff see all and may filter by
    `user_id`."""
    page = await uow.run(
        service.list_orders, viewer=user, status=status, user_id=user_id, limit=limit, cursor=cursor
    )
    return Page(
        items=[OrderOut.from_view(view) for view in page.items], next_cursor=page.next_cursor
    )


@router.get(
    "/orders/{order_id}",
    tags=["orders"],
    response_model=OrderOut,
    responses=problem_responses(Unauthorized, NotFound, ValidationFailed),
)
async def read_order(order_id: uuid.UUID, uow: UnitOfWorkDep, user: CurrentUser) -> OrderOut:
    """One order with its lines, totals and shipping address. Customers see only their own
    (another customer's order is 404); staff see any."""
    return OrderOut.from_view(await uow.run(service.get_order, order_id, viewer=user))


@router.patch(
    "/orders/{order_id}/status",
    tags=["orders"],
    response_model=OrderOut,
    responses=problem_responses(
        Unauthorized,
        Forbidden,
        NotFound,
        ValidationFailed,
        VersionConflict,
        InvalidTransition,
        RetryableError,
    ),
)
async def change_order_status(
    order_id: uuid.UUID,
    body: StatusChangeIn,
    uow: UnitOfWorkDep,
    user: CurrentUser,
) -> OrderOut:
    """pending → paid, pending → shipped, paid → shipped, pending → cancelled, paid →
    cancelled; shipped and cancelled are final. Shipping fulfils the order's stock,
    cancelling returns it. Customers may only cancel their own orders. A stale `version`:
    409 `version_conflict`."""
    view = await uow.run(
        service.change_order_status,
        order_id,
        status=body.status,
        version=body.version,
        actor=user,
    )
    return OrderOut.from_view(view)
